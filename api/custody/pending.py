"""Reads that arrive before the badge that opened their session.

Several ingest workers share one subscription, so a desk's badge read and the kit read after it
can be committed in either order. A kit read naming a session that is not open yet, from a
device with sequence numbers still missing below it, is held (stored, not ruled on) rather
than refused; when the badge arrives and opens the session, the held reads are ruled on then,
and when the missing numbers arrive without it, they are ruled on (refused) then. A read still
held after `HOLD_LIMIT` is ruled on by the workers' periodic scan: every read is answered.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import ColumnElement, exists, func
from sqlmodel import Session, col, select

from api.custody.reads import ReaderRef, StoredRead, VerifiedRead
from api.models.assets import Asset
from api.models.custody import Decision
from api.models.ingest import IngestedObservation, SequenceGap
from ledger.core.envelope import Envelope
from ledger.core.records import Observation, parse_time

HOLD_LIMIT: Final = timedelta(seconds=30)
"""The longest a read waits for a missing number below it. Workers deliver out of order by
milliseconds and an agent re-sends within seconds; a number still missing after this is not
coming soon (lost, or an agent offline), and the reader is owed an answer now."""

STALE_SCAN_WINDOW: Final = timedelta(minutes=10)
"""The periodic scan looks behind gaps opened this recently (a read is held only behind a gap
at most `HOLD_LIMIT` old, so this leaves ample room for a late scan); the first scan after a
start looks behind every open gap."""

MAX_HELD_READS: Final = 20_000
"""Reads replayed when a session opens. The reads of one reader in flight ahead of its badge
are at most what its agent has unacknowledged: its `inflight_window`, 1,000 by default and
20,000 at most (several to a message when packed, so the workers' Receive Maximum, which
counts messages, does not bound them). So this bounds the query without ever leaving a
legitimately held read behind."""


def first_recent_gap(session: Session, device_id: str, now: datetime) -> int | None:
    """The lowest sequence number of `device_id` that went missing lately (within
    `HOLD_LIMIT`) and has not arrived yet: a read above it may be waiting for it. A number
    missing for longer is not coming soon: waiting for it would only delay the answer to
    every later read."""
    return session.exec(
        select(func.min(SequenceGap.first_seq)).where(
            SequenceGap.device_id == device_id, col(SequenceGap.closed_at).is_(None),
            SequenceGap.opened_at >= now - HOLD_LIMIT,
        )
    ).first()


def _as_read(reader: ReaderRef, row: IngestedObservation) -> VerifiedRead:
    # Verified when it was ingested; parsing the stored bytes again cannot fail.
    observation = Observation.from_record(Envelope.from_bytes(row.envelope).payload)
    return StoredRead(
        reader=reader, observation=observation, observed_at=parse_time(observation.time),
        envelope_bytes=row.envelope, envelope_hash=row.envelope_hash,
    )


def _undecided(reader_id: str) -> ColumnElement[bool]:
    return ~exists().where(
        col(Decision.reader_id) == reader_id, col(Decision.seq) == IngestedObservation.seq
    )


def _of_an_asset() -> ColumnElement[bool]:
    # Only reads of registered assets are ever held; a stranger tag is answered by nobody
    # (it becomes a sighting), so looking for it again would find it every time.
    return exists().where(col(Asset.epc_hex) == IngestedObservation.epc_hex)


def released_reads(
    session: Session, reader: ReaderRef, above_seq: int, exclude: Collection[int]
) -> list[VerifiedRead]:
    """Held reads of `reader` that nothing is missing below any more: stored, undecided kit
    reads naming a session, above `above_seq` (the lowest number that has just arrived) and
    below the first number still missing.

    A read is held while an earlier number is missing, in case that number is its badge. Once
    the gap has closed without the badge opening its session, no badge is on the way: the read
    must be ruled on (and refused), or the reader would wait for its answer forever.
    """
    still_missing = session.exec(
        select(func.min(SequenceGap.first_seq)).where(
            SequenceGap.device_id == reader.reader_id, col(SequenceGap.closed_at).is_(None))
    ).first()
    query = select(IngestedObservation).where(
        IngestedObservation.device_id == reader.reader_id,
        IngestedObservation.seq > above_seq, col(IngestedObservation.session).is_not(None),
        IngestedObservation.kind != "badge", _undecided(reader.reader_id), _of_an_asset(),
    )
    if still_missing is not None:
        query = query.where(IngestedObservation.seq < still_missing)
    rows = session.exec(query.order_by(col(IngestedObservation.seq)).limit(MAX_HELD_READS))
    return [_as_read(reader, row) for row in rows if row.seq not in exclude]


def stale_holds(
    session: Session, received_before: datetime, gaps_since: datetime | None = None
) -> dict[str, list[int]]:
    """Reads still held because a number below them is missing, stored before
    `received_before`: device id -> their sequence numbers, lowest first.

    Looks only at devices with an open gap (an indexed handful), opened since `gaps_since`
    (reads are held only behind a gap opened within `HOLD_LIMIT` of them; None looks behind
    every open gap, as after a restart), then at each one's undecided session reads of assets
    above its lowest missing number.
    """
    query = select(SequenceGap.device_id, func.min(SequenceGap.first_seq)).where(
        col(SequenceGap.closed_at).is_(None))
    if gaps_since is not None:
        query = query.where(SequenceGap.opened_at >= gaps_since)
    gaps = session.exec(query.group_by(col(SequenceGap.device_id))).all()
    found: dict[str, list[int]] = {}
    for device_id, first_missing in gaps:
        seqs = list(session.exec(
            select(IngestedObservation.seq).where(
                IngestedObservation.device_id == device_id,
                IngestedObservation.seq > first_missing,
                col(IngestedObservation.session).is_not(None),
                IngestedObservation.kind != "badge",
                IngestedObservation.received_at < received_before,
                _undecided(device_id), _of_an_asset(),
            ).order_by(col(IngestedObservation.seq)).limit(MAX_HELD_READS)
        ))
        if seqs:
            found[device_id] = seqs
    return found


def stored_reads(
    session: Session, reader: ReaderRef, seqs: Collection[int]
) -> list[VerifiedRead]:
    """The stored reads `seqs` of `reader`, as they were verified."""
    rows = session.exec(select(IngestedObservation).where(
        IngestedObservation.device_id == reader.reader_id,
        col(IngestedObservation.seq).in_(seqs),
    ).order_by(col(IngestedObservation.seq)))
    return [_as_read(reader, row) for row in rows]


def held_reads(
    session: Session, reader: ReaderRef, desk_session: str, after_seq: int,
    exclude: Collection[int],
) -> list[VerifiedRead]:
    """Stored, undecided reads of `desk_session` at `reader` after the badge at `after_seq`."""
    rows = session.exec(
        select(IngestedObservation).where(
            IngestedObservation.device_id == reader.reader_id,
            IngestedObservation.session == desk_session,
            IngestedObservation.seq > after_seq, IngestedObservation.kind != "badge",
            _undecided(reader.reader_id),
        ).order_by(col(IngestedObservation.seq)).limit(MAX_HELD_READS)
    ).all()
    return [_as_read(reader, row) for row in rows if row.seq not in exclude]
