"""Weeks of plausible store history for the demo's two agencies, made through the real custody
functions, so pool planning (`api.planning`) has something to show.

`kitledger up --history-weeks N` calls `fill_history` after seeding the registry. It adds a
pool of radios to each agency, registered at the history's start: `metpolice` at `hq-stores`
and `fireservice` at `fire-hq` (shared with `metpolice`, so the two can be planned as one
pool), and desks and people for the fire service. Then, day by day, officers come to the desk
at a rate that follows the hour of day (busy at shift changes, quiet at night, quieter at
weekends) and take a radio for about a shift: each check-out and check-in is a manual desk
entry (`api.custody.manual`) at its time, logged as any other; an officer who finds none in
store is recorded as such (`api.planning.unmet`); now and then a radio goes out of service for
a repair (`api.custody.maintenance`) and an operation books radios ahead
(`api.custody.reservations`), some never collected. Seeded: the same weeks every run.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlmodel import Session

from api.custody import maintenance, reservations
from api.custody.manual import ManualRequest, enter_manually
from api.custody.transfers import CustodyRefused
from api.models import Asset, Person, Reader, ReaderRole, Site
from api.models.assets import AssetClass, AssetCreate
from api.models.maintenance import Reservation
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate
from api.planning.unmet import record_none_in_store
from api.registry import create_asset, create_person, register_reader
from api.scoping import own_row
from demo.seed import DEMO_AGENCY, DEMO_SITE, OTHER_AGENCY
from ledger.core.envelope import raw_public_key

MAX_HISTORY_WEEKS: Final = 26
"""Half a year: enough for every chart; more only makes `kitledger up` slower."""
HISTORY_CLIENT: Final = "demo-history"
"""The client id the history's bookings and refusals are entered as."""
HOURLY_SHAPE: Final = (0.2, 0.1, 0.1, 0.1, 0.2, 0.6, 2.0, 2.4, 1.4, 1.0, 0.8, 0.8,
                       0.9, 1.0, 1.6, 2.2, 1.4, 0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.3)
"""Relative arrival rate by hour of day (UTC): peaks as early and late shifts start."""
WEEKEND_FACTOR: Final = 0.6


@dataclass(frozen=True, slots=True)
class StoreSpec:
    """One agency's store in the demo history: its pool and how busy it is."""

    agency_id: str
    site_id: str
    class_id: str
    items: int
    epc_base: int
    per_day: float
    """Mean requests a weekday."""
    mean_hold_h: float
    shared_with: tuple[str, ...] = ()


STORES: Final = (
    StoreSpec(DEMO_AGENCY, DEMO_SITE, "radio", 12, 0x341800000000000000001100, 30.0, 7.0),
    StoreSpec(OTHER_AGENCY, "fire-hq", "fire-radio", 8, 0x341800000000000000001200, 14.0,
              9.0, (DEMO_AGENCY,)),
)


@dataclass(frozen=True, slots=True)
class DeskHands:
    """What entering changes at one agency's store needs: its desks and officer."""

    agency_id: str
    issue_desk: str
    return_desk: str
    officer: str


def check_out(session: Session, hands: DeskHands, asset_id: str, holder_id: str,
              at: datetime) -> None:
    """Issue `asset_id` to `holder_id` at `at`, as a manual entry at the issue desk."""
    _enter(session, hands, "check_out", asset_id, holder_id, at)


def check_in(session: Session, hands: DeskHands, asset_id: str, at: datetime) -> None:
    """Take `asset_id` back at `at`, as a manual entry at the return desk."""
    _enter(session, hands, "check_in", asset_id, None, at)


