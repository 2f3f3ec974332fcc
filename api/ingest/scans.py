"""The ingest worker's periodic work beside its batches: overdue loans, reads held too long,
decisions to mark published (and to send again after the broker was away), and acks asking
readers for gaps they have not filled (`api.ingest.acks.old_gap_acks`) even when they send
nothing new.

Run from the ingest thread between batches (`run_due`), each at its own interval, except
marking decisions published (`DecisionPublisher.settle`, an UPDATE of every decision the
broker acknowledged in the last half second): on PostgreSQL it runs in a thread of its own,
over its own connection, because between batches its wait on the server held up the next
batch, costing ingest about a tenth of its rate. On SQLite, whose one writer it would queue
behind anyway, the ingest thread settles between batches.

The two scans run once across every node: each worker bids for their roles (`api.roles`) at
each held-read scan's interval, and only the holder scans; a new holder scans behind every
open gap and for overdue loans at once. Failures because the database is away are logged once
per outage (`api.outage.DATABASE`), not once per try.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Final

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from api.custody.overdue import raise_overdue_alerts
from api.custody.pending import HOLD_LIMIT, STALE_SCAN_WINDOW, stale_holds
from api.db import utcnow
from api.ingest.acks import MISSING_SCAN_S, old_gap_acks
from api.ingest.answers import answer_stale_holds
from api.ingest.pipeline import IngestPipeline
from api.ingest.publishing import SETTLE_INTERVAL_S, DecisionPublisher
from api.logstore import claim_log_writer
from api.node import node_id
from api.outage import DATABASE, is_unavailable
from api.roles import Election, Role

log = logging.getLogger(__name__)

OVERDUE_SCAN_S: Final = 60.0
"""Seconds between overdue-loan scans: loans run for days, so a minute's delay is harmless."""

ORPHANED_AFTER_S: Final = 2.0
"""A worker's first re-send waits this long after it connects, then re-sends the decisions
committed before it started and still unpublished: a crashed worker's, not those another
node published a moment ago and had yet to mark (it does so within `SETTLE_INTERVAL_S` of
the broker's acknowledgement, well within this)."""

HELD_SCAN_S: Final = 5.0
"""Seconds between scans for reads held past `api.custody.pending.HOLD_LIMIT`: a query on the
devices with an open gap (a handful), so cheap enough to run often."""


