"""One ingest batch end to end: verify outside the transaction, then store in one transaction.

Verification (the CPU-heavy part) needs only a read-only snapshot of registered readers, kept
in a small cache that is refreshed on a miss and after `READER_CACHE_TTL`. The write
transaction first takes the log's writer lock, re-checks that every signer is still active
(a revocation takes effect at once, not after the cache expires), stores the batch and applies
the custody hook, then commits. A conflict with a concurrent worker (the same redelivered
message, a first write) rolls back and the batch is retried: the retry sees the other
worker's rows and treats them as replays, so at-least-once delivery gives exactly-once state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Final

from sqlalchemy import Engine
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from api.config import Settings
from api.custody.apply import DESK_SESSION_TIMEOUT, DecisionMessage, apply_custody
from api.db import ByIds, table, utcnow
from api.errors import IngestError
from api.ingest.record import RecordedBatch, record_batch, write_sightings
from api.ingest.verify import (
    ClockPolicy,
    InboundMessage,
    ReaderKey,
    Rejected,
    RejectReason,
    Verified,
    reader_key,
    verify_messages,
)
from api.logstore import claim_log_writer
from api.metrics import INGEST_BATCH_SECONDS, INGEST_MESSAGES, INGEST_REJECTED
from api.models.registry import Reader, ReaderStatus
from ledger.log import LogError

READER_CACHE_TTL: Final = 5.0
"""Seconds a reader lookup is trusted by verification; revocation is re-checked in the
transaction anyway, so this only delays a *new* key being found after a cache miss."""

MAX_READER_CACHE: Final = 10_000
"""Cached key ids (including unknown ones); cleared when full, so random key ids from a
hostile publisher cannot grow memory."""

MAX_ATTEMPTS: Final = 5
"""Transaction attempts per batch before giving up (and leaving the messages unacknowledged,
so the broker redelivers them)."""

Outcome = Verified | Rejected
"""What verifying one inbound message gives."""

CustodyHook = Callable[[Session, RecordedBatch, datetime], list[DecisionMessage]]
"""Applies custody rules to a recorded batch inside its transaction; returns the answers to
publish once it has committed (`api.custody.apply.apply_custody`)."""


class ReaderDirectory:
    """Key id -> `ReaderKey`, read from the database on a miss or after the TTL."""

    def __init__(self, engine: Engine, ttl: float = READER_CACHE_TTL) -> None:
        self.engine = engine
        self._ttl = ttl
        self._cache: dict[str, tuple[float, ReaderKey | None]] = {}

    def get(self, kid: str) -> ReaderKey | None:
        now = time.monotonic()
        cached = self._cache.get(kid)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        with Session(self.engine) as session:
            reader = session.exec(select(Reader).where(Reader.key_id == kid)).first()
        found = None if reader is None else reader_key(reader)
        if len(self._cache) >= MAX_READER_CACHE:
            self._cache.clear()
        self._cache[kid] = (now, found)
        return found


@dataclass(slots=True)
class BatchResult:
    recorded: RecordedBatch
    decisions: list[DecisionMessage]
    attempts: int = 1
    seconds: float = 0.0


_READERS = table(Reader)
_REVOKED = ByIds(_READERS.c.id, lambda where: core_select(_READERS.c.id).where(
    where, _READERS.c.status != ReaderStatus.ACTIVE))


def _recheck_revocations(session: Session, verified: list[Verified]) -> list[Rejected]:
    ids = {item.reader.reader_id for item in verified}
    if not ids:
        return []
    revoked = set(_REVOKED(session.connection(), ids).scalars())
    gone = [item for item in verified if item.reader.reader_id in revoked]
    for item in gone:
        verified.remove(item)
    return [
        Rejected(i.message, RejectReason.REVOKED_DEVICE,
                 f"reader {i.reader.reader_id} is revoked", i.reader.reader_id)
        for i in gone
    ]


class IngestPipeline:
    """Verifies and stores batches of inbound messages for one database."""

    def __init__(
        self, engine: Engine, settings: Settings, custody: CustodyHook = apply_custody,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self._settings = settings
        timeout_s = getattr(settings, "desk_session_timeout_s", None)
        self.session_timeout = (DESK_SESSION_TIMEOUT if timeout_s is None
                                else timedelta(seconds=timeout_s))
        if custody is apply_custody and timeout_s is not None:
            # The desk session timeout is a setting once `Settings` has one.
            custody = partial(apply_custody, session_timeout=self.session_timeout)
        self._custody = custody
        self._clock = clock
        self.readers = ReaderDirectory(engine)

    def now(self) -> datetime:
        """The time a batch is verified and stored at (the pipeline's clock)."""
        return self._clock()

    def policy(self, now: datetime) -> ClockPolicy:
        """How far from `now` an observation's time may be, from the settings."""
        return ClockPolicy(
            now=now, max_future=timedelta(seconds=self._settings.max_future_skew_s),
            max_age=timedelta(seconds=self._settings.max_observation_age_s),
        )

    def verify(self, messages: Sequence[InboundMessage], now: datetime) -> list[Outcome]:
        """Check every message of a batch (`verify_message`), in this thread."""
        return verify_messages(messages, self.readers, self.policy(now))

    def process(
        self, messages: Sequence[InboundMessage], *, outcomes: Sequence[Outcome] | None = None,
        now: datetime | None = None,
    ) -> BatchResult:
        """Verify and commit `messages` as one batch; raise `IngestError` if it cannot commit.

        `outcomes`: `messages` already verified at `now` (`api.ingest.verifier`, another
        process), in their order; else they are verified here first."""
        started = time.perf_counter()
        if now is None:
            now = self._clock()
        if outcomes is None:
            outcomes = self.verify(messages, now)
        elif len(outcomes) != len(messages):
            raise ValueError(f"{len(outcomes)} verdicts for {len(messages)} messages")
        for attempt in range(1, MAX_ATTEMPTS + 1):
            verified = [o for o in outcomes if isinstance(o, Verified)]
            rejected = [o for o in outcomes if isinstance(o, Rejected)]
            try:
                with Session(self.engine) as session:
                    claim_log_writer(session, now)
                    rejected += _recheck_revocations(session, verified)
                    recorded = record_batch(session, verified, rejected, now)
                    decisions = self._custody(session, recorded, now)
                    write_sightings(session, recorded)  # those the custody rules left
                    session.commit()
                break
            except (IntegrityError, OperationalError, LogError) as exc:
                if attempt == MAX_ATTEMPTS:
                    raise IngestError(
                        f"batch of {len(messages)} not committed after {attempt} attempts: "
                        f"{type(exc).__name__}"
                    ) from None
                time.sleep(0.01 * attempt)
        seconds = time.perf_counter() - started
        INGEST_BATCH_SECONDS.observe(seconds)
        INGEST_MESSAGES.labels("accepted").inc(len(recorded.accepted))
        INGEST_MESSAGES.labels("duplicate").inc(len(recorded.duplicates))
        INGEST_MESSAGES.labels("rejected").inc(len(recorded.rejected))
        for item in recorded.rejected:
            INGEST_REJECTED.labels(item.reason.value).inc()
        return BatchResult(recorded, decisions, attempts=attempt, seconds=seconds)
