"""Per-device sequence tracking: the highest number seen, and the gaps below it.

Readers number observations from `FIRST_SEQ` and never reuse a number. A jump opens a gap
row; when the agent re-sends a missing number the gap is closed and what is still missing is
reopened as new rows, so an operator can see both what is missing now and what went missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, insert, update
from sqlalchemy import select as core_select
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


_CURSORS = DeviceCursor.__table__  # type: ignore[attr-defined]
_GAPS = SequenceGap.__table__  # type: ignore[attr-defined]

_MOVE_CURSOR = (
    update(_CURSORS)
    .where(_CURSORS.c.device_id == bindparam("b_device"))
    .values(high_seq=bindparam("b_high"), updated_at=bindparam("b_now"))
)


def advance(
    session: Session, accepted: Mapping[str, Iterable[int]], now: datetime
) -> dict[str, int]:
    """Record newly accepted sequence numbers (device id -> seqs): move each device's cursor,
    open and close gaps. Return the devices some of whose missing numbers arrived, each with
    the lowest of them (reads above it may have been held waiting: `api.custody.pending`).

    One locked read of every cursor the batch touches and bulk writes: a batch from many
    readers costs a few statements, not a few per reader. Re-sent numbers (below the cursor)
    are rare and take the row-by-row path, which must see the gaps opened before them.
    """
    if not accepted:
        return {}
    connection = session.connection()
    highs: dict[str, int] = dict(connection.execute(
        core_select(_CURSORS.c.device_id, _CURSORS.c.high_seq)
        .where(_CURSORS.c.device_id.in_(accepted.keys()))
        .with_for_update()
    ).all())
    gaps: list[dict[str, object]] = []
    moved: list[dict[str, object]] = []
    created: list[dict[str, object]] = []
    refilled: dict[str, int] = {}
    for device_id, seqs in accepted.items():
        known = device_id in highs
        high = highs.get(device_id, FIRST_SEQ - 1)
        for seq in sorted(seqs):
            if seq > high + 1:
                gaps.append({"device_id": device_id, "first_seq": high + 1,
                             "last_seq": seq - 1, "opened_at": now, "closed_at": None})
            if seq > high:
                high = seq
            else:
                if gaps:  # the fill must find the gaps this batch opened
                    connection.execute(insert(_GAPS), gaps)
                    gaps = []
                _fill(session, device_id, seq, now)
                session.flush()  # the split rows must be visible to the next fill of this gap
                refilled.setdefault(device_id, seq)
        if known:
            moved.append({"b_device": device_id, "b_high": high, "b_now": now})
        else:
            created.append({"device_id": device_id, "high_seq": high, "updated_at": now})
    if gaps:
        connection.execute(insert(_GAPS), gaps)
    if moved:
        connection.execute(_MOVE_CURSOR, moved)
    if created:
        connection.execute(insert(_CURSORS), created)
    return refilled


def open_gaps(session: Session, device_id: str) -> list[tuple[int, int]]:
    """The ranges of `device_id`'s sequence numbers still missing, lowest first."""
    rows = session.exec(
        select(SequenceGap)
        .where(SequenceGap.device_id == device_id, col(SequenceGap.closed_at).is_(None))
        .order_by(col(SequenceGap.first_seq))
    ).all()
    return [(row.first_seq, row.last_seq) for row in rows]
