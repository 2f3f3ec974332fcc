"""Whether this node's ingest workers are subscribed to the broker, as they record it and
`/readyz` and `/metrics` read it.

Each ingest worker runs in a process of its own (`api.serve.run_ingest`) and the HTTP workers
in others, so the worker writes its state into `BrokerStatus` (one row per worker of a node)
when it changes and at least every `HEARTBEAT_S`; `serve` writes a `starting` row for each
worker before starting it, so a node is not ready until every worker has subscribed, and
deletes its rows when it stops. A row nobody refreshes for `STALE_AFTER_S` means the worker's
process died or hangs. A node with no rows at all runs no ingest worker (an API-only process)
and is not held up by the broker.

The worker also says it in its log, in one line, when it has not subscribed `SILENT_S` after
starting or after losing the broker, again every `REPEAT_S` while that lasts, and once when it
is subscribed again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import Engine, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from api.models.broker import MAX_BROKER_REASON_CHARS, BrokerStatus

log = logging.getLogger("kitledger.broker")

HEARTBEAT_S: Final = 10.0
"""A worker refreshes its row at least this often."""

STALE_AFTER_S: Final = 60.0
"""A row older than this means the worker stopped reporting: six missed heartbeats."""

SILENT_S: Final = 5.0
"""How long a worker may be without its subscription before it logs an error: a broker
accepts a connection within milliseconds, and the client's first retry comes after 1 s."""

REPEAT_S: Final = 60.0
"""How often the error is logged again while the worker stays without its subscription."""

FORGET_AFTER: Final = timedelta(days=1)
"""Rows of nodes that stopped without deleting theirs (killed) are removed after this."""


class BrokerState(StrEnum):
    """Where one ingest worker stands with the broker."""

    STARTING = "starting"
    CONNECTING = "connecting"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    SUBSCRIBED = "subscribed"
    LEAVING = "leaving"
    STOPPED = "stopped"
    """The worker's process ended while `serve` ran (recorded by `serve`)."""


def write_status(engine: Engine, node: str, worker: int, state: BrokerState, reason: str,
                 now: datetime) -> None:
    """Record `state` for the node's worker; `since` moves only when the state changes."""
    with Session(engine) as session:
        row = session.get(BrokerStatus, (node, worker))
        if row is None:
            row = BrokerStatus(node_id=node, worker=worker, state=state, since=now)
        elif row.state != state:
            row.state, row.since = state, now
        row.reason, row.checked_at = reason[:MAX_BROKER_REASON_CHARS], now
        session.add(row)
        session.commit()


def expect_workers(engine: Engine, node: str, workers: int, now: datetime) -> None:
    """`serve` is about to start `workers` ingest workers: each is `starting` until it says
    otherwise. Rows of nodes gone for `FORGET_AFTER` are removed."""
    with Session(engine) as session:
        session.execute(delete(BrokerStatus).where(
            (col(BrokerStatus.node_id) == node) | (col(BrokerStatus.checked_at)
                                                   < now - FORGET_AFTER)))
        for worker in range(workers):
            session.add(BrokerStatus(node_id=node, worker=worker, state=BrokerState.STARTING,
                                     reason="the ingest worker is starting", since=now,
                                     checked_at=now))
        session.commit()


def forget_node(engine: Engine, node: str) -> None:
    """The node stopped: its workers no longer report."""
    with Session(engine) as session:
        session.execute(delete(BrokerStatus).where(col(BrokerStatus.node_id) == node))
        session.commit()


@dataclass(frozen=True, slots=True)
class WorkerProblem:
    worker: int
    state: str
    reason: str


def worker_problems(session: Session, node: str, now: datetime | None = None
                    ) -> list[WorkerProblem]:
    """The node's workers that are not subscribed (or stopped reporting)."""
    moment = now or datetime.now(UTC)
    problems = []
    for row in session.exec(select(BrokerStatus).where(BrokerStatus.node_id == node)
                            .order_by(col(BrokerStatus.worker))):
        age = (moment - row.checked_at).total_seconds()
        if row.state == BrokerState.STOPPED:
            problems.append(WorkerProblem(row.worker, row.state, row.reason))
        elif age > STALE_AFTER_S:
            problems.append(WorkerProblem(row.worker, "stale", f"has not reported for "
                                          f"{age:.0f} s (its process died or hangs)"))
        elif row.state != BrokerState.SUBSCRIBED:
            problems.append(WorkerProblem(row.worker, row.state, row.reason))
    return problems


def not_ready_reason(session: Session, node: str, now: datetime | None = None) -> str | None:
    """Why the node's ingest makes it not ready, in one line; None when it does not."""
    problems = worker_problems(session, node, now)
    return "; ".join(f"ingest worker {p.worker}: {p.state}: {p.reason}"
                     for p in problems) or None


class BrokerReporter:
    """One worker's reports: its row kept current, and the log told when it stays without
    its subscription. `report` is called from the worker process's main loop."""

    def __init__(self, engine: Engine, node: str, worker: int) -> None:
        self.engine = engine
        self.node = node
        self.worker = worker
        self._state: BrokerState | None = None
        self._written = 0.0
        self._unsubscribed_since: float | None = None
        self._said_at: float | None = None

    def report(self, state: BrokerState, reason: str, now: float) -> None:
        """Record `state` (when it changed, or the heartbeat is due) and log as needed."""
        self._tell_log(state, reason, now)
        if state == self._state and now - self._written < HEARTBEAT_S:
            return
        try:
            write_status(self.engine, self.node, self.worker, state, reason,
                         datetime.fromtimestamp(now, UTC))
        except SQLAlchemyError as exc:
            # The database away: readiness says so itself; try again next round.
            log.debug("broker status not recorded: %s", type(exc).__name__)
            return
        self._state, self._written = state, now

    def _tell_log(self, state: BrokerState, reason: str, now: float) -> None:
        if state in (BrokerState.SUBSCRIBED, BrokerState.LEAVING):
            if self._said_at is not None and self._unsubscribed_since is not None:
                log.info("ingest worker %d subscribed to the broker again after %.1f s",
                         self.worker, now - self._unsubscribed_since)
            self._unsubscribed_since = self._said_at = None
            return
        if self._unsubscribed_since is None:
            self._unsubscribed_since = now
        waited = now - self._unsubscribed_since
        if waited < SILENT_S or (self._said_at is not None and now - self._said_at < REPEAT_S):
            return
        log.error("ingest worker %d not subscribed to the broker for %.0f s: %s; /readyz "
                  "answers 503 until it is", self.worker, waited, reason)
        self._said_at = now