class PeriodicScans:
    """The worker's scans over `pipeline`'s database; decisions go out through `decisions`."""

    def __init__(self, pipeline: IngestPipeline, decisions: DecisionPublisher) -> None:
        self._pipeline = pipeline
        self._decisions = decisions
        self._next_overdue = self._next_held = self._next_missing = time.monotonic()
        self._everything = True  # the first held-read scan looks behind every open gap
        self._settler: threading.Thread | None = None
        self._started_at: datetime | None = utcnow()
        """Until the first re-send: when this worker started (see `ORPHANED_AFTER_S`)."""
        self._first_resend_at: float | None = None
        self._connections = 0
        self._election = Election(pipeline.engine, (Role.OVERDUE_SCAN, Role.HELD_SCAN),
                                  node=node_id())

    def connected(self) -> None:
        """The worker (re)connected: from the second connection on, publishes may have been
        refused meanwhile (this worker's, however new), so re-send every unpublished one."""
        self._connections += 1
        if self._connections > 1:
            self._started_at = None

    def close(self) -> None:
        """Give the scans' roles up, for another node's worker to take."""
        self._election.close()

    def start_settler(self, stopping: threading.Event) -> None:
        """On PostgreSQL, settle decisions in a thread of its own until `stopping` is set."""
        if self._pipeline.engine.dialect.name == "sqlite":
            return
        self._settler = threading.Thread(
            target=self._run_settler, args=(stopping,), name="kitledger-settle", daemon=True)
        self._settler.start()

    def join_settler(self, timeout: float) -> None:
        if self._settler is not None:
            self._settler.join(timeout=timeout)

    def run_due(self) -> None:
        """Whatever is due: re-send refused publishes, settle (without a settler thread), scan
        for overdue loans and for reads held too long."""
        if self._decisions.resend_needed:
            self._resend_unpublished()
        if self._settler is None:
            self.settle()
        if time.monotonic() >= self._next_held:
            self._next_held = time.monotonic() + HELD_SCAN_S
            self._elect()
            if self._election.holds(Role.HELD_SCAN):
                self._scan_held(everything=self._everything)
                self._everything = False
        if time.monotonic() >= self._next_overdue and self._election.holds(Role.OVERDUE_SCAN):
            self._scan_overdue()
            self._next_overdue = time.monotonic() + OVERDUE_SCAN_S
        # One node asks readers for old gaps (the held-read scan's holder): two would each
        # make the readers send the same rows again.
        if time.monotonic() >= self._next_missing and self._election.holds(Role.HELD_SCAN):
            self._ask_missing()
            self._next_missing = time.monotonic() + MISSING_SCAN_S

    def _elect(self) -> None:
        """Bid for the scans' roles; a role just taken over scans everything at once."""
        before = self._election.held
        gained = self._election.refresh() - before
        if Role.HELD_SCAN in gained:
            self._everything = True
        if Role.OVERDUE_SCAN in gained:
            self._next_overdue = time.monotonic()

    def settle(self, *, force: bool = False) -> None:
        """Mark the decisions the broker has acknowledged published."""
        try:
            if self._decisions.settle(utcnow(), force=force):
                DATABASE.ok()
        except SQLAlchemyError as exc:
            _failed(exc, "marking decisions published")

    def _run_settler(self, stopping: threading.Event) -> None:
        while not stopping.wait(SETTLE_INTERVAL_S):
            try:
                self.settle(force=True)  # paced here
            except Exception:  # as housekeeping in the ingest thread: never end the thread
                log.exception("marking decisions published failed; continuing")

    def _resend_unpublished(self) -> None:
        if self._started_at is not None:  # the first: leave other nodes' answers be
            if self._first_resend_at is None:
                self._first_resend_at = time.monotonic() + ORPHANED_AFTER_S
            if time.monotonic() < self._first_resend_at:
                return
        try:
            resent = self._decisions.resend_unpublished(self._started_at)
            self._started_at = None
        except SQLAlchemyError as exc:
            _failed(exc, "re-sending unpublished decisions")
            self._decisions.resend_needed = True
            return
        DATABASE.ok()
        if resent:
            log.info("re-sent %d decisions not yet acknowledged by the broker", resent)

    def _ask_missing(self) -> None:
        """Send acks with `missing` to every reader with an old open gap."""
        try:
            with Session(self._pipeline.engine) as session:  # read only
                acks = old_gap_acks(session, utcnow())
        except SQLAlchemyError:
            log.exception("missing-numbers scan failed; retrying at the next interval")
            return
        self._decisions.publish_acks(acks)

    def _scan_overdue(self) -> None:
        try:
            with Session(self._pipeline.engine) as session:
                raise_overdue_alerts(session, utcnow())
                session.commit()
        except SQLAlchemyError as exc:
            _failed(exc, "scanning for overdue loans")
            return
        DATABASE.ok()

    def _scan_held(self, *, everything: bool) -> None:
        """Answer reads held past `HOLD_LIMIT` for a badge that never came; `everything`
        looks behind every open gap (the first scan), else behind recent ones."""
        now = utcnow()
        since = None if everything else now - STALE_SCAN_WINDOW
        try:
            with Session(self._pipeline.engine) as session:  # read only: usually nothing held
                held = stale_holds(session, now - HOLD_LIMIT, since)
            DATABASE.ok()
            if not held:
                return
            with Session(self._pipeline.engine) as session:
                claim_log_writer(session, now)  # every log: the held reads' agencies vary
                decisions = answer_stale_holds(
                    session, now, session_timeout=self._pipeline.session_timeout,
                    gaps_since=since)
                session.commit()
        except SQLAlchemyError as exc:
            _failed(exc, "scanning for held reads")
            return
        DATABASE.ok()
        self._decisions.publish(decisions)


def _failed(exc: SQLAlchemyError, doing: str) -> None:
    """A scan failed: once per outage if the database is away, else (a bug) in full; the
    scan runs again at its next interval either way."""
    if is_unavailable(exc):
        DATABASE.failed(exc, doing)
    else:
        log.exception("%s failed; retrying at the next interval", doing)
