"""Utilisation over time: the share of each asset class's pool out of the store, per hour or
per day, computed from custody history.

Plan, fetch, compute: a `Period` says which window and which buckets; `fetch_history` reads
each of the agency's own assets' state at the window's start and its changes within it (the
`custody_event` rows' action and time, and `asset-retired` registry records); `utilisation`
is a pure function of those. An asset is in the pool from its registration until it is
disposed of or retired, and out while checked out, transferred to a person or on loan. A
bucket's share is time-weighted: out-asset-seconds over pool-asset-seconds, so 2 of 4 radios
out for 3 hours of a day is 50 % in each of those hours and 6.25 % for the day. Corrections do
not change it: a correction says who or why was wrong, not that the kit never left.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from api.models import Asset, CustodyEventRow
from api.models.custody import RegistryRecordRow
from api.problems import Problem
from ledger.core.records import ASSET_RETIRED

MAX_HOURLY_DAYS: Final = 14
"""Hour buckets drawn at most for two weeks (336 bars); longer periods go by day."""
MAX_PERIOD_DAYS: Final = 92
"""A quarter: the longest period one page computes; older history comes from the export."""
MAX_PERIOD_EVENTS: Final = 200_000
"""Custody events read for one chart; a busier period is refused, to be asked in parts."""

OUT_ACTIONS: Final = frozenset({"check_out", "transfer", "loan_out"})
IN_ACTIONS: Final = frozenset({"register", "check_in", "loan_return"})
GONE_ACTIONS: Final = frozenset({"dispose"})


class Use(StrEnum):
    ABSENT = "absent"
    """Not in the pool: not yet registered, disposed of or retired."""
    IN = "in"
    OUT = "out"


def use_after(action: str) -> Use:
    """What a custody action leaves the asset as."""
    if action in OUT_ACTIONS:
        return Use.OUT
    if action in GONE_ACTIONS:
        return Use.ABSENT
    return Use.IN


class Step(StrEnum):
    HOUR = "hour"
    DAY = "day"


@dataclass(frozen=True, slots=True)
class Period:
    """From `first` to `last` (UTC days, both included) in buckets of one `step`."""

    first: date
    last: date
    step: Step

    @classmethod
    def checked(cls, first: date, last: date, step: Step) -> Period:
        """The period, or a 422 saying which limit it breaks."""
        days = (last - first).days + 1
        if days < 1:
            raise Problem(422, "bad-period", "the period ends before it starts")
        if days > MAX_PERIOD_DAYS:
            raise Problem(422, "bad-period", f"a period is at most {MAX_PERIOD_DAYS} days")
        if step == Step.HOUR and days > MAX_HOURLY_DAYS:
            raise Problem(422, "bad-period",
                          f"by hour, a period is at most {MAX_HOURLY_DAYS} days: choose by day")
        return cls(first, last, step)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), UTC)

    @property
    def width(self) -> timedelta:
        return timedelta(hours=1) if self.step == Step.HOUR else timedelta(days=1)

    @property
    def buckets(self) -> int:
        return (self.end - self.start) // self.width


@dataclass(frozen=True, slots=True)
class Change:
    asset_id: str
    at: datetime
    use: Use


@dataclass(frozen=True, slots=True)
class History:
    """What `utilisation` needs: each asset's class and use at the period's start, and its
    changes within the period in time order."""

    classes: dict[str, str]
    initial: dict[str, Use]
    changes: list[Change]


@dataclass(slots=True)
class Bucket:
    start: datetime
    out_seconds: float = 0.0
    pool_seconds: float = 0.0
    peak_out: int = 0
    pool: int = 0

    @property
    def share(self) -> float | None:
        """The time-weighted share out, or None where no asset was in the pool (or the bucket
        is still to come)."""
        return self.out_seconds / self.pool_seconds if self.pool_seconds else None


@dataclass(frozen=True, slots=True)
class ClassUtilisation:
    class_id: str
    buckets: list[Bucket] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        pool = sum(b.pool_seconds for b in self.buckets)
        return sum(b.out_seconds for b in self.buckets) / pool if pool else None

    @property
    def peak(self) -> Bucket | None:
        """The bucket with the highest share (the first of equals)."""
        shown = [b for b in self.buckets if b.share is not None]
        return max(shown, key=lambda b: b.share or 0.0) if shown else None


def utilisation(period: Period, history: History, until: datetime) -> list[ClassUtilisation]:
    """Each class's buckets over `period`, counted up to `until` (now: later buckets stay
    empty), classes in id order."""
    end = min(period.end, max(until, period.start))
    by_class: dict[str, list[Change]] = defaultdict(list)
    for change in history.changes:
        by_class[history.classes[change.asset_id]].append(change)
    members: dict[str, list[str]] = defaultdict(list)
    for asset_id, class_id in history.classes.items():
        members[class_id].append(asset_id)
    return [_one_class(period, class_id, {a: history.initial.get(a, Use.ABSENT)
                                          for a in members[class_id]},
                       by_class[class_id], end)
            for class_id in sorted(members)]


def _one_class(period: Period, class_id: str, uses: dict[str, Use],
               changes: Sequence[Change], end: datetime) -> ClassUtilisation:
    width = period.width
    buckets = [Bucket(period.start + i * width) for i in range(period.buckets)]
    out = sum(1 for u in uses.values() if u == Use.OUT)
    pool = sum(1 for u in uses.values() if u != Use.ABSENT)

    def advance(frm: datetime, to: datetime) -> None:
        while frm < to:
            index = (frm - period.start) // width
            stop = min(to, period.start + (index + 1) * width)
            seconds = (stop - frm).total_seconds()
            bucket = buckets[index]
            bucket.out_seconds += out * seconds
            bucket.pool_seconds += pool * seconds
            bucket.peak_out = max(bucket.peak_out, out)
            bucket.pool = max(bucket.pool, pool)
            frm = stop

    cursor = period.start
    for change in changes:
        at = min(max(change.at, period.start), end)
        advance(cursor, at)
        cursor = at
        before = uses.get(change.asset_id, Use.ABSENT)
        out += (change.use == Use.OUT) - (before == Use.OUT)
        pool += (change.use != Use.ABSENT) - (before != Use.ABSENT)
        uses[change.asset_id] = change.use
    advance(cursor, end)
    return ClassUtilisation(class_id, buckets)


def fetch_history(session: Session, agency_id: str, period: Period) -> History:
    """The agency's own assets' use at `period`'s start and their changes within it."""
    start, end = period.start, period.end
    classes = dict(session.exec(select(Asset.id, Asset.class_id)
                                .where(Asset.agency_id == agency_id)).all())
    latest = (select(CustodyEventRow.asset_id, func.max(CustodyEventRow.seq).label("seq"))
              .where(CustodyEventRow.agency_id == agency_id,
                     col(CustodyEventRow.created_at) < start)
              .group_by(col(CustodyEventRow.asset_id)).subquery())
    initial = {asset_id: use_after(action) for asset_id, action in session.exec(
        select(CustodyEventRow.asset_id, CustodyEventRow.action).join(
            latest, (col(CustodyEventRow.asset_id) == latest.c.asset_id)
            & (col(CustodyEventRow.seq) == latest.c.seq))
        .where(CustodyEventRow.agency_id == agency_id))}
    events = list(session.exec(
        select(CustodyEventRow.asset_id, CustodyEventRow.created_at, CustodyEventRow.action)
        .where(CustodyEventRow.agency_id == agency_id, col(CustodyEventRow.created_at) >= start,
               col(CustodyEventRow.created_at) < end)
        .order_by(col(CustodyEventRow.created_at), col(CustodyEventRow.id))
        .limit(MAX_PERIOD_EVENTS + 1)))
    if len(events) > MAX_PERIOD_EVENTS:
        raise Problem(422, "period-too-busy",
                      f"more than {MAX_PERIOD_EVENTS} custody events: choose a shorter period")
    changes = [Change(a, at, use_after(action)) for a, at, action in events]
    for asset_id, at in session.exec(
            select(RegistryRecordRow.subject_id, RegistryRecordRow.created_at).where(
                RegistryRecordRow.agency_id == agency_id,
                RegistryRecordRow.kind == ASSET_RETIRED,
                col(RegistryRecordRow.created_at) < end)):
        if at < start:
            initial[asset_id] = Use.ABSENT
        else:
            changes.append(Change(asset_id, at, Use.ABSENT))
    changes.sort(key=lambda c: c.at)  # stable: events keep their order at one instant
    return History(classes, initial, [c for c in changes if c.asset_id in classes])

