"""Bookings: items of a class (N of class X) or named items, for a planned operation's window.

Bookings are operational data, not log records: a plan is not custody, and it changes
(cancelled, rebooked) before anything happens to the kit; what the kit then does is logged as
custody events as ever. Each booking's creation and cancellation is kept in
`reservation_audit`. Every query is the agency's own: another agency's bookings are never
seen and never block.

A booking conflicts when it names an item another booking in an overlapping window names, or
when the overlapping bookings of a class would want more items than the class has (retired
and disposed items aside).
At the issue desk, inside a booking's window, a named item goes only to the booking's people,
and an item of a booked class goes to others only while enough stay in store for the
bookings' outstanding items. A refusal raises `CustodyRefused`; a conflict `BookingConflict`.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody.maintenance import AssetKey, issue_block
from api.custody.transfers import CustodyRefused
from api.models.assets import Asset, AssetStatus
from api.models.maintenance import Reservation, ReservationAudit
from ledger.core.records import format_time

MAX_WINDOW: timedelta = timedelta(days=366)
"""The longest booking: a plan for over a year is a transfer of the kit, not a booking."""
MAX_NAMED = 200
"""Items one booking may name; MAX_QUANTITY bounds a class booking likewise."""
MAX_QUANTITY = 1000
_LIVE = (AssetStatus.IN_STORE, AssetStatus.CHECKED_OUT, AssetStatus.ON_LOAN)


class BookingConflict(CustodyRefused):
    """The bookings a new one conflicts with (the message says why)."""

    def __init__(self, reason: str, bookings: list[Reservation]) -> None:
        super().__init__(reason)
        self.bookings = bookings


def _overlapping(session: Session, agency_id: str, starts: datetime, ends: datetime
                 ) -> list[Reservation]:
    return list(session.exec(select(Reservation).where(
        Reservation.agency_id == agency_id, col(Reservation.cancelled_at).is_(None),
        col(Reservation.starts_at) < ends, col(Reservation.ends_at) > starts
    ).order_by(col(Reservation.id))))


def _class_sizes(session: Session, agency_id: str, class_ids: set[str]) -> Counter[str]:
    rows = session.exec(select(Asset.class_id).where(
        Asset.agency_id == agency_id, col(Asset.class_id).in_(class_ids),
        col(Asset.status).in_(_LIVE)))
    return Counter(rows)


def conflicts(session: Session, booking: Reservation) -> tuple[str, list[Reservation]] | None:
    """Why `booking` cannot be made, and the bookings in its way; None if it can."""
    others = _overlapping(session, booking.agency_id, booking.starts_at, booking.ends_at)
    named = set(booking.asset_ids)
    clashing = [other for other in others if named & set(other.asset_ids)]
    if clashing:
        items = sorted(named & {a for other in clashing for a in other.asset_ids})
        return f"{', '.join(items[:5])} already booked in this window", clashing
    bookings = [*others, booking]
    classes_of = _classes_of(session, booking.agency_id,
                             {a for b in bookings for a in b.asset_ids})
    wanted: Counter[str] = Counter()
    for item in bookings:
        if item.class_id is not None:
            wanted[item.class_id] += item.quantity or 0
        wanted.update(classes_of[a] for a in item.asset_ids if a in classes_of)
    mine = {booking.class_id} | {classes_of.get(a) for a in booking.asset_ids}
    sizes = _class_sizes(session, booking.agency_id, {c for c in mine if c is not None})
    for class_id in sorted(c for c in mine if c is not None):
        if wanted[class_id] > sizes[class_id]:
            return (f"class {class_id} has {sizes[class_id]} live items, bookings in "
                    f"this window want {wanted[class_id]}",
                    [b for b in others if b.class_id == class_id
                     or any(classes_of.get(a) == class_id for a in b.asset_ids)])
    return None


def _classes_of(session: Session, agency_id: str, asset_ids: set[str]) -> dict[str, str]:
    if not asset_ids:
        return {}
    return dict(session.exec(select(Asset.id, Asset.class_id).where(
        Asset.agency_id == agency_id, col(Asset.id).in_(asset_ids))).all())


def _audit(session: Session, booking: Reservation, change: str, client_id: str,
           now: datetime) -> None:
    session.flush()
    assert booking.id is not None
    what = (f"{booking.quantity} of {booking.class_id}" if booking.class_id
            else f"{len(booking.asset_ids)} named items")
    session.add(ReservationAudit(
        agency_id=booking.agency_id, reservation_id=booking.id, change=change,
        client_id=client_id, created_at=now,
        detail=f"{what} for {booking.operation}"[:200]))
    webhook_outbox.property_room_event(session, booking.agency_id, f"reservation.{change}", {
        "reservation_id": booking.id, "operation": booking.operation,
        "starts_at": format_time(booking.starts_at), "ends_at": format_time(booking.ends_at)},
        now)


def book(session: Session, booking: Reservation, now: datetime) -> Reservation:
    """Make `booking` (checked: its items, class and people are the agency's) unless it
    conflicts with another (`BookingConflict`)."""
    if booking.ends_at <= booking.starts_at or booking.ends_at <= now:
        raise CustodyRefused("a booking ends after it starts, and in the future")
    if booking.ends_at - booking.starts_at > MAX_WINDOW:
        raise CustodyRefused(f"a booking lasts at most {MAX_WINDOW.days} days")
    found = conflicts(session, booking)
    if found is not None:
        raise BookingConflict(*found)
    booking.created_at = now
    session.add(booking)
    _audit(session, booking, "created", booking.client_id, now)
    return booking


def cancel(session: Session, booking: Reservation, client_id: str, now: datetime
           ) -> Reservation:
    """Cancel `booking`: its items are free again; the row and its audit trail stay."""
    if booking.cancelled_at is not None:
        raise CustodyRefused("booking is already cancelled")
    booking.cancelled_at = now
    session.add(booking)
    _audit(session, booking, "cancelled", client_id, now)
    return booking


def _reason(booking: Reservation) -> str:
    return f"reserved for {booking.operation} until {format_time(booking.ends_at)}"


def desk_block(session: Session, asset: AssetKey, holder_id: str, now: datetime,
               holder_agency: str | None = None) -> str | None:
    """Why `asset` may not go to `holder_id` (of agency `holder_agency`, default the owner)
    at `now` for a booking, or None. Bookings name the owner's people: ids are per agency,
    so a borrower's officer is never one of them."""
    current = _overlapping(session, asset.agency_id, now, now + timedelta(microseconds=1))
    owners = holder_agency in (None, asset.agency_id)
    naming = [b for b in current if asset.id in b.asset_ids]
    for booking in naming:
        if not owners or holder_id not in booking.people:
            return _reason(booking)
    if naming:  # booked by name for this holder: no class booking counts on it
        return None
    others = [b for b in current
              if b.class_id == asset.class_id and not (owners and holder_id in b.people)]
    if not others:
        return None
    named = {a for b in current for a in b.asset_ids}
    in_store = [a for a in session.exec(select(Asset.id).where(
        Asset.agency_id == asset.agency_id, Asset.class_id == asset.class_id,
        Asset.status == AssetStatus.IN_STORE)) if a not in named]
    held = Counter(session.exec(select(Asset.holder_ref).where(
        Asset.agency_id == asset.agency_id, Asset.class_id == asset.class_id,
        Asset.status == AssetStatus.CHECKED_OUT, Asset.holder_agency_id == asset.agency_id)))
    outstanding = sum(max(0, (b.quantity or 0) - sum(held[p] for p in set(b.people)))
                      for b in others)
    if len(in_store) - 1 < outstanding:
        return _reason(others[0])
    return None


def issue_refusal(session: Session, asset: AssetKey, holder_id: str, now: datetime,
                  holder_agency: str | None = None) -> str | None:
    """Why the issue desk may not give `asset` to `holder_id` (of agency `holder_agency`,
    default the owner) at `now` (maintenance first, then bookings), or None: the check every
    check-out passes, read or entered by hand."""
    return issue_block(session, asset, now) or desk_block(session, asset, holder_id, now,
                                                          holder_agency)


MAX_REPORTED = 200
"""Bookings one custody report lists, newest first (a report is read, not scrolled)."""


def bookings_of_asset(session: Session, asset: Asset, now: datetime) -> list[dict[str, str]]:
    """The owner's bookings naming `asset` or of its class, newest first, as the custody
    report's rows (`ledger.report.CustodyReport.bookings`): they are not in any bundle, so
    only the API's own report page shows them."""
    rows = session.exec(select(Reservation).where(
        Reservation.agency_id == asset.agency_id,
        (col(Reservation.class_id) == asset.class_id) | col(Reservation.class_id).is_(None),
    ).order_by(col(Reservation.id).desc()))
    found = []
    for booking in rows:
        if booking.class_id is None and asset.id not in booking.asset_ids:
            continue
        ends = booking.ends_at.replace(tzinfo=now.tzinfo)
        state = ("cancelled " + format_time(booking.cancelled_at) if booking.cancelled_at
                 else "ended" if ends <= now else "booked")
        found.append({
            "id": str(booking.id), "operation": booking.operation,
            "booked": (f"{booking.quantity} of {booking.class_id}" if booking.class_id
                      else ", ".join(booking.asset_ids)),
            "people": ", ".join(booking.people), "starts_at": format_time(booking.starts_at),
            "ends_at": format_time(booking.ends_at), "state": state})
        if len(found) == MAX_REPORTED:
            break
    return found
