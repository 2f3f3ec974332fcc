"""Whether this node is ready, condition by condition, for `/readyz` and `/metrics` alike.

Each condition is checked from the database, which every process of the node shares: the
database itself and its schema, the node's ingest workers' broker subscription
(`api.broker_status`), anchoring as its process reports it (`api.anchor_status`: settings or
log keys that cannot work, a chain that needs the operator, a node unreachable for longer than
`anchor_unavailable_max_s`, the process no longer reporting) and the anchoring backlog (more
than `anchor_backlog_max` leaves of a log waiting for an anchor). `/readyz` answers 503 with
the reasons of those that fail; `kitledger_ready_condition{condition}` is 1 for each that holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from api import anchor_status, broker_status
from api.config import Settings
from api.errors import MigrationError
from api.migrate import current_revision, head_revision


class Condition(StrEnum):
    """What a ready node needs, in the order `/readyz` checks it."""

    DATABASE = "database"
    SCHEMA = "schema"
    BROKER = "broker"
    ANCHORING = "anchoring"
    ANCHOR_BACKLOG = "anchor_backlog"


@dataclass(frozen=True, slots=True)
class Readiness:
    """The reason each failing condition fails; the schema revision when it could be read."""

    failing: dict[Condition, str]
    revision: str | None

    @property
    def ready(self) -> bool:
        return not self.failing

    def reason(self) -> str:
        """The failing conditions in one line, in check order (a database that cannot be
        read, or is at another schema, alone: nothing else could be checked)."""
        for condition in (Condition.DATABASE, Condition.SCHEMA):
            if condition in self.failing:
                return self.failing[condition]
        return "; ".join(f"{condition}: {why}" for condition, why in self.failing.items())


def check(engine: Engine, settings: Settings, node: str) -> Readiness:
    """Check every condition; once the database or its schema fails, the rest cannot be
    read and are reported failing for that reason."""
    failing: dict[Condition, str] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except (SQLAlchemyError, MigrationError):
        return _all_failing(Condition.DATABASE, "database unavailable", None)
    if revision != head_revision(engine):
        return _all_failing(Condition.SCHEMA, "database schema is not at the current revision",
                            revision)
    try:
        with Session(engine) as session:
            broker = broker_status.not_ready_reason(session, node)
            anchoring = anchor_status.not_ready_reason(
                session, unavailable_max_s=settings.anchor_unavailable_max_s)
            backlog = (None if settings.anchor_chain_url == "none" else
                       anchor_status.backlog_reason(session.connection(),
                                                    settings.anchor_backlog_max))
    except SQLAlchemyError:
        return _all_failing(Condition.DATABASE, "database unavailable", revision)
    for condition, why in ((Condition.BROKER, broker), (Condition.ANCHORING, anchoring),
                           (Condition.ANCHOR_BACKLOG, backlog)):
        if why is not None:
            failing[condition] = why
    return Readiness(failing, revision)


def _all_failing(first: Condition, why: str, revision: str | None) -> Readiness:
    """`first` failed for `why`; every condition after it is unknown, so not met."""
    conditions = list(Condition)
    after = conditions[conditions.index(first) + 1:]
    return Readiness({first: why, **{c: f"unknown: {first} failed" for c in after}}, revision)
