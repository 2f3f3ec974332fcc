"""An agency's recorded history of one pool, read from the database as a `PoolHistory`.

The pool is the items of a class at some of the agency's sites and, for pooling with another
agency, the items of that agency's class it shares with this one (`AssetShare`): nothing else
of the other agency is read, neither its unshared items, nor its bookings, nor its desk's
"none in store" refusals. What becomes a request:

- a check-out (or a loan to another agency) of a pool item: met, held until the check-in (or
  the loan's return) that follows it, a hand-over between people keeping it out;
- a "none in store" refusal (`api.models.planning`) at one of the sites: not met;
- a booking of the class, or of named pool items (`api.models.maintenance.Reservation`): one
  request per item, at the booking's start. An item collected in the window by one of the
  booking's people is that check-out (it is not counted twice); one never collected is a
  no-show, whose item the store held back for the whole window.

Out-of-service periods come from the maintenance rows (out of service, back in service). The
pool size is the items not retired nor disposed of now. Everything here only reads.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import ColumnElement, and_, exists, false, or_
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.custody.maintenance import BACK, OUT
from api.models.assets import Asset, AssetShare, AssetStatus
from api.models.custody import CustodyEventRow
from api.models.maintenance import MaintenanceWork, Reservation
from api.models.people import Person
from api.models.planning import NoneInStore
from api.planning.model import OutOfService, PoolHistory, Request
from api.problems import Problem
from ledger.core.encoding import parse_record

MAX_HISTORY_EVENTS: Final = 1_000_000
"""Custody events read for one analysis (a busy store's two years is well under this)."""
HOLD_ACTIONS: Final = frozenset({"check_out", "loan_out"})
"""An item leaving the store for someone: a request met."""
RETURN_ACTIONS: Final = frozenset({"check_in", "loan_return"})
_GONE: Final = (AssetStatus.RETIRED.value, AssetStatus.DISPOSED.value)


@dataclass(frozen=True, slots=True)
class _Item:
    id: str
    agency_id: str
    class_id: str
    site_id: str
    status: str


Key = tuple[str, str]
"""(agency id, asset id): a pool item, each agency's ids being its own."""


@dataclass(slots=True)
class _Hold:
    """A met request being built, its item, and the custody event of its check-out."""

    request: Request
    item: Key
    event_id: int


def _of_items(agency: Any, asset: Any, items: Iterable[Key]) -> ColumnElement[bool]:
    """A WHERE clause: the row's (`agency`, `asset`) columns name one of `items`."""
    by_agency: dict[str, list[str]] = defaultdict(list)
    for agency_id, asset_id in items:
        by_agency[agency_id].append(asset_id)
    return or_(false(), *(and_(col(agency) == agency_id, col(asset).in_(ids))
                          for agency_id, ids in sorted(by_agency.items())))


def pool_items(session: Session, agency_id: str, site_ids: Sequence[str], class_id: str,
               include_shared_from: Mapping[str, str]) -> list[_Item]:
    """The agency's items of `class_id` at `site_ids`, and for each other agency in
    `include_shared_from` (agency -> its class) its items of that class shared with it."""
    rows = list(session.exec(select(Asset).where(
        Asset.agency_id == agency_id, Asset.class_id == class_id,
        col(Asset.home_site_id).in_(list(site_ids)))))
    for other, other_class in include_shared_from.items():
        if other == agency_id:
            continue
        shared = exists().where(col(AssetShare.owner_id) == col(Asset.agency_id),
                                col(AssetShare.asset_id) == col(Asset.id),
                                col(AssetShare.agency_id) == agency_id)
        rows += session.exec(select(Asset).where(Asset.agency_id == other,
                                                 Asset.class_id == other_class, shared))
    return sorted((_Item(a.id, a.agency_id, a.class_id, a.home_site_id, str(a.status))
                   for a in rows), key=lambda i: (i.id, i.agency_id))


def _holds(session: Session, items: dict[Key, _Item], class_id: str, start: datetime,
           end: datetime) -> list[_Hold]:
    """Each check-out of a pool item in [start, end), with how long it was held, as a request
    for the pool's `class_id` (another agency's shared item is of its own class)."""
    events = session.connection().execute(
        core_select(col(CustodyEventRow.id), col(CustodyEventRow.agency_id),
                    col(CustodyEventRow.asset_id), col(CustodyEventRow.action),
                    col(CustodyEventRow.created_at))
        .where(_of_items(CustodyEventRow.agency_id, CustodyEventRow.asset_id, items),
               col(CustodyEventRow.created_at) >= start, col(CustodyEventRow.created_at) < end)
        .order_by(col(CustodyEventRow.created_at), col(CustodyEventRow.id))
        .limit(MAX_HISTORY_EVENTS + 1)).all()
    if len(events) > MAX_HISTORY_EVENTS:
        raise Problem(422, "period-too-busy", f"more than {MAX_HISTORY_EVENTS} custody events: "
                      "choose a shorter period")
    holds: list[_Hold] = []
    open_hold: dict[Key, int] = {}
    for event_id, agency_id, asset_id, action, at in events:
        assert event_id is not None  # a stored row
        key = (agency_id, asset_id)
        item = items[key]
        if action in HOLD_ACTIONS:
            open_hold[key] = len(holds)
            holds.append(_Hold(Request(at=at, site_id=item.site_id, class_id=class_id,
                                       agency_id=item.agency_id, source="check_out", met=True),
                               key, event_id))
        elif action in RETURN_ACTIONS and key in open_hold:
            hold = holds[open_hold.pop(key)]
            hold.request = replace(hold.request, held_s=(at - hold.request.at).total_seconds())
    return holds


def _unmet(session: Session, agency_id: str, site_ids: Sequence[str], class_id: str,
           start: datetime, end: datetime) -> list[Request]:
    rows = session.exec(select(NoneInStore).where(
        NoneInStore.agency_id == agency_id, NoneInStore.class_id == class_id,
        col(NoneInStore.site_id).in_(list(site_ids)), col(NoneInStore.at) >= start,
        col(NoneInStore.at) < end).order_by(col(NoneInStore.at), col(NoneInStore.id)))
    return [Request(at=r.at, site_id=r.site_id, class_id=r.class_id, agency_id=r.agency_id,
                    source="none_in_store", met=False) for r in rows]


def _holder_commitments(session: Session, holds: Iterable[_Hold]) -> dict[int, str]:
    """The commitment of the person each check-out went to (by event id)."""
    ids = [h.event_id for h in holds]
    found: dict[int, str] = {}
    for event_id, record in session.exec(select(CustodyEventRow.id, CustodyEventRow.record)
                                         .where(col(CustodyEventRow.id).in_(ids))):
        holder = parse_record(record).get("to") or {}
        found[event_id or 0] = str(holder.get("ref", ""))
    return found


def _bookings(session: Session, agency_id: str, site_ids: Sequence[str], class_id: str,
              items: dict[Key, _Item], holds: list[_Hold], start: datetime, end: datetime
              ) -> list[Request]:
    """The booked items as requests: each collected one turns its check-out into a booking
    request (in place in `holds`), each other one is a no-show, returned. A booking is the
    agency's, and names the agency's own items and people."""
    bookings = [b for b in session.exec(select(Reservation).where(
        Reservation.agency_id == agency_id, col(Reservation.cancelled_at).is_(None),
        col(Reservation.starts_at) >= start, col(Reservation.starts_at) < end)
        .order_by(col(Reservation.starts_at), col(Reservation.id)))
        if (b.class_id == class_id and site_ids)
        or any((agency_id, a) in items for a in b.asset_ids)]
    if not bookings:
        return []
    people = {p for b in bookings for p in b.people}
    commitment_of = dict(session.exec(select(Person.id, Person.commitment).where(
        col(Person.id).in_(people), Person.agency_id == agency_id)).all())
    in_windows = [h for h in holds if h.request.agency_id == agency_id and any(
        b.starts_at <= h.request.at < b.ends_at for b in bookings)]
    holder_of = _holder_commitments(session, in_windows)
    taken: set[int] = set()
    no_shows: list[Request] = []
    for booking in bookings:
        wanted = {commitment_of[p] for p in booking.people if p in commitment_of}
        named = [(agency_id, a) for a in booking.asset_ids if (agency_id, a) in items]
        slots: list[Key | None] = list(named) or [None] * (booking.quantity or 0)
        for slot in slots:
            hold = next((h for h in in_windows if id(h) not in taken
                         and booking.starts_at <= h.request.at < booking.ends_at
                         and holder_of.get(h.event_id) in wanted
                         and (slot is None or h.item == slot)), None)
            if hold is not None:
                taken.add(id(hold))
                hold.request = replace(hold.request, source="booking")
                continue
            site = items[slot].site_id if slot is not None else site_ids[0]
            no_shows.append(Request(
                at=booking.starts_at, site_id=site, class_id=class_id, agency_id=agency_id,
                source="booking", met=True, no_show=True,
                held_s=(booking.ends_at - booking.starts_at).total_seconds()))
    return no_shows


def _out_of_service(session: Session, items: dict[Key, _Item], start: datetime, end: datetime
                    ) -> list[OutOfService]:
    """The periods pool items spent out of service that overlap [start, end), clipped to
    its start (a shared item's too: sharing it shares whether it can be issued)."""
    changes: dict[Key, list[tuple[datetime, str]]] = defaultdict(list)
    for agency_id, asset_id, result, at in session.exec(
            select(MaintenanceWork.agency_id, MaintenanceWork.asset_id, MaintenanceWork.result,
                   MaintenanceWork.created_at)
            .where(_of_items(MaintenanceWork.agency_id, MaintenanceWork.asset_id, items),
                   col(MaintenanceWork.result).in_([OUT, BACK]),
                   col(MaintenanceWork.created_at) < end)
            .order_by(col(MaintenanceWork.created_at), col(MaintenanceWork.id))):
        changes[(agency_id, asset_id)].append((at, result))
    periods = []
    for (agency_id, asset_id), steps in sorted(changes.items(), key=lambda c: c[0][::-1]):
        since: datetime | None = None
        for at, result in steps:
            if result == OUT and since is None:
                since = at
            elif result == BACK and since is not None:
                if at > start:
                    periods.append(OutOfService(asset_id, max(since, start), at, agency_id))
                since = None
        if since is not None:
            periods.append(OutOfService(asset_id, max(since, start), None, agency_id))
    return periods


def load_history(session: Session, agency_id: str, site_ids: Sequence[str], class_id: str,
                 start: datetime, end: datetime, *,
                 include_shared_from: Mapping[str, str] | None = None) -> PoolHistory:
    """Agency `agency_id`'s history of the pool of `class_id` at its `site_ids` over
    [start, end), with what each agency of `include_shared_from` (agency -> its class) shares
    with it. The caller has checked that the sites and class are the agency's."""
    shared = dict(include_shared_from or {})
    items = {(i.agency_id, i.id): i
             for i in pool_items(session, agency_id, site_ids, class_id, shared)}
    holds = _holds(session, items, class_id, start, end) if items else []
    no_shows = _bookings(session, agency_id, site_ids, class_id, items, holds, start, end)
    requests = sorted([h.request for h in holds] + no_shows
                      + _unmet(session, agency_id, site_ids, class_id, start, end),
                      key=lambda r: r.at)
    agencies = (agency_id, *sorted(a for a in shared if a != agency_id))
    return PoolHistory(
        agency_ids=agencies, site_ids=tuple(sorted({*site_ids, *(i.site_id for i in
                                                                  items.values())})),
        class_id=class_id, start=start, end=end,
        pool_size=sum(1 for i in items.values() if i.status not in _GONE),
        requests=tuple(requests),
        out_of_service=tuple(_out_of_service(session, items, start, end)))
