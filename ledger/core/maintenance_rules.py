"""When an item may not be issued for want of maintenance: the one rule the issue desk and
the auditor's verifier both hold a check-out to.

An item out of service is not issued. For each blocking schedule of its class (a safety
check: a taser's annual test, a breathalyser's calibration), the item's latest check of that
schedule must have passed and not be past its `next_due`; an item never checked is overdue
(nothing shows it safe). Non-blocking schedules are listed as due, never refused. Pure: the
caller brings the schedules, the checks and the time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from ledger.core.records import format_time


@dataclass(frozen=True, slots=True)
class ScheduleState:
    """One blocking schedule and the item's latest check of it (None: never checked)."""

    schedule: str
    name: str
    result: str | None
    next_due: datetime | None


def issue_refusal(out_of_service: str | None, blocking: Iterable[ScheduleState],
                  now: datetime) -> str | None:
    """Why the item may not be issued at `now`, or None: `out_of_service` is the reason it
    was taken out of service (None: in service)."""
    if out_of_service is not None:
        return f"out of service: {out_of_service}"
    for state in sorted(blocking, key=lambda s: s.schedule):
        if state.result is None:
            return f"overdue for {state.name} (never done)"
        if state.result != "pass":
            return f"failed {state.name}: not issued until it passes"
        if state.next_due is not None and now > state.next_due:
            return f"overdue for {state.name} (due {format_time(state.next_due)})"
    return None
