"""Per-device sequence tracking: the highest number seen, and the gaps below it.

Readers number observations from `FIRST_SEQ` and never reuse a number. A jump opens a gap
row; when the agent re-sends a missing number the gap is closed and what is still missing is
reopened as new rows, so an operator can see both what is missing now and what went missing.

A gap means "missing": never received with a valid signature. A number refused after its
signature verified (too old, a revoked reader, a wrong topic) is not missing, it is kept in
quarantine; it moves the cursor and fills gaps exactly as a stored one (`advance`), so the
reader's end-to-end ack covers it (`progress`) and its agent stops sending it. A range the
reader has said, signed, it no longer holds is closed too (`close_lost`); its quarantine row
says why. Numbers that could not be attributed (bad signature, unknown key) move nothing.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlalchemy import bindparam, func, insert, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.bulk import update_rows
from api.db import among, table
from api.ingest.checks import ReaderKey
from api.models.ingest import DeviceCursor, SequenceGap
from api.models.registry import Reader, ReaderStatus

FIRST_SEQ: Final = 0
"""The reader agent's first sequence number; anything above it not yet seen is a gap."""


_CURSORS = table(DeviceCursor)
_GAPS = table(SequenceGap)
_READERS = table(Reader)

_CLOSE_GAPS = (
    update(_GAPS)
    .where(_GAPS.c.id.in_(bindparam("b_ids", expanding=True)))
    .values(closed_at=bindparam("b_now"))
)


@dataclass(frozen=True, slots=True)
class _Gap:
    id: int
    first: int
    last: int


class Cursors:
    """A batch's devices: each one's highest number stored (its cursor, locked until commit)
    and the open gaps its numbers at or below that may fill.

    Every stored observation of a device is at or below its cursor and outside its open gaps
    (observations, cursor and gaps are written in one transaction), so only a number at or
    below the cursor and in no open gap can be stored already (`maybe_stored`). Several
    workers sharing a subscription each see every other number of a reader, so numbers that
    fill gaps are the usual case, not a rare re-send: they are told apart without a look-up.
    """

    def __init__(self, highs: dict[str, int], gaps: dict[str, list[_Gap]]) -> None:
        self.highs = highs
        self._gaps = gaps
        self._starts = {device: [g.first for g in found] for device, found in gaps.items()}

    def high(self, device_id: str) -> int:
        return self.highs.get(device_id, FIRST_SEQ - 1)

    def gap_of(self, device_id: str, seq: int) -> _Gap | None:
        """The open gap holding `seq`, if it is missing."""
        starts = self._starts.get(device_id)
        if not starts:
            return None
        at = bisect_right(starts, seq) - 1
        if at < 0:
            return None
        gap = self._gaps[device_id][at]
        return gap if gap.last >= seq else None

    def maybe_stored(self, device_id: str, seq: int) -> bool:
        return seq <= self.high(device_id) and self.gap_of(device_id, seq) is None


def load_cursors(session: Session, seqs: Mapping[str, Collection[int]]) -> Cursors:
    """The cursors of the devices in `seqs` (device id -> numbers arriving), locked until
    commit, with the open gaps those numbers may fall in: two statements per batch."""
    if not seqs:
        return Cursors({}, {})
    connection = session.connection()
    highs: dict[str, int] = dict(connection.execute(
        core_select(_CURSORS.c.device_id, _CURSORS.c.high_seq)
        .where(among(_CURSORS.c.device_id, seqs.keys(), connection))
        .with_for_update()
    ).all())
    lows: dict[str, int] = {}
    for device_id, numbers in seqs.items():
        below = [n for n in numbers if n <= highs.get(device_id, FIRST_SEQ - 1)]
        if below:
            lows[device_id] = min(below)
    gaps: dict[str, list[_Gap]] = {}
    if lows:
        rows = connection.execute(
            core_select(_GAPS.c.id, _GAPS.c.device_id, _GAPS.c.first_seq, _GAPS.c.last_seq)
            .where(among(_GAPS.c.device_id, lows.keys(), connection), _GAPS.c.closed_at.is_(None),
                   _GAPS.c.last_seq >= min(lows.values()))
            .order_by(_GAPS.c.device_id, _GAPS.c.first_seq)
        )
        for gap_id, device_id, first, last in rows:
            if last >= lows[device_id]:
                gaps.setdefault(device_id, []).append(_Gap(gap_id, first, last))
    return Cursors(highs, gaps)


