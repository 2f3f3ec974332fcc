"""The property room's staff pages: maintenance (each class's schedules, the items due,
overdue, failed or out of service, a check recorded, an item taken out of or back into
service) and bookings (listed, made for named items or N of a class, cancelled).

Each form calls the REST route's own function (`api.routes.maintenance`,
`api.routes.reservations`) with the page user's caller, so what it logs is written in the same
transaction as the row, and is refused for the same reasons: a refused check or service change
is kept as a refusal, as on the API. The pages need the REST reads' scope (`assets:read`) and
the forms the writes' (`custody:write`), with the session's form token.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, TypeVar

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlmodel import Session, col, select

from api.auth import Caller
from api.custody import maintenance, reservations
from api.db import utcnow
from api.deps import SessionDep
from api.models.assets import AssetClass
from api.models.clients import Scope
from api.problems import Problem
from api.routes import maintenance as maintenance_routes
from api.routes import reservations as booking_routes
from api.web.session import AssetsUser, CurrentUser, WebUser, signed_form
from api.web.templating import page
from ledger.core.bounds import MAX_ID_CHARS, MAX_LOAN_DAYS, is_identifier

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_BOOKINGS_SHOWN: Final = 200
"""Bookings listed on the page (the REST list's largest page)."""
TIME_FORMAT: Final = "%Y-%m-%dT%H:%M"
"""A `datetime-local` field's value; the page's times are UTC, as it says."""

BookingId = Annotated[int, Path(ge=1, le=2**53 - 1)]
DONE: Final = {"pass": "check passed", "fail": "check failed", "out": "out of service",
               "back": "back in service", "booked": "booked", "cancelled": "cancelled"}
"""What a form did, as the page it returns to says it: the link names only the key and an id,
so no link can make a page say free text."""
WithinDays = Annotated[int, Query(ge=0, le=MAX_LOAN_DAYS)]
M = TypeVar("M", bound=BaseModel)


class FormRefused(ValueError):
    """A form the page answers with itself and what is wrong (422 or 409)."""

    def __init__(self, reason: str, status: int = 422, conflicts: list[Any] | None = None
                 ) -> None:
        super().__init__(reason)
        self.status = status
        self.conflicts = conflicts or []


def acting_caller(user: WebUser) -> Caller:
    """The caller a page's write acts as: the session's, named for a staff account by its id
    (`account:<id>`), as a booking's audit trail records who made or cancelled it."""
    if user.account is None:
        return user.caller
    return replace(user.caller, client_id=f"account:{user.account.id}")


def _model(model: type[M], values: dict[str, Any]) -> M:
    """The REST body `model` from a form's values, or `FormRefused` with the first fault."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"]) or "form"
        raise FormRefused(f"{where}: {error['msg']}") from None


def _run(session: Session, action: Any, *args: Any) -> Any:
    """Call a REST route's function; its problem answer becomes the form's refusal."""
    try:
        return action(*args)
    except Problem as exc:
        session.rollback()
        raise FormRefused(str(exc.detail), exc.status_code) from None


# Maintenance


def _maintenance_page(request: Request, session: Session, user: WebUser, within_days: int,
                      values: dict[str, str], error: FormRefused | None = None,
                      done: str = "") -> Response:
    agency = user.caller.agency_id
    classes = list(session.exec(select(AssetClass).where(AssetClass.agency_id == agency)
                                .order_by(col(AssetClass.id))))
    schedules = maintenance.schedules_of(session, agency)
    due = maintenance.due_items(session, agency, utcnow(),
                                timedelta(days=within_days))
    by_class = [(c, [s for s in schedules if s.class_id == c.id],
                 [d for d in due if d.class_id == c.id]) for c in classes]
    return page(request, "maintenance.html", status_code=error.status if error else 200,
                user=user, by_class=[row for row in by_class if row[1] or row[2]],
                schedules=schedules, within_days=within_days, values=values,
                error=str(error) if error else None, done=done,
                writer=user.caller.may(Scope.CUSTODY_WRITE))


def _done(what: str, ident: str) -> str:
    """The confirmation a form's redirect asks for: a known change and an id, else nothing."""
    return f"{ident}: {DONE[what]}" if what in DONE and is_identifier(ident) else ""


Done = Annotated[str, Query(max_length=MAX_ID_CHARS)]


@router.get("/maintenance", response_class=HTMLResponse)
def maintenance_page(request: Request, session: SessionDep, user: AssetsUser,
                     within_days: WithinDays = 30, done: Done = "", item: Done = ""
                     ) -> Response:
    """Per class: its schedules and its items due, overdue, failed or out of service."""
    return _maintenance_page(request, session, user, within_days, {}, done=_done(done, item))


def _form_values(form: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {name: form.get(name, "").strip() for name in names}


@router.post("/maintenance/checks", response_class=HTMLResponse)
async def record_check(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Record a check (as `POST /v1/assets/{id}/maintenance`)."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    values = _form_values(form, ("asset", "schedule", "result", "officer"))
    try:
        body = _model(maintenance_routes.CheckCreate, {
            k: values[k] for k in ("schedule", "result", "officer")})
        work = _run(session, maintenance_routes.record_check, _asset_id(values["asset"]),
                    body, session, acting_caller(user))
    except FormRefused as exc:
        return _maintenance_page(request, session, user, 30, values, exc)
    return RedirectResponse(f"/web/maintenance?done={work.result}&item={work.asset_id}",
                            status_code=303)


@router.post("/maintenance/service", response_class=HTMLResponse)
async def change_service(request: Request, session: SessionDep, user: CurrentUser
                         ) -> Response:
    """Take an item out of service or put it back (as `POST /v1/assets/{id}/out-of-service`
    and `/back-in-service`)."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    values = _form_values(form, ("asset", "officer", "reason", "change"))
    try:
        route = {"out": maintenance_routes.take_out_of_service,
                 "back": maintenance_routes.put_back_in_service}.get(values["change"])
        if route is None:
            raise FormRefused("change: choose out of service or back in service")
        body = _model(maintenance_routes.ServiceChange, {
            k: values[k] for k in ("officer", "reason")})
        work = _run(session, route, _asset_id(values["asset"]), body, session,
                    acting_caller(user))
    except FormRefused as exc:
        return _maintenance_page(request, session, user, 30, values, exc)
    return RedirectResponse(f"/web/maintenance?done={values['change']}&item={work.asset_id}",
                            status_code=303)


def _asset_id(text: str) -> str:
    """An asset id (within the REST path's bounds), else `FormRefused`."""
    if not is_identifier(text):
        raise FormRefused("asset: an asset id is letters, digits and . _ : -")
    return text


# Bookings


def _bookings_page(request: Request, session: Session, user: WebUser, current: bool,
                   values: dict[str, str], error: FormRefused | None = None,
                   done: str = "") -> Response:
    agency = user.caller.agency_id
    return page(request, "bookings.html", status_code=error.status if error else 200,
                user=user, current=current, values=values, done=done,
                error=str(error) if error else None,
                conflicts=error.conflicts if error else [],
                bookings=booking_routes.bookings_of(session, agency, current=current,
                                                    limit=MAX_BOOKINGS_SHOWN),
                classes=list(session.exec(select(AssetClass).where(
                    AssetClass.agency_id == agency).order_by(col(AssetClass.id)))),
                writer=user.caller.may(Scope.CUSTODY_WRITE), now=utcnow())


@router.get("/bookings", response_class=HTMLResponse)
def bookings_page(request: Request, session: SessionDep, user: AssetsUser,
                  current: bool = True, done: Done = "", item: Done = "") -> Response:
    """The agency's bookings (current ones, or all), and the form making one."""
    return _bookings_page(request, session, user, current, {}, done=_done(done, item))


def _ids(text: str) -> list[str]:
    """Ids typed into one field, separated by commas, semicolons or spaces."""
    return [part for part in text.replace(",", " ").replace(";", " ").split() if part]


def _utc(text: str, field: str) -> str:
    """A `datetime-local` value, read as UTC, as the REST body's ISO 8601 with its zone."""
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).isoformat()
    except ValueError:
        raise FormRefused(f"{field}: a date and time (UTC), as YYYY-MM-DDTHH:MM") from None


def _booking_body(values: dict[str, str]) -> booking_routes.ReservationCreate:
    body: dict[str, Any] = {"operation": values["operation"], "people": _ids(values["people"]),
                            "starts_at": _utc(values["starts_at"], "starts_at"),
                            "ends_at": _utc(values["ends_at"], "ends_at")}
    if values["kind"] == "class":
        if not values["quantity"].isdigit() or len(values["quantity"]) > 6:
            raise FormRefused("quantity: a whole number of items")
        body |= {"class_id": values["class_id"], "quantity": int(values["quantity"])}
    elif values["kind"] == "named":
        body["asset_ids"] = _ids(values["asset_ids"])
    else:
        raise FormRefused("book: choose named items or items of a class")
    return _model(booking_routes.ReservationCreate, body)


BOOKING_FIELDS: Final = ("operation", "kind", "class_id", "quantity", "asset_ids", "people",
                         "starts_at", "ends_at")


@router.post("/bookings", response_class=HTMLResponse)
async def book(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Make a booking (as `POST /v1/reservations`); a conflict lists the bookings in its way."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    values = _form_values(form, BOOKING_FIELDS)
    try:
        body = _booking_body(values)
        try:
            booking = _run(session, booking_routes.create_booking, session,
                           acting_caller(user), body)
        except reservations.BookingConflict as exc:
            raise FormRefused(str(exc), 409, exc.bookings) from None
        session.commit()
    except FormRefused as exc:
        return _bookings_page(request, session, user, True, values, exc)
    return RedirectResponse(f"/web/bookings?done=booked&item={booking.id}", status_code=303)


@router.post("/bookings/{reservation_id}/cancel", response_class=HTMLResponse)
async def cancel(reservation_id: BookingId, request: Request, session: SessionDep,
                 user: CurrentUser) -> Response:
    """Cancel a booking (as `POST /v1/reservations/{id}/cancel`); another agency's is 404."""
    await signed_form(request, user, Scope.CUSTODY_WRITE)
    try:
        _run(session, booking_routes.cancel_booking, session, acting_caller(user),
             reservation_id)
        session.commit()
    except FormRefused as exc:
        if exc.status == 404:
            raise Problem(404, "not-found", "reservation not found") from None
        return _bookings_page(request, session, user, True, {}, exc)
    return RedirectResponse(f"/web/bookings?done=cancelled&item={reservation_id}", status_code=303)