def _enter(session: Session, hands: DeskHands, action: str, asset_id: str,
           holder_id: str | None, at: datetime) -> None:
    desk_id = hands.issue_desk if action == "check_out" else hands.return_desk
    agency = hands.agency_id
    desk, officer = session.get(Reader, desk_id), own_row(session, Person, agency, hands.officer)
    asset = own_row(session, Asset, agency, asset_id)
    assert desk is not None and officer is not None and asset is not None
    holder = own_row(session, Person, agency, holder_id) if holder_id is not None else None
    enter_manually(session, asset=asset, now=at, request=ManualRequest(
        action=action, desk=desk, officer=officer, supervisor=None, holder=holder,
        reason="demo history", client_id=HISTORY_CLIENT))


def _desk(session: Session, agency_id: str, site_id: str, reader_id: str, role: ReaderRole,
          now: datetime) -> str:
    if session.get(Reader, reader_id) is None:
        key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
        register_reader(session, agency_id=agency_id, now=now, data=ReaderCreate(
            id=reader_id, site_id=site_id, role=role, zones={"1": "desk"}, public_key=key))
    return reader_id


def _people(session: Session, agency_id: str, prefix: str, count: int, now: datetime
            ) -> list[str]:
    ids = [f"{prefix}-{n:02d}" for n in range(1, count + 1)]
    for person_id in ids:
        if own_row(session, Person, agency_id, person_id) is None:
            create_person(session, agency_id=agency_id, now=now,
                          data=PersonCreate(id=person_id))
    return ids


def _arrivals(rng: random.Random, spec: StoreSpec, day: datetime) -> list[datetime]:
    """One day's request times: a Poisson process whose rate follows `HOURLY_SHAPE`."""
    scale = spec.per_day / sum(HOURLY_SHAPE)
    if day.weekday() >= 5:
        scale *= WEEKEND_FACTOR
    times = []
    for hour, weight in enumerate(HOURLY_SHAPE):
        rate = weight * scale  # per hour
        at = 0.0
        while True:
            at += rng.expovariate(rate) if rate > 0 else math.inf
            if at >= 1.0:
                break
            times.append(day + timedelta(hours=hour + at))
    return times


def _store_history(session: Session, rng: random.Random, spec: StoreSpec, start: datetime,
                   end: datetime) -> None:
    """Register the store's pool at `start` and play its weeks up to `end`."""
    site = own_row(session, Site, spec.agency_id, spec.site_id)
    assert site is not None
    assert own_row(session, AssetClass, spec.agency_id, spec.class_id) is not None
    hands = DeskHands(spec.agency_id,
                      _desk(session, spec.agency_id, spec.site_id, f"{spec.site_id}-issue",
                            ReaderRole.ISSUE_DESK, start),
                      _desk(session, spec.agency_id, spec.site_id, f"{spec.site_id}-return",
                            ReaderRole.RETURN_DESK, start),
                      _people(session, spec.agency_id, f"{spec.agency_id}-sgt", 1, start)[0])
    people = _people(session, spec.agency_id, f"{spec.agency_id}-officer", 40, start)
    items = [f"{spec.class_id}-h{n:02d}" for n in range(1, spec.items + 1)]
    for n, asset_id in enumerate(items):
        if own_row(session, Asset, spec.agency_id, asset_id) is None:
            create_asset(session, agency_id=spec.agency_id, now=start, data=AssetCreate(
                id=asset_id, class_id=spec.class_id, epc_hex=f"{spec.epc_base + n:024X}",
                home_site_id=spec.site_id, shared_with=list(spec.shared_with)))
    session.commit()
    _play(session, rng, spec, hands, items, people, start, end)


