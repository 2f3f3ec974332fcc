"""The anchoring states, as the anchoring process records them and everyone else reads them.

The anchoring process (`api.anchoring`) writes one `AnchoringStatus` row per agency log, and one
for the service as a whole, whenever a state changes and at least every `HEARTBEAT_S` while it
runs; `/readyz` (`not_ready_reason`), `/metrics` and the alerts read them, without web3 and
without talking to the chain. What each state means, and what the operator does about it, is
in docs/anchoring.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, Engine, text
from sqlmodel import Session, col, select

from api.models.anchoring import MAX_STATUS_REASON_CHARS, SERVICE_SCOPE, AnchoringStatus
from api.models.custody import Alert

ANCHORING_ALERT: Final = "anchoring"
"""`Alert.kind` of an agency's alert about its log's anchoring (resolved when it recovers)."""

HEARTBEAT_S: Final = 15.0
"""The anchoring process refreshes its rows at least this often while it runs."""

STALE_AFTER_S: Final = 120.0
"""Rows older than this mean the anchoring process stopped (died, hung, or was never
restarted): eight missed heartbeats, far beyond a slow round."""


class AnchorState(StrEnum):
    """Where anchoring of one log (or the service) stands; see docs/anchoring.md."""

    STARTING = "starting"
    OK = "ok"
    SIGN_ONLY = "sign_only"
    UNAVAILABLE = "unavailable"
    REFUSED = "refused"
    ANCHORS_LOST = "anchors_lost"
    CHAIN_REPLACED = "chain_replaced"
    CONTRACT_MISSING = "contract_missing"
    HALTED = "halted"
    MISCONFIGURED = "misconfigured"
    NOT_AUTHORISED = "not_authorised"


NOT_READY: Final = frozenset({
    AnchorState.ANCHORS_LOST, AnchorState.CHAIN_REPLACED, AnchorState.CONTRACT_MISSING,
    AnchorState.HALTED, AnchorState.MISCONFIGURED, AnchorState.NOT_AUTHORISED,
})
"""States that make `/readyz` answer 503: each needs an operator. A node that is down or
refusing (`unavailable`, `refused`) is retried on its own and shows in the metrics and the
logs, not in readiness, so a chain outage does not take the API out of service."""

HEALTHY: Final = frozenset({AnchorState.STARTING, AnchorState.OK, AnchorState.SIGN_ONLY})


@dataclass(frozen=True, slots=True)
class StatusRow:
    """One row as read back: scope ("" for the service), state, reason, since when, last
    refreshed."""

    agency_id: str
    state: str
    reason: str
    since: datetime
    checked_at: datetime


def write_status(engine: Engine, agency_id: str, state: AnchorState, reason: str, now: datetime,
                 *, chain_id: int | None = None, contract: str | None = None) -> None:
    """Record `state` for `agency_id` (`SERVICE_SCOPE` for the service); `since` moves only
    when the state changes."""
    with Session(engine) as session:
        row = session.get(AnchoringStatus, agency_id)
        if row is None:
            row = AnchoringStatus(agency_id=agency_id, state=state, since=now)
        elif row.state != state:
            row.state, row.since = state, now
        row.reason = reason[:MAX_STATUS_REASON_CHARS]
        row.chain_id, row.contract, row.checked_at = chain_id, contract, now
        session.add(row)
        session.commit()


def raise_alert(engine: Engine, agency_id: str, detail: str, now: datetime) -> None:
    """Open an anchoring alert for the agency, unless one with the same words is open."""
    if agency_id == SERVICE_SCOPE:
        return
    detail = detail[:MAX_STATUS_REASON_CHARS]
    with Session(engine) as session:
        if session.exec(select(Alert.id).where(
                Alert.agency_id == agency_id, Alert.kind == ANCHORING_ALERT,
                Alert.detail == detail, col(Alert.resolved_at).is_(None))).first() is not None:
            return
        session.add(Alert(agency_id=agency_id, kind=ANCHORING_ALERT, detail=detail,
                          created_at=now))
        session.commit()


def resolve_alerts(engine: Engine, agency_id: str, now: datetime) -> None:
    """Anchoring of the agency's log works again: its open anchoring alerts are resolved."""
    with Session(engine) as session:
        for alert in session.exec(select(Alert).where(
                Alert.agency_id == agency_id, Alert.kind == ANCHORING_ALERT,
                col(Alert.resolved_at).is_(None))):
            alert.resolved_at = now
            session.add(alert)
        session.commit()


def read_statuses(session: Session) -> list[StatusRow]:
    rows = session.exec(select(AnchoringStatus).order_by(col(AnchoringStatus.agency_id)))
    return [StatusRow(r.agency_id, r.state, r.reason, r.since, r.checked_at) for r in rows]


def not_ready_reason(session: Session, now: datetime | None = None, *,
                     unavailable_max_s: float | None = None) -> str | None:
    """Why anchoring makes the service not ready, in one line; None when it does not.

    A node unreachable (`unavailable`) for longer than `unavailable_max_s` is a reason too:
    a short outage is retried alone, a long one needs someone to look at the node.
    No rows at all (anchoring never ran against this database) is not a reason: an API-only
    installation, or the first seconds before the anchoring process starts."""
    moment = now or datetime.now(UTC)
    problems = []
    for row in read_statuses(session):
        who = "service" if row.agency_id == SERVICE_SCOPE else f"agency {row.agency_id}"
        age = (moment - row.checked_at).total_seconds()
        down_for = (moment - row.since).total_seconds()
        if row.state in NOT_READY:
            problems.append(f"{who}: {row.state}: {row.reason}")
        elif row.agency_id == SERVICE_SCOPE and age > STALE_AFTER_S:
            problems.append(f"service: the anchoring process has not reported for {age:.0f} s")
        elif (row.state == AnchorState.UNAVAILABLE and unavailable_max_s is not None
              and down_for > unavailable_max_s):
            problems.append(f"{who}: unavailable for {down_for:.0f} s: {row.reason}")
    return "; ".join(problems) if problems else None


_BACKLOGS = text(
    "SELECT l.agency_id, l.size,"
    " COALESCE((SELECT MAX(c.tree_size) FROM log_checkpoint c"
    "           WHERE c.agency_id = l.agency_id AND c.tx_hash IS NOT NULL), 0)"
    " FROM agency_log l ORDER BY l.agency_id"
)


def backlogs(conn: Connection) -> list[tuple[str, int, int]]:
    """Per agency log: its leaves not yet anchored, and the size anchored so far."""
    return [(str(agency), max(int(size) - int(anchored), 0), int(anchored))
            for agency, size, anchored in conn.execute(_BACKLOGS).all()]


def backlog_reason(conn: Connection, limit: int) -> str | None:
    """Which logs have more than `limit` leaves waiting for an anchor, in one line."""
    over = [f"agency {agency}: {waiting} leaves not anchored" for agency, waiting, _ in
            backlogs(conn) if waiting > limit]
    return f"{'; '.join(over)} (anchor_backlog_max is {limit})" if over else None
