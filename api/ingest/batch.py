"""One ingest batch as a unit of work, in the spirit of Trillian's SequenceBatch.

An `IngestBatch` lives for one write transaction (the log writer's lock claimed first). It
loads what the batch needs once: the devices' sequence cursors (locked), and through its
`custody` part everything the custody rules read (readers, assets locked FOR UPDATE with their
class policy and shares, badges, people, desk sessions, commitments). It queues every write
(observation rows here; sightings, custody events, asset updates, alerts, refusals, webhook
events and desk sessions in `custody`) and `flush()` writes each table once, then stores the
rules' answers as decisions. Only the sequence gaps are written as they are found: whether a
read waits for its badge depends on them. Numbers spent by refusals whose signature verified
move the cursors and close gaps like stored ones (`api.ingest.checks`, "Attribution"), and a
reader's signed lost range closes the gaps it covers. Last, `acks` reads how far each reader
of the batch is now stored, for the end-to-end acks sent after commit (`api.ingest.acks`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session

from api.bulk import insert_rows
from api.custody.batch import DESK_SESSION_TIMEOUT, CustodyBatch
from api.db import table
from api.ingest import sequence
from api.ingest.acks import AckMessage, ack_messages
from api.ingest.answers import DecisionMessage, store_answers
from api.ingest.checks import ReaderKey, Rejected, RejectReason, Verified
from api.ingest.record import (
    RecordedBatch,
    note_sightings,
    observation_rows,
    quarantine,
    sort_out,
)
from api.models.ingest import IngestedObservation

_OBSERVATIONS = table(IngestedObservation)


class IngestBatch:
    """The state and queued writes of one batch stored at `now` in `session`'s transaction."""

    def __init__(
        self, session: Session, now: datetime, *,
        session_timeout: timedelta = DESK_SESSION_TIMEOUT,
    ) -> None:
        self.session = session
        self.now = now
        self.custody = CustodyBatch(session, now, session_timeout=session_timeout)
        """The custody rules' part: what they read and what they change."""
        self._cursors = sequence.Cursors({}, {})
        self._observations: list[dict[str, object]] = []
        self.lost = 0
        """Numbers closed as lost at their reader in this batch."""

    def sort_out(
        self, verified: Sequence[Verified], rejected: Sequence[Rejected]
    ) -> RecordedBatch:
        """Lock the devices' cursors; tell new reads from replays; quarantine the refused."""
        arriving: dict[str, list[int]] = defaultdict(list)
        for item in verified:
            arriving[item.observation.device].append(item.observation.seq)
        for refused in rejected:
            if refused.reader is not None and refused.seqs is not None:
                arriving[refused.reader.reader_id].append(refused.seqs[0])
        self._cursors = sequence.load_cursors(self.session, arriving)
        recorded = sort_out(self.session, verified, rejected, self._cursors)
        for refused in recorded.rejected:
            quarantine(self.session, refused, self.now)
        return recorded

    def load(self, fresh: Sequence[Verified]) -> None:
        """Load what ruling on the new reads `fresh` takes, once for the batch."""
        self.custody.facts.load(fresh)

    def record(
        self, fresh: Sequence[Verified], refused: Sequence[Rejected] = (),
    ) -> dict[str, int]:
        """Queue `fresh` as observations, move the devices' cursors and gaps (by `fresh` and
        by the attributed numbers of `refused`), move the last sightings of their assets.
        Return the devices some of whose missing numbers arrived, each with the lowest of them
        (reads above it may have been held for their badge)."""
        per_device: dict[str, set[int]] = defaultdict(set)
        for item in fresh:
            per_device[item.observation.device].add(item.observation.seq)
        lost: list[tuple[str, tuple[int, int]]] = []
        for refusal in refused:
            if refusal.reader is None or refusal.seqs is None:
                continue  # not attributable: moves nothing
            if refusal.reason is RejectReason.LOST_AT_READER:
                lost.append((refusal.reader.reader_id, refusal.seqs))
            else:
                per_device[refusal.reader.reader_id].add(refusal.seqs[0])
        refilled = (sequence.advance(self.session, per_device, self.now, self._cursors)
                    if per_device else {})
        for device_id, (first, last) in lost:
            self.lost += sequence.close_lost(self.session, device_id, first, last, self.now)
        if fresh:
            self._observations = observation_rows(fresh, self.now)
            facts = self.custody.facts
            note_sightings(self.session, fresh, facts, self.custody.writes)
        return refilled

    def acks(self, recorded: RecordedBatch) -> list[AckMessage]:
        """The end-to-end acks for every reader the batch heard from with a verified signature
        (new reads, replays, attributed refusals), as stored once this transaction commits."""
        readers: dict[str, ReaderKey] = {}
        for item in (*recorded.accepted, *recorded.duplicates):
            readers.setdefault(item.reader.reader_id, item.reader)
        for refused in recorded.rejected:
            if refused.reader is not None and refused.seqs is not None:
                readers.setdefault(refused.reader.reader_id, refused.reader)
        return ack_messages(self.session, readers, self.now) if readers else []

    def flush(self) -> list[DecisionMessage]:
        """Write every queued change, each table once, and the answers as decisions; return
        the answers to publish once the transaction has committed."""
        insert_rows(self.session.connection(), _OBSERVATIONS, self._observations)
        self._observations = []
        return store_answers(self.session, self.custody.flush(), self.now)