def advance(
    session: Session, accepted: Mapping[str, Collection[int]], now: datetime,
    cursors: Cursors | None = None,
) -> dict[str, int]:
    """Record newly accepted sequence numbers (device id -> seqs): move each device's cursor,
    open and close gaps. Return the devices some of whose missing numbers arrived, each with
    the lowest of them (reads above it may have been held waiting: `api.custody.pending`).

    `cursors`: as `load_cursors` returned them in this transaction (read here if not given).
    A few bulk statements per batch however many readers it holds. A gap some of whose
    numbers arrive is closed, and what is still missing of it opened again as new rows.
    """
    if not accepted:
        return {}
    if cursors is None:
        cursors = load_cursors(session, accepted)
    opened: list[dict[str, object]] = []
    moved: list[dict[str, object]] = []
    created: list[dict[str, object]] = []
    filled: dict[int, tuple[str, _Gap, list[int]]] = {}
    refilled: dict[str, int] = {}
    for device_id, seqs in accepted.items():
        high = cursors.high(device_id)
        for seq in sorted(seqs):
            if seq > high:
                if seq > high + 1:
                    opened.append({"device_id": device_id, "first_seq": high + 1,
                                   "last_seq": seq - 1, "opened_at": now, "closed_at": None})
                high = seq
                continue
            gap = cursors.gap_of(device_id, seq)
            if gap is None:  # below the first number we ever saw in order: nothing awaited
                continue
            filled.setdefault(gap.id, (device_id, gap, []))[2].append(seq)
            refilled.setdefault(device_id, seq)
        if device_id in cursors.highs:
            moved.append({"device_id": device_id, "high_seq": high, "updated_at": now})
        else:
            created.append({"device_id": device_id, "high_seq": high, "updated_at": now})
    for device_id, gap, arrived in filled.values():
        start = gap.first
        for seq in arrived:  # ascending: `seqs` were walked in order
            if start < seq:
                opened.append({"device_id": device_id, "first_seq": start, "last_seq": seq - 1,
                               "opened_at": now, "closed_at": None})
            start = seq + 1
        if start <= gap.last:
            opened.append({"device_id": device_id, "first_seq": start, "last_seq": gap.last,
                           "opened_at": now, "closed_at": None})
    connection = session.connection()
    if filled:
        connection.execute(_CLOSE_GAPS, {"b_ids": list(filled), "b_now": now})
    if opened:
        connection.execute(insert(_GAPS), opened)
    update_rows(connection, _CURSORS, moved, key="device_id")
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


def close_lost(session: Session, device_id: str, first: int, last: int, now: datetime) -> int:
    """Close what is missing of `device_id`'s numbers `first`..`last`, which the reader has
    said, signed, it no longer holds (`ledger.core.lost`); return how many numbers that
    closed. Only open gaps are touched, at or below the cursor: a reader cannot move its
    cursor with this, only end the wait for numbers the API itself asked for. The rest of a
    gap outside the range is opened again as new rows, as `advance` does."""
    connection = session.connection()
    rows = connection.execute(
        core_select(_GAPS.c.id, _GAPS.c.first_seq, _GAPS.c.last_seq)
        .where(_GAPS.c.device_id == device_id, _GAPS.c.closed_at.is_(None),
               _GAPS.c.last_seq >= first, _GAPS.c.first_seq <= last)
    ).all()
    if not rows:
        return 0
    closed = 0
    opened: list[dict[str, object]] = []
    for _, gap_first, gap_last in rows:
        closed += min(gap_last, last) - max(gap_first, first) + 1
        for low, high in ((gap_first, first - 1), (last + 1, gap_last)):
            if low <= high:
                opened.append({"device_id": device_id, "first_seq": low, "last_seq": high,
                               "opened_at": now, "closed_at": None})
    connection.execute(_CLOSE_GAPS, {"b_ids": [row[0] for row in rows], "b_now": now})
    if opened:
        connection.execute(insert(_GAPS), opened)
    return closed


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a device's numbers are stored without a hole (`through`), and the holes the
    API has waited on long enough to ask for (`missing`, lowest first, bounded)."""

    through: int
    missing: tuple[tuple[int, int], ...]


def progress(
    session: Session, device_ids: Collection[str], asked_before: datetime, max_ranges: int,
) -> dict[str, Progress]:
    """Each device's `Progress`: `through` is its cursor if no gap is open, else one below its
    lowest open gap; `missing` the open gaps opened before `asked_before`, at most
    `max_ranges` each. Two statements however many devices."""
    if not device_ids:
        return {}
    connection = session.connection()
    highs: dict[str, int] = dict(connection.execute(
        core_select(_CURSORS.c.device_id, _CURSORS.c.high_seq)
        .where(among(_CURSORS.c.device_id, device_ids, connection))
    ).all())
    gaps: dict[str, list[tuple[int, int, datetime]]] = {}
    for device_id, first, last, opened_at in connection.execute(
        core_select(_GAPS.c.device_id, _GAPS.c.first_seq, _GAPS.c.last_seq, _GAPS.c.opened_at)
        .where(among(_GAPS.c.device_id, device_ids, connection), _GAPS.c.closed_at.is_(None))
        .order_by(_GAPS.c.device_id, _GAPS.c.first_seq)
    ):
        gaps.setdefault(device_id, []).append((first, last, opened_at))
    found: dict[str, Progress] = {}
    for device_id in device_ids:
        open_gaps = gaps.get(device_id, [])
        through = (open_gaps[0][0] - 1 if open_gaps
                   else highs.get(device_id, FIRST_SEQ - 1))
        missing = tuple((first, last) for first, last, opened_at in open_gaps
                        if opened_at < asked_before)[:max_ranges]
        found[device_id] = Progress(through, missing)
    return found



def readers_with_old_gaps(session: Session, before: datetime, limit: int) -> list[ReaderKey]:
    """Active registered readers with a gap open since before `before`, oldest gap first."""
    connection = session.connection()
    oldest = (core_select(_GAPS.c.device_id, func.min(_GAPS.c.opened_at).label("since"))
              .where(_GAPS.c.closed_at.is_(None), _GAPS.c.opened_at < before)
              .group_by(_GAPS.c.device_id).subquery())
    rows = connection.execute(
        core_select(_READERS.c.id, _READERS.c.agency_id, _READERS.c.site_id,
                    _READERS.c.public_key)
        .join(oldest, oldest.c.device_id == _READERS.c.id)
        .where(_READERS.c.status == ReaderStatus.ACTIVE)
        .order_by(oldest.c.since).limit(limit)
    ).all()
    return [ReaderKey(reader_id, agency_id, site_id, public_key, True)
            for reader_id, agency_id, site_id, public_key in rows]
