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
"""

from __future__ import annotations

import logging
import threading
import time
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

log = logging.getLogger(__name__)

OVERDUE_SCAN_S: Final = 60.0
"""Seconds between overdue-loan scans: loans run for days, so a minute's delay is harmless."""

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
        if time.monotonic() >= self._next_overdue:
            self._scan_overdue()
            self._next_overdue = time.monotonic() + OVERDUE_SCAN_S
        if time.monotonic() >= self._next_held:
            self._scan_held(everything=self._everything)
            self._everything = False
            self._next_held = time.monotonic() + HELD_SCAN_S
        if time.monotonic() >= self._next_missing:
            self._ask_missing()
            self._next_missing = time.monotonic() + MISSING_SCAN_S

    def settle(self, *, force: bool = False) -> None:
        """Mark the decisions the broker has acknowledged published."""
        try:
            self._decisions.settle(utcnow(), force=force)
        except SQLAlchemyError:
            log.exception("marking decisions published failed; they are re-sent on restart")

    def _run_settler(self, stopping: threading.Event) -> None:
        while not stopping.wait(SETTLE_INTERVAL_S):
            try:
                self.settle(force=True)  # paced here
            except Exception:  # as housekeeping in the ingest thread: never end the thread
                log.exception("marking decisions published failed; continuing")

    def _resend_unpublished(self) -> None:
        try:
            resent = self._decisions.resend_unpublished()
        except SQLAlchemyError:
            log.exception("could not re-send unpublished decisions; retrying")
            self._decisions.resend_needed = True
            return
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
        except SQLAlchemyError:
            log.exception("overdue scan failed; retrying at the next interval")

    def _scan_held(self, *, everything: bool) -> None:
        """Answer reads held past `HOLD_LIMIT` for a badge that never came; `everything`
        looks behind every open gap (the first scan), else behind recent ones."""
        now = utcnow()
        since = None if everything else now - STALE_SCAN_WINDOW
        try:
            with Session(self._pipeline.engine) as session:  # read only: usually nothing held
                if not stale_holds(session, now - HOLD_LIMIT, since):
                    return
            with Session(self._pipeline.engine) as session:
                claim_log_writer(session, now)
                decisions = answer_stale_holds(
                    session, now, session_timeout=self._pipeline.session_timeout,
                    gaps_since=since)
                session.commit()
        except SQLAlchemyError:
            log.exception("held-read scan failed; retrying at the next interval")
            return
        self._decisions.publish(decisions)
