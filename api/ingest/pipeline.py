"""One ingest batch end to end: verify outside the transaction, then store in one transaction.

Verification (the CPU-heavy part) needs only a read-only snapshot of registered readers, kept
in a small cache that is refreshed on a miss and after `READER_CACHE_TTL`. The write
transaction first claims the logs it will append to (`claim_log_writer`: its readers'
agencies, and those whose kit they read that an earlier batch found, such as a lender's whose
kit a borrower's desk reads; a batch that finds another is tried again with it), re-checks
that every signer is still active (a revocation takes effect at once, not after the cache
expires), then works through one `IngestBatch` (load once, queue every write, flush each
table once) and commits. A conflict with a concurrent worker (the same redelivered message,
a first write) rolls back and the batch is retried: the retry sees the other worker's rows
and treats them as replays, so at-least-once delivery gives exactly-once state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Engine
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, select

from api.config import Settings
from api.custody.batch import DESK_SESSION_TIMEOUT, CustodyBatch
from api.custody.reads import VerifiedRead
from api.custody.ruling import rule_on_arrivals
from api.db import ByIds, table, utcnow
from api.errors import IngestError
from api.ingest.acks import AckMessage
from api.ingest.answers import DecisionMessage
from api.ingest.batch import IngestBatch
from api.ingest.checks import (
    ClockPolicy,
    InboundMessage,
    ReaderKey,
    Rejected,
    RejectReason,
    Verified,
    reader_key,
    verify_messages,
)
from api.ingest.record import RecordedBatch
from api.logstore import UnclaimedLog, claim_log_writer
from api.metrics import (
    INGEST_BATCH_SECONDS,
    INGEST_LOST_AT_READER,
    INGEST_MESSAGES,
    INGEST_REJECTED,
)
from api.models.registry import Reader, ReaderStatus
from ledger.merkle_log import LogError

READER_CACHE_TTL: Final = 5.0
"""Seconds a reader lookup is trusted by verification; revocation is re-checked in the
transaction anyway, so this only delays a *new* key being found after a cache miss."""

MAX_READER_CACHE: Final = 10_000
"""Cached key ids (including unknown ones); cleared when full, so random key ids from a
hostile publisher cannot grow memory."""

MAX_OTHER_AGENCIES: Final = 64
"""Agencies remembered per reader agency as ones its batches also append to (their kit on
loan to it); more are forgotten and found again, at the cost of a retried batch each."""

MAX_ATTEMPTS: Final = 5
"""Transaction attempts per batch before giving up (and leaving the messages unacknowledged,
so the broker redelivers them)."""

Outcome = Verified | Rejected
"""What verifying one inbound message gives."""

CustodyHook = Callable[[CustodyBatch, Sequence[VerifiedRead], Mapping[str, int]], None]
"""Rules on a batch's new reads, given the devices whose missing numbers arrived (each with
the lowest of them), queuing every change and answer on the batch
(`api.custody.ruling.rule_on_arrivals`)."""


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
    """What committing a batch did (`recorded`), the answers to publish now that it has
    (`decisions`), and what it took."""

    recorded: RecordedBatch
    decisions: list[DecisionMessage]
    acks: list[AckMessage] = field(default_factory=list)
    """End-to-end acks for the batch's readers (`api.ingest.acks`), to send after commit."""
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
                 f"reader {i.reader.reader_id} is revoked", i.reader.reader_id, i.reader,
                 (i.observation.seq, i.observation.seq))
        for i in gone
    ]


class IngestPipeline:
    """Verifies and stores batches of inbound messages for one database."""

    def __init__(
        self, engine: Engine, settings: Settings, custody: CustodyHook = rule_on_arrivals,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self._settings = settings
        # The desk session timeout is a setting once `Settings` has one.
        timeout_s = getattr(settings, "desk_session_timeout_s", None)
        self.session_timeout = (DESK_SESSION_TIMEOUT if timeout_s is None
                                else timedelta(seconds=timeout_s))
        self._custody = custody
        self._clock = clock
        self.readers = ReaderDirectory(engine)
        self._also_claims: dict[str, set[str]] = {}
        """Reader agency -> other agencies whose logs its batches appended to."""

    def _logs_to_claim(self, verified: Sequence[Verified]) -> set[str]:
        """The agencies whose logs a batch of `verified` reads will append to, as far as
        known: its readers' and those their earlier batches also needed."""
        agencies = {item.reader.agency_id for item in verified}
        for agency in list(agencies):
            agencies |= self._also_claims.get(agency, set())
        return agencies

    def _remember_claim(self, verified: Sequence[Verified], agency_id: str) -> None:
        for reader_agency in {item.reader.agency_id for item in verified}:
            others = self._also_claims.setdefault(reader_agency, set())
            if len(others) >= MAX_OTHER_AGENCIES:
                others.clear()
            others.add(agency_id)

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

        `outcomes`: `messages` already verified at `now` (`api.ingest.verifier_pool`, another
        process), in their order; else they are verified here first.

        The whole story of a batch: verify; take the log writer's lock; re-check that no
        signer was revoked meanwhile; tell new reads from replays; load what the rules read;
        record observations and sequence gaps; rule; flush every queued write; read how far
        each reader is stored; commit; hand back the answers and acks to publish."""
        started = time.perf_counter()
        if now is None:
            now = self._clock()
        if outcomes is None:
            outcomes = self.verify(messages, now)
        elif len(outcomes) != len(messages):
            raise ValueError(f"{len(outcomes)} verdicts for {len(messages)} messages")
        claims: set[str] = set()
        for attempt in range(1, MAX_ATTEMPTS + 1):
            verified = [o for o in outcomes if isinstance(o, Verified)]
            rejected = [o for o in outcomes if isinstance(o, Rejected)]
            claims |= self._logs_to_claim(verified)
            try:
                with Session(self.engine) as session:
                    claim_log_writer(session, now, claims)  # their only writer until commit
                    rejected += _recheck_revocations(session, verified)
                    batch = IngestBatch(session, now, session_timeout=self.session_timeout)
                    recorded = batch.sort_out(verified, rejected)  # new, replayed, refused
                    batch.load(recorded.accepted)  # what the rules read, once
                    # observations, gaps (refused-but-signed numbers too), sightings
                    refilled = batch.record(recorded.accepted, recorded.rejected)
                    self._custody(batch.custody, recorded.accepted, refilled)
                    decisions = batch.flush()  # each table once, and the answers
                    acks = batch.acks(recorded)  # how far each reader is stored now
                    session.commit()
                break
            except UnclaimedLog as exc:
                # Kit of another agency (lent to a reader's): its log too, from the start.
                self._remember_claim(verified, exc.agency_id)
                claims.add(exc.agency_id)
                if attempt == MAX_ATTEMPTS:
                    raise IngestError(f"batch of {len(messages)} not committed after "
                                      f"{attempt} attempts: {exc}") from None
            except (IntegrityError, OperationalError, LogError) as exc:
                # A conflict (a concurrent worker wrote first, a lock wait gave up): roll
                # back and try again; the retry sees the other worker's rows as replays.
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
        if batch.lost:
            INGEST_LOST_AT_READER.inc(batch.lost)
        return BatchResult(recorded, decisions, acks, attempts=attempt, seconds=seconds)
