"""Per-device sequence tracking: the highest number seen, and the gaps below it.

Readers number observations from `FIRST_SEQ` and never reuse a number. A jump opens a gap
row; when the agent re-sends a missing number the gap is closed and what is still missing is
reopened as new rows, so an operator can see both what is missing now and what went missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select

from api.models.ingest import DeviceCursor, SequenceGap

FIRST_SEQ: Final = 0
"""The reader agent's first sequence number; anything above it not yet seen is a gap."""


def _fill(session: Session, device_id: str, seq: int, now: datetime) -> None:
    gap = session.exec(
        select(SequenceGap).where(
            SequenceGap.device_id == device_id,
            col(SequenceGap.closed_at).is_(None),
            SequenceGap.first_seq <= seq,
            SequenceGap.last_seq >= seq,
        )
    ).first()
    if gap is None:  # below the first number we ever saw in order: nothing was awaited
        return
    gap.closed_at = now
    session.add(gap)
    for first, last in ((gap.first_seq, seq - 1), (seq + 1, gap.last_seq)):
        if first <= last:
            session.add(
                SequenceGap(device_id=device_id, first_seq=first, last_seq=last, opened_at=now)
            )


def advance(session: Session, device_id: str, seqs: Iterable[int], now: datetime) -> None:
    """Record newly accepted `seqs` of `device_id`: move its cursor, open and close gaps."""
    cursor = session.exec(
        select(DeviceCursor).where(DeviceCursor.device_id == device_id).with_for_update()
    ).first()
    high = FIRST_SEQ - 1 if cursor is None else cursor.high_seq
    for seq in sorted(seqs):
        if seq > high + 1:
            session.add(
                SequenceGap(device_id=device_id, first_seq=high + 1, last_seq=seq - 1,
                            opened_at=now)
            )
        if seq > high:
            high = seq
        else:
            _fill(session, device_id, seq, now)
            session.flush()  # the split rows must be visible to the next fill of this gap
    if cursor is None:
        cursor = DeviceCursor(device_id=device_id, high_seq=high, updated_at=now)
    else:
        cursor.high_seq = high
        cursor.updated_at = now
    session.add(cursor)


def open_gaps(session: Session, device_id: str) -> list[tuple[int, int]]:
    """The ranges of `device_id`'s sequence numbers still missing, lowest first."""
    rows = session.exec(
        select(SequenceGap)
        .where(SequenceGap.device_id == device_id, col(SequenceGap.closed_at).is_(None))
        .order_by(col(SequenceGap.first_seq))
    ).all()
    return [(row.first_seq, row.last_seq) for row in rows]