def _play(session: Session, rng: random.Random, spec: StoreSpec, hands: DeskHands,
          items: list[str], people: list[str], start: datetime, end: datetime) -> None:
    """Day by day: repairs, bookings, then each arrival served from the shelf or refused."""
    free = list(items)
    out: list[tuple[datetime, str]] = []  # (back at, item): a heap
    repairs: dict[str, datetime] = {}
    booked: list[Reservation] = []
    day = start
    while day < end:
        arrivals = _arrivals(rng, spec, day)
        if rng.random() < 0.15 and free:  # a radio fails and goes for repair
            item = free.pop(rng.randrange(len(free)))
            maintenance.change_service(session, asset=_asset(session, hands, item),
                                       in_service=False, reason="repair",
                                       officer=_person(session, hands), now=day)
            repairs[item] = day + timedelta(days=rng.randint(2, 6), hours=9)
        if rng.random() < 0.1:
            booked += _book(session, rng, spec, people, day)
        for at in sorted(arrivals):
            if at >= end:
                break
            while out and out[0][0] <= at:
                back, item = heapq.heappop(out)
                check_in(session, hands, item, back)
                free.append(item)
            for item, back in list(repairs.items()):
                if back <= at and item not in free:
                    maintenance.change_service(
                        session, asset=_asset(session, hands, item), in_service=True,
                        reason="repaired", officer=_person(session, hands), now=back)
                    del repairs[item]
                    free.append(item)
            while booked and booked[0].starts_at <= at:
                _collect(session, rng, hands, booked.pop(0), free, out, at)
            holder = rng.choice(people)
            if not free:
                record_none_in_store(session, agency_id=spec.agency_id, site_id=spec.site_id,
                                     class_id=spec.class_id, at=at, now=at,
                                     client_id=HISTORY_CLIENT)
                continue
            item = free.pop(rng.randrange(len(free)))
            try:
                check_out(session, hands, item, holder, at)
            except CustodyRefused:  # kept back for a booking: the officer leaves without
                free.append(item)
                record_none_in_store(session, agency_id=spec.agency_id, site_id=spec.site_id,
                                     class_id=spec.class_id, at=at, now=at,
                                     client_id=HISTORY_CLIENT)
                continue
            hold = timedelta(hours=rng.lognormvariate(math.log(spec.mean_hold_h), 0.35))
            heapq.heappush(out, (at + hold, item))
        session.commit()
        day += timedelta(days=1)


def _book(session: Session, rng: random.Random, spec: StoreSpec, people: list[str],
          day: datetime) -> list[Reservation]:
    """An operation books two radios for tomorrow afternoon (none if they would conflict)."""
    starts = day + timedelta(days=1, hours=13)
    booking = Reservation(agency_id=spec.agency_id, operation="demo operation",
                          class_id=spec.class_id, quantity=2, people=rng.sample(people, 3),
                          starts_at=starts, ends_at=starts + timedelta(hours=6),
                          client_id=HISTORY_CLIENT)
    try:
        reservations.book(session, booking, day)
    except CustodyRefused:
        session.rollback()
        return []
    return [booking]


def _collect(session: Session, rng: random.Random, hands: DeskHands, booking: Reservation,
             free: list[str], out: list[tuple[datetime, str]], at: datetime) -> None:
    """The booking's people take its radios for the window; a third never come."""
    if at >= booking.ends_at:
        return
    for holder in booking.people[:booking.quantity or 0]:
        if free and rng.random() < 2 / 3:
            item = free.pop(rng.randrange(len(free)))
            check_out(session, hands, item, holder, at)
            heapq.heappush(out, (booking.ends_at, item))


def _asset(session: Session, hands: DeskHands, asset_id: str) -> Asset:
    asset = own_row(session, Asset, hands.agency_id, asset_id)
    assert asset is not None
    return asset


def _person(session: Session, hands: DeskHands) -> Person:
    person = own_row(session, Person, hands.agency_id, hands.officer)
    assert person is not None
    return person


def fill_history(session: Session, weeks: int, *, now: datetime, seed: int = 27) -> None:
    """`weeks` of history before today (UTC) for both demo stores (`STORES`), seeded."""
    if not 1 <= weeks <= MAX_HISTORY_WEEKS:
        raise ValueError(f"history weeks are 1 to {MAX_HISTORY_WEEKS}, not {weeks}")
    today = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    start = today - timedelta(weeks=weeks)
    rng = random.Random(seed)  # noqa: S311 -- a reproducible demo, not secrets
    for spec in STORES:
        _store_history(session, rng, spec, start, min(now, today))
