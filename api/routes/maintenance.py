"""Maintenance routes: a class's schedules (scope `assets:write` to add, `assets:read` to
list), a check done and an item taken out of or back into service (`custody:write`), and the
items due, overdue or out of service (`assets:read`).

Each change appends a registry record to the agency's log; a refused one answers 409 with the
reason as a problem detail, and is kept as a refusal.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.custody import maintenance
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import AssetsReader, AssetsWriter, CustodyWriter, SessionDep
from api.models.assets import AssetClass
from api.models.maintenance import MaintenanceSchedule, MaintenanceWork
from api.problems import Problem
from api.routes.custody import refused
from api.routes.paging import IdPath
from api.routes.property_room import PersonRef, Reason, person_of
from api.scoping import agency_row, owned_asset
from ledger.core.bounds import MAX_ID_CHARS, MAX_LOAN_DAYS, is_identifier

router = APIRouter(prefix="/v1", tags=["maintenance"])

ScheduleKey = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS,
                                               pattern=r"^[!-~]+$")]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    key: ScheduleKey
    """The schedule's id in the log, e.g. `taser-annual-test`."""
    name: Reason
    interval_days: int = Field(ge=1, le=MAX_LOAN_DAYS, strict=True)
    blocking: bool = Field(strict=True)
    """A safety check: an item overdue for it, or that failed it, is not issued."""


class SchedulePublic(BaseModel):
    key: str
    class_id: str
    name: str
    interval_days: int
    blocking: bool
    leaf_index: int
    created_at: datetime


class CheckCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: ScheduleKey
    result: Literal["pass", "fail"]
    officer: PersonRef
    """Who did the work (logged by commitment)."""


class ServiceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    officer: PersonRef
    reason: Reason


class WorkPublic(BaseModel):
    asset_id: str
    schedule: str | None = Field(validation_alias="schedule_key")
    result: str
    officer_id: str
    reason: str | None
    next_due: datetime | None
    leaf_index: int
    created_at: datetime


class DueItem(BaseModel):
    asset_id: str
    class_id: str
    schedule: str | None
    state: Literal["out_of_service", "never_done", "failed", "overdue", "due"]
    blocking: bool
    next_due: datetime | None


@router.post("/classes/{class_id}/schedules", status_code=status.HTTP_201_CREATED,
             response_model=SchedulePublic)
def add_schedule(class_id: IdPath, data: ScheduleCreate, session: SessionDep,
                 caller: AssetsWriter) -> MaintenanceSchedule:
    """Give a class a maintenance schedule (logged in the class's registry chain)."""
    asset_class = agency_row(session, AssetClass, caller.agency_id, class_id, "class")
    if not is_identifier(data.key):
        raise Problem(422, "bad-schedule", "a schedule key is printable ASCII")
    try:
        schedule = maintenance.add_schedule(
            session, asset_class=asset_class, key=data.key, name=data.name,
            interval_days=data.interval_days, blocking=data.blocking, now=utcnow())
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(409, "schedule-exists", str(exc)) from None
    session.commit()
    session.refresh(schedule)
    return schedule


@router.get("/schedules", response_model=list[SchedulePublic])
def list_schedules(session: SessionDep, caller: AssetsReader,
                   class_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None
                   ) -> list[MaintenanceSchedule]:
    """The agency's maintenance schedules, by key (of one class if asked)."""
    return maintenance.schedules_of(session, caller.agency_id, class_id)


@router.post("/assets/{asset_id}/maintenance", status_code=status.HTTP_201_CREATED,
             response_model=WorkPublic)
def record_check(asset_id: IdPath, data: CheckCreate, session: SessionDep,
                 caller: CustodyWriter) -> MaintenanceWork:
    """Record a check done on an item: pass (next due after the interval) or fail."""
    asset = owned_asset(session, caller, asset_id)
    schedule = next((s for s in maintenance.schedules_of(session, caller.agency_id)
                     if s.key == data.schedule), None)
    if schedule is None:
        raise Problem(422, "unknown-schedule", f"{data.schedule!r} is not one of your "
                      "agency's schedules")
    officer = person_of(session, caller, data.officer)
    try:
        work = maintenance.record_check(session, asset=asset, schedule=schedule,
                                        passed=data.result == "pass", officer=officer,
                                        now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "maintenance", exc) from None
    session.commit()
    session.refresh(work)
    return work


def _service(asset_id: str, data: ServiceChange, session: SessionDep, caller: CustodyWriter,
             *, in_service: bool) -> MaintenanceWork:
    asset = owned_asset(session, caller, asset_id)
    officer = person_of(session, caller, data.officer)
    try:
        work = maintenance.change_service(session, asset=asset, in_service=in_service,
                                          reason=data.reason, officer=officer, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id,
                      "back_in_service" if in_service else "out_of_service", exc) from None
    session.commit()
    session.refresh(work)
    return work


@router.post("/assets/{asset_id}/out-of-service", status_code=status.HTTP_201_CREATED,
             response_model=WorkPublic)
def take_out_of_service(asset_id: IdPath, data: ServiceChange, session: SessionDep,
                        caller: CustodyWriter) -> MaintenanceWork:
    """Take an item out of service: the issue desk refuses it until it is back."""
    return _service(asset_id, data, session, caller, in_service=False)


@router.post("/assets/{asset_id}/back-in-service", status_code=status.HTTP_201_CREATED,
             response_model=WorkPublic)
def put_back_in_service(asset_id: IdPath, data: ServiceChange, session: SessionDep,
                        caller: CustodyWriter) -> MaintenanceWork:
    """Put an item taken out of service back in service."""
    return _service(asset_id, data, session, caller, in_service=True)


@router.get("/maintenance/due", response_model=list[DueItem])
def list_due(session: SessionDep, caller: AssetsReader,
             within_days: Annotated[int, Query(ge=0, le=MAX_LOAN_DAYS)] = 30
             ) -> list[maintenance.ItemState]:
    """Items out of service, never checked, failed, overdue, or due within `within_days`."""
    return maintenance.due_items(session, caller.agency_id, utcnow(),
                                 timedelta(days=within_days))
