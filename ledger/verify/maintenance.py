"""Verifier rule for check-outs and maintenance: an item is not issued out of service, after
a failed blocking check, or overdue for one (`ledger.core.maintenance_rules`, the desk's rule).

The log holds what the rule reads: each class's schedules (`maintenance-schedule`, in the
class's chain) and each asset's checks and service changes (`maintenance-done`,
`out-of-service`, `back-in-service`, in the asset's chain, which the head map proves complete).
For a check-out at leaf L, the records before L decide. "Overdue" is judged from the records'
own times: the check-out's `time` against the latest pass's `next_due`, both set by the API's
clock, which the bundle cannot prove right but does hold to itself (a check-out the API dated
after a next due cannot pass as issued in time). A schedule is in force from its leaf: an item
of its class that no pass of it precedes is overdue, as at the desk.
"""

from __future__ import annotations

from ledger.core.maintenance_rules import ScheduleState, issue_refusal
from ledger.core.records import (
    BACK_IN_SERVICE,
    MAINTENANCE_DONE,
    MAINTENANCE_SCHEDULE,
    OUT_OF_SERVICE,
    CustodyEvent,
    parse_time,
)
from ledger.verify.registry import Logged, Registry

SERVICE_KINDS = frozenset({MAINTENANCE_DONE, OUT_OF_SERVICE, BACK_IN_SERVICE})
"""The asset records the rule reads; like corrections, none may precede the asset's
registration or follow its retirement (`ledger.verify.registry`)."""


def _blocking(registry: Registry, class_id: str, leaf: int) -> dict[str, Logged]:
    """The class's blocking schedules in force at `leaf`, by key (a later record of a key
    replaces the earlier)."""
    found: dict[str, Logged] = {}
    for item in registry.classes.get(class_id, []):
        if item.leaf < leaf and item.record.kind == MAINTENANCE_SCHEDULE:
            found[item.record.get("schedule")] = item
    return {key: item for key, item in found.items() if item.record.get("blocking")}


def maintenance_reason(registry: Registry, event: CustodyEvent, leaf: int) -> str | None:
    """Why the check-out `event` at `leaf` issued an item it could not, or None."""
    if event.action != "check_out":
        return None
    tag = registry.tag(event.asset, leaf)
    if tag is None:
        return None  # the tag and class checks say so
    out: Logged | None = None
    checks: dict[str, Logged] = {}
    for item in registry.assets.get(event.asset, []):
        if item.leaf >= leaf:
            break
        kind = item.record.kind
        if kind == OUT_OF_SERVICE:
            out = item
        elif kind == BACK_IN_SERVICE:
            out = None
        elif kind == MAINTENANCE_DONE:
            checks[item.record.get("schedule")] = item
    states = []
    for key, schedule in _blocking(registry, tag.get("class"), leaf).items():
        done = checks.get(key)
        due = done.record.get("next_due") if done is not None else None
        states.append(ScheduleState(key, schedule.record.get("name"),
                                    done.record.get("result") if done is not None else None,
                                    parse_time(due) if due is not None else None))
    reason = issue_refusal(None if out is None else out.record.get("reason"), states,
                           parse_time(event.time))
    if reason is None:
        return None
    return f"check-out of an item that was {reason}, as the log held it before the event"
