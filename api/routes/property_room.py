"""Property-room routes: manual desk entries (scope `custody:write`), corrections
(`custody:write`), retiring assets (`assets:write`) and people (`admin`), and the manual
entries counted per desk and officer (`audit:read`).

Nothing here edits or deletes a logged record: each call appends a custody event or a registry
record. A refused change answers 409 with the reason as a problem detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.auth import Caller
from api.custody import corrections, manual
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import Admin, AssetsWriter, Auditor, CustodyWriter, SessionDep
from api.models.assets import Asset, AssetPublic
from api.models.custody import ManualEntry
from api.models.people import Person, PersonPublic
from api.models.registry import Reader
from api.problems import Problem, problem_response
from api.routes.assets import owner_read
from api.routes.custody import refused
from api.routes.paging import IdPath, OwnerQuery
from api.scoping import agency_row, own_row, owned_asset
from ledger.core.bounds import HASH_HEX_CHARS, MAX_ID_CHARS, MAX_REVOCATION_REASON_CHARS
from ledger.core.records import RegistryRecord

router = APIRouter(prefix="/v1", tags=["property room"])

Reason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REVOCATION_REASON_CHARS,
                                          pattern=r"^[ -~]+$")]
"""Why, as logged: printable ASCII (the record format's reason), shown on reports."""
PersonRef = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class ManualEntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    action: Literal["check_out", "check_in", "transfer"]
    desk: PersonRef
    officer: PersonRef
    supervisor: PersonRef | None = None
    holder: PersonRef | None = None
    """Whom a check-out or hand-over (transfer) goes to."""
    reason: Reason


class ManualEntryPublic(BaseModel):
    id: int
    asset_id: str
    action: str
    desk_id: str
    officer_id: str
    supervisor_id: str | None
    reason: str
    leaf_index: int
    created_at: datetime


class CorrectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    leaf_index: int | None = Field(default=None, ge=0, le=2**53 - 1)
    event_hash: str | None = Field(default=None, pattern=f"^[0-9a-f]{{{HASH_HEX_CHARS}}}$")
    reason: Reason


class CorrectionPublic(BaseModel):
    asset_id: str
    leaf_index: int
    """The correction's own leaf."""
    corrects_leaf: int
    corrects_event: str
    reason: str
    time: str


class RetireRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    reason: Reason = corrections.DELETED_REASON


class ManualCount(BaseModel):
    desk_id: str
    officer_id: str
    entries: int


def person_of(session: Session, caller: Caller, person_id: str) -> Person:
    """The caller's agency's person `person_id` (422 if none)."""
    person = own_row(session, Person, caller.agency_id, person_id)
    if person is None:
        raise Problem(422, "unknown-person", f"{person_id!r} is not one of your agency's people")
    return person


def _person(session: Session, caller: Caller, person_id: str | None) -> Person | None:
    return None if person_id is None else person_of(session, caller, person_id)


@router.post("/assets/{asset_id}/manual-entries", status_code=status.HTTP_201_CREATED,
             response_model=ManualEntryPublic)
def enter_manually(asset_id: IdPath, data: ManualEntryCreate, session: SessionDep,
                   caller: CustodyWriter) -> ManualEntry:
    """Record a check-out, check-in or hand-over entered by hand at a desk, with why."""
    asset = owned_asset(session, caller, asset_id)
    desk = session.get(Reader, data.desk)
    if desk is None or desk.agency_id != caller.agency_id:
        raise Problem(422, "unknown-desk", f"{data.desk!r} is not one of your agency's desks")
    officer = _person(session, caller, data.officer)
    assert officer is not None
    request = manual.ManualRequest(
        action=data.action, desk=desk, officer=officer,
        supervisor=_person(session, caller, data.supervisor),
        holder=_person(session, caller, data.holder), reason=data.reason,
        client_id=caller.client_id)
    try:
        entry = manual.enter_manually(session, asset=asset, request=request, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, data.action, exc) from None
    session.commit()
    session.refresh(entry)
    return entry


@router.get("/manual-entries", response_model=list[ManualEntryPublic])
def list_manual_entries(
    session: SessionDep, caller: Auditor,
    desk: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    officer: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[ManualEntry]:
    """The agency's manual entries, newest first, by desk or officer if asked."""
    query = select(ManualEntry).where(ManualEntry.agency_id == caller.agency_id)
    if desk is not None:
        query = query.where(ManualEntry.desk_id == desk)
    if officer is not None:
        query = query.where(ManualEntry.officer_id == officer)
    return list(session.exec(query.order_by(col(ManualEntry.id).desc()).limit(limit)))


@router.get("/manual-entries/counts", response_model=list[ManualCount])
def count_manual_entries(session: SessionDep, caller: Auditor) -> list[ManualCount]:
    """How many entries were made by hand, per desk and officer."""
    rows = session.exec(
        select(ManualEntry.desk_id, ManualEntry.officer_id, func.count())
        .where(ManualEntry.agency_id == caller.agency_id)
        .group_by(col(ManualEntry.desk_id), col(ManualEntry.officer_id))
        .order_by(col(ManualEntry.desk_id), col(ManualEntry.officer_id)))
    return [ManualCount(desk_id=d, officer_id=o, entries=n) for d, o, n in rows]


@router.post("/assets/{asset_id}/corrections", status_code=status.HTTP_201_CREATED,
             response_model=CorrectionPublic)
def correct(asset_id: IdPath, data: CorrectionCreate, session: SessionDep,
            caller: CustodyWriter) -> CorrectionPublic:
    """Declare one of the asset's logged events wrong, and why; the event stays."""
    asset = owned_asset(session, caller, asset_id)
    try:
        record, leaf = corrections.correct_event(
            session, asset=asset, leaf_index=data.leaf_index, event_hash=data.event_hash,
            reason=data.reason, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "correct", exc) from None
    session.commit()
    return _correction(asset.id, record, leaf)


@router.get("/assets/{asset_id}/corrections", response_model=list[CorrectionPublic])
def list_corrections(asset_id: IdPath, session: SessionDep, caller: CustodyWriter,
                     owner: OwnerQuery = None) -> list[CorrectionPublic]:
    """The asset's corrections, oldest first."""
    asset = owner_read(session, caller, asset_id, owner)
    return [_correction(asset.id, record, leaf)
            for record, leaf in corrections.corrections_of(session, asset)]


def _correction(asset_id: str, record: RegistryRecord, leaf: int
                ) -> CorrectionPublic:
    return CorrectionPublic(asset_id=asset_id, leaf_index=leaf,
                            corrects_leaf=record.get("leaf"), corrects_event=record.get("event"),
                            reason=record.get("reason"), time=record.time)


def _retire(session: Session, caller: Caller, asset_id: str, reason: str) -> Asset:
    asset = owned_asset(session, caller, asset_id)
    try:
        corrections.retire_asset(session, asset=asset, reason=reason, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "retire", exc) from None
    session.commit()
    session.refresh(asset)
    return asset


@router.post("/assets/{asset_id}/retire", response_model=AssetPublic)
def retire_asset(asset_id: IdPath, data: RetireRequest, session: SessionDep,
                 caller: AssetsWriter) -> Asset:
    """Retire an asset, with why: no custody change after; its events stay provable."""
    return _retire(session, caller, asset_id, data.reason)


@router.delete("/assets/{asset_id}", response_model=AssetPublic)
def delete_asset(asset_id: IdPath, session: SessionDep, caller: AssetsWriter) -> Asset:
    """Delete an asset: it is retired, never removed from the log."""
    return _retire(session, caller, asset_id, corrections.DELETED_REASON)


def retirement_refused(session: Session, exc: CustodyRefused) -> JSONResponse:
    """The 409 answer to a refused retirement or erasure; names the items the person holds."""
    session.rollback()
    held = exc.asset_ids if isinstance(exc, corrections.PersonHoldsKit) else []
    return problem_response(409, "custody-refused", "Custody refused", str(exc),
                            **({"holding": held} if held else {}))


@router.post("/people/{person_id}/retire", response_model=PersonPublic,
             responses={409: {"description": "already retired, or holds kit (`holding`)"}})
def retire_person(person_id: IdPath, data: RetireRequest, session: SessionDep,
                  caller: Admin) -> Person | JSONResponse:
    """Retire a person, with why; their personal data stays until erased. Refused while they
    hold kit: the answer lists the items (`holding`)."""
    person = agency_row(session, Person, caller.agency_id, person_id, "person")
    try:
        corrections.retire_person(session, person=person, reason=data.reason, erase=False,
                                  now=utcnow())
    except CustodyRefused as exc:
        return retirement_refused(session, exc)
    session.commit()
    session.refresh(person)
    return person
