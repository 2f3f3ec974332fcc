"""The human-readable log `kitledger up` streams: each decision and alert once, as made.

It reads the `decision` and `alert` tables (the API writes them in the custody transaction),
so what it prints is what was committed, never what was merely received.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.config import Settings
from api.db import make_engine
from api.models import Alert, Asset, Decision

MAX_LINES_PER_POLL: Final = 200
"""A burst beyond this is summarised next poll rather than flooding the terminal."""


def _clock(at: datetime) -> str:
    return at.astimezone().strftime("%H:%M:%S")


class DecisionFeed:
    """Remembers the last decision and alert printed; `poll()` returns the lines since."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self._engine = engine or make_engine(settings)
        self._last_decision = 0
        self._last_alert = 0

    def poll(self) -> list[str]:
        lines: list[str] = []
        with Session(self._engine) as session:
            decisions = list(session.exec(
                select(Decision).where(col(Decision.id) > self._last_decision)
                .order_by(col(Decision.id)).limit(MAX_LINES_PER_POLL)))
            alerts = list(session.exec(
                select(Alert).where(col(Alert.id) > self._last_alert)
                .order_by(col(Alert.id)).limit(MAX_LINES_PER_POLL)))
            holders = {a.id: a.holder_ref for a in session.exec(select(Asset).where(
                col(Asset.id).in_({d.asset_id for d in decisions if d.asset_id})))}
        for row in decisions:
            self._last_decision = row.id or self._last_decision
            lines.append(decision_line(row, holders.get(row.asset_id or "")))
        for alert in alerts:
            self._last_alert = alert.id or self._last_alert
            about = f": {alert.asset_id}" if alert.asset_id else ""  # reader alerts name none
            lines.append(f"{_clock(alert.created_at)}  {alert.reader_id or '-':<12} ALERT "
                         f"{alert.kind.replace('_', ' ')}{about} ({alert.detail})")
        return lines


def decision_line(row: Decision, holder: str | None) -> str:
    """`12:00:03  issue-desk   OK   radio-1 checked out -> pc-adams` or a refusal with why."""
    mark = "OK  " if row.decision == "accept" else "NO  "
    what = row.asset_id or "badge"
    text = row.reason
    if row.action == "check_out" and holder:
        text = f"{text} -> {holder}"
    elif row.decision != "accept":
        text = f"refused: {text}"
    return f"{_clock(row.created_at)}  {row.reader_id:<12} {mark} {what:<15} {text}"
