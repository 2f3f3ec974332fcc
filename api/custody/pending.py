"""Reads that arrive before the badge that opened their session.

Several ingest workers share one subscription, so a desk's badge read and the kit read after it
can be committed in either order. A kit read naming a session that is not open yet, from a
device with sequence numbers still missing below it, is held (stored, not ruled on) rather
than refused; when the badge arrives and opens the session, the held reads are ruled on then.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from sqlalchemy import exists
from sqlmodel import Session, col, select

from api.config import MAX_INGEST_BATCH
from api.ingest.verify import ReaderKey, Verified
from api.models.custody import Decision
from api.models.ingest import IngestedObservation, SequenceGap
from ledger.core.envelope import Envelope
from ledger.core.records import Observation, parse_time

MAX_HELD_READS: Final = 2 * MAX_INGEST_BATCH
"""Reads replayed when a session opens: the most that can be in flight ahead of a badge is what
the workers hold unacknowledged (Receive Maximum is twice a batch), so this bounds the query
without ever leaving a legitimately held read behind."""


def awaiting_earlier(session: Session, device_id: str, seq: int) -> bool:
    """Whether some sequence number below `seq` of `device_id` has not arrived yet."""
    return session.exec(
        select(SequenceGap.id).where(
            SequenceGap.device_id == device_id, col(SequenceGap.closed_at).is_(None),
            SequenceGap.first_seq < seq,
        ).limit(1)
    ).first() is not None


def held_reads(
    session: Session, reader: ReaderKey, desk_session: str, after_seq: int,
    exclude: Collection[int],
) -> list[Verified]:
    """Stored, undecided reads of `desk_session` at `reader` after the badge at `after_seq`."""
    decided = exists().where(
        col(Decision.reader_id) == reader.reader_id, col(Decision.seq) == IngestedObservation.seq
    )
    rows = session.exec(
        select(IngestedObservation).where(
            IngestedObservation.device_id == reader.reader_id,
            IngestedObservation.session == desk_session,
            IngestedObservation.seq > after_seq, IngestedObservation.kind != "badge",
            ~decided,
        ).order_by(col(IngestedObservation.seq)).limit(MAX_HELD_READS)
    ).all()
    held = []
    for row in rows:
        if row.seq in exclude:
            continue
        # Verified when it was ingested; parsing the stored bytes again cannot fail.
        observation = Observation.from_record(Envelope.from_bytes(row.envelope).payload)
        held.append(Verified(
            message=None, reader=reader, observation=observation,  # type: ignore[arg-type]
            observed_at=parse_time(observation.time), envelope_bytes=row.envelope,
            envelope_hash=row.envelope_hash,
        ))
    return held
