"""Booking routes: book items of a class or named items for an operation's window, cancel a
booking (scope `custody:write`), list bookings and their audit trail (`assets:read`).

A booking that conflicts answers 409 with the reason and the bookings in its way. Bookings
are the agency's own: another agency's are never listed, named or counted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlmodel import Session, col, select

from api.auth import Caller
from api.custody import reservations
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import AssetsReader, CustodyWriter, SessionDep
from api.models.assets import Asset, AssetClass, AssetStatus
from api.models.maintenance import Reservation, ReservationAudit
from api.problems import Problem, not_found, problem_response
from api.routes.property_room import PersonRef, Reason, person_of
from api.scoping import own_row

router = APIRouter(prefix="/v1", tags=["reservations"])

ItemRef = PersonRef
"""An item's or class's id: 1 to MAX_ID_CHARS characters, as a person's."""
MAX_PEOPLE = 100
"""People one booking may name (an operation's team)."""


class ReservationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    operation: Reason
    class_id: ItemRef | None = None
    quantity: int | None = Field(default=None, ge=1, le=reservations.MAX_QUANTITY, strict=True)
    asset_ids: list[ItemRef] = Field(default_factory=list,
                                       max_length=reservations.MAX_NAMED)
    people: list[PersonRef] = Field(min_length=1, max_length=MAX_PEOPLE)
    """Who may take the booked items in the window."""
    starts_at: AwareDatetime
    ends_at: AwareDatetime

    @model_validator(mode="after")
    def _one_kind(self) -> ReservationCreate:
        by_class = self.class_id is not None or self.quantity is not None
        if by_class == bool(self.asset_ids) or (by_class and None in (self.class_id,
                                                                       self.quantity)):
            raise ValueError("book either class_id with quantity, or asset_ids")
        if len(set(self.asset_ids)) != len(self.asset_ids):
            raise ValueError("asset_ids names an item twice")
        return self


class ReservationPublic(BaseModel):
    id: int
    operation: str
    class_id: str | None
    quantity: int | None
    asset_ids: list[str]
    people: list[str]
    starts_at: datetime
    ends_at: datetime
    cancelled_at: datetime | None
    created_at: datetime


class AuditPublic(BaseModel):
    reservation_id: int
    change: str
    client_id: str
    detail: str
    created_at: datetime


def _public(booking: Reservation) -> dict[str, Any]:
    return ReservationPublic.model_validate(booking, from_attributes=True).model_dump(
        mode="json")


def create_booking(session: Session, caller: Caller, data: ReservationCreate) -> Reservation:
    """Book as asked, in the session's transaction (the caller commits). Raises Problem (422)
    for another agency's class, items or people, or a bad window, and
    `reservations.BookingConflict` naming the bookings in the way."""
    agency = caller.agency_id
    if data.class_id is not None and own_row(session, AssetClass, agency,
                                             data.class_id) is None:
        raise Problem(422, "unknown-class", f"{data.class_id!r} is not one of your "
                      "agency's classes")
    for asset_id in data.asset_ids:
        asset = own_row(session, Asset, agency, asset_id)
        if asset is None or asset.status in (
                AssetStatus.DISPOSED, AssetStatus.RETIRED):
            raise Problem(422, "unknown-asset", f"{asset_id!r} is not one of your agency's "
                          "items in service")
    for person_id in data.people:
        person_of(session, caller, person_id)
    booking = Reservation(agency_id=agency, operation=data.operation, class_id=data.class_id,
                          quantity=data.quantity, asset_ids=data.asset_ids,
                          people=data.people, starts_at=data.starts_at, ends_at=data.ends_at,
                          client_id=caller.client_id)
    try:
        reservations.book(session, booking, utcnow())
    except reservations.BookingConflict:
        session.rollback()
        raise
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(422, "bad-booking", str(exc)) from None
    return booking


@router.post("/reservations", status_code=status.HTTP_201_CREATED,
             response_model=ReservationPublic,
             responses={409: {"description": "conflicts with other bookings (listed)"}})
def book(data: ReservationCreate, session: SessionDep, caller: CustodyWriter
         ) -> Reservation | JSONResponse:
    """Book items of a class, or named items, for an operation's window."""
    try:
        booking = create_booking(session, caller, data)
    except reservations.BookingConflict as exc:
        return problem_response(409, "booking-conflict", "Booking conflict", str(exc),
                                conflicts=[_public(b) for b in exc.bookings])
    session.commit()
    session.refresh(booking)
    return booking


@router.get("/reservations", response_model=list[ReservationPublic])
def list_bookings(session: SessionDep, caller: AssetsReader,
                  current: Annotated[bool, Query()] = True,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[Reservation]:
    """The agency's bookings, newest first: by default those not cancelled nor ended."""
    return bookings_of(session, caller.agency_id, current=current, limit=limit)


def bookings_of(session: Session, agency_id: str, *, current: bool, limit: int
                ) -> list[Reservation]:
    """The agency's bookings, newest first (`current`: not cancelled nor ended)."""
    query = select(Reservation).where(Reservation.agency_id == agency_id)
    if current:
        query = query.where(col(Reservation.cancelled_at).is_(None),
                            col(Reservation.ends_at) > utcnow())
    return list(session.exec(query.order_by(col(Reservation.id).desc()).limit(limit)))


def _booking(session: Session, agency_id: str, reservation_id: int) -> Reservation:
    booking = session.get(Reservation, reservation_id)
    if booking is None or booking.agency_id != agency_id:
        raise not_found("reservation")
    return booking


BookingId = Annotated[int, Path(ge=1, le=2**53 - 1)]


@router.post("/reservations/{reservation_id}/cancel", response_model=ReservationPublic)
def cancel(reservation_id: BookingId, session: SessionDep, caller: CustodyWriter
           ) -> Reservation:
    """Cancel a booking; it and its audit trail stay."""
    booking = cancel_booking(session, caller, reservation_id)
    session.commit()
    session.refresh(booking)
    return booking


def cancel_booking(session: Session, caller: Caller, reservation_id: int) -> Reservation:
    """Cancel the agency's booking in the session's transaction (404 for another agency's,
    409 when already cancelled); the caller commits."""
    booking = _booking(session, caller.agency_id, reservation_id)
    try:
        reservations.cancel(session, booking, caller.client_id, utcnow())
    except CustodyRefused as exc:
        raise Problem(409, "booking-cancelled", str(exc)) from None
    return booking


@router.get("/reservations/{reservation_id}/audit", response_model=list[AuditPublic])
def booking_audit(reservation_id: BookingId, session: SessionDep, caller: AssetsReader,
                  limit: Annotated[int, Query(ge=1, le=200)] = 50
                  ) -> list[ReservationAudit]:
    """A booking's changes, oldest first."""
    _booking(session, caller.agency_id, reservation_id)
    return list(session.exec(select(ReservationAudit).where(
        ReservationAudit.agency_id == caller.agency_id,
        ReservationAudit.reservation_id == reservation_id).order_by(
        col(ReservationAudit.id)).limit(limit)))


