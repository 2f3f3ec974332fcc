"""Inventory routes: open a stocktake of a site (`custody:write`), complete a desk's session
or upload a handheld's batch of signed reads (`custody:write`), list and read them
(`assets:read`), and change a site's custodian (`admin`), which makes a full inventory due.

Every completed inventory appends an `inventory-taken` record to the agency's log, and every
custodian change a `site-custodian` record (`api.inventories`). A refusal answers 409
(the session's state) or 422 (a batch refused whole), as a problem detail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from sqlmodel import Session, col, select

from api import inventories
from api.auth import Caller
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import Admin, AssetsReader, CustodyWriter, SessionDep
from api.ingest.checks import MAX_MESSAGE_BYTES
from api.models.inventories import Inventory, InventoryMode
from api.models.registry import Reader, Site, SitePublic
from api.problems import Problem, not_found
from api.routes.paging import IdPath, Limit
from api.routes.property_room import PersonRef, person_of
from api.scoping import agency_row, own_row
from ledger.core.bounds import MAX_ID_CHARS
from ledger.core.sampling import (
    MAX_CONFIDENCE_BP,
    MAX_MARGIN_BP,
    MIN_CONFIDENCE_BP,
    MIN_MARGIN_BP,
)

router = APIRouter(prefix="/v1", tags=["inventories"])

InventoryId = Annotated[int, Path(ge=1, le=2**63 - 1)]
EnvelopeHex = Annotated[str, StringConstraints(min_length=2, max_length=2 * MAX_MESSAGE_BYTES,
                                               pattern=r"^(?:[0-9a-f]{2})+$")]


class InventoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    site: PersonRef
    reader: PersonRef
    """A desk reader at the site, or a handheld (role `handheld`) carried there."""
    officer: PersonRef
    """Who carries out the stocktake (logged by commitment)."""
    mode: Literal["full", "sampled"] = "full"
    confidence_bp: int = Field(default=9_500, ge=MIN_CONFIDENCE_BP, le=MAX_CONFIDENCE_BP,
                               strict=True)
    margin_bp: int = Field(default=300, ge=MIN_MARGIN_BP, le=MAX_MARGIN_BP, strict=True)
    """A sampled inventory's confidence and margin, in basis points (9500 is 95 %)."""


class UploadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    started_at: AwareDatetime
    ended_at: AwareDatetime
    """When the handheld's walk started and ended (with a zone)."""
    observations: list[EnvelopeHex] = Field(max_length=inventories.MAX_UPLOAD_READS)
    """Each read as the handheld signed it: the envelope's canonical bytes in hex."""


class CustodianChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    custodian: PersonRef | None
    """The person who answers for the site's store from now on (null: nobody)."""


class InventorySummary(BaseModel):
    id: int
    site_id: str
    reader_id: str
    officer_id: str
    mode: str
    status: str
    opened_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    leaf_index: int | None
    counts: dict[str, int]
    share_low_bp: int | None
    share_high_bp: int | None


class InventoryPublic(InventorySummary):
    confidence_bp: int
    margin_bp: int
    seed: str | None
    population: list[str]
    """The items expected at the site when the session opened."""
    looked_for: list[str]
    """All of them, or the sample the seed draws."""
    lists: dict[str, Any]
    record_hash: str | None


def _summary(inventory: Inventory) -> dict[str, Any]:
    return {**inventory.model_dump(), "counts": {
        name: len(values) for name, values in inventory.lists.items()}}


def _public(inventory: Inventory) -> InventoryPublic:
    return InventoryPublic(**_summary(inventory), looked_for=inventories.looked_for(inventory))


def _own(session: Session, caller: Caller, inventory_id: int) -> Inventory:
    inventory = session.get(Inventory, inventory_id)
    if inventory is None or inventory.agency_id != caller.agency_id:
        raise not_found("inventory")
    return inventory


def _site(session: Session, caller: Caller, site_id: str) -> Site:
    site = own_row(session, Site, caller.agency_id, site_id)
    if site is None:
        raise Problem(422, "unknown-site", f"{site_id!r} is not one of your agency's sites")
    return site


def _done(session: Session, inventory: Inventory) -> InventoryPublic:
    session.commit()
    session.refresh(inventory)
    return _public(inventory)


@router.post("/inventories", status_code=status.HTTP_201_CREATED,
             response_model=InventoryPublic)
def open_inventory(data: InventoryCreate, session: SessionDep,
                   caller: CustodyWriter) -> InventoryPublic:
    """Open a stocktake of a site: its expected items now, and a sampled one's sample."""
    site = _site(session, caller, data.site)
    reader = session.get(Reader, data.reader)
    if reader is None or reader.agency_id != caller.agency_id:
        raise Problem(422, "unknown-reader", f"{data.reader!r} is not one of your readers")
    person_of(session, caller, data.officer)
    try:
        inventory = inventories.open_inventory(
            session, caller, site=site, reader=reader, officer_id=data.officer,
            mode=InventoryMode(data.mode), confidence_bp=data.confidence_bp,
            margin_bp=data.margin_bp, now=utcnow())
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(409, "inventory-refused", str(exc)) from None
    return _done(session, inventory)


@router.get("/inventories", response_model=list[InventorySummary])
def list_inventories(
    session: SessionDep, caller: AssetsReader, limit: Limit = 50,
    site: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
) -> list[dict[str, Any]]:
    """The agency's inventories, newest first (of one site if asked)."""
    query = select(Inventory).where(Inventory.agency_id == caller.agency_id)
    if site is not None:
        query = query.where(Inventory.site_id == site)
    return [_summary(i) for i in session.exec(query.order_by(col(Inventory.id).desc())
                                              .limit(limit))]


@router.get("/inventories/{inventory_id}", response_model=InventoryPublic)
def get_inventory(inventory_id: InventoryId, session: SessionDep,
                  caller: AssetsReader) -> InventoryPublic:
    """One inventory with its lists: what the log's `inventory-taken` record commits to."""
    return _public(_own(session, caller, inventory_id))


@router.post("/inventories/{inventory_id}/complete", response_model=InventoryPublic)
def complete_inventory(inventory_id: InventoryId, session: SessionDep,
                       caller: CustodyWriter) -> InventoryPublic:
    """End a desk's session now: reconcile its reader's reads since it opened, and log it."""
    inventory = _own(session, caller, inventory_id)
    try:
        inventories.complete_from_desk(session, caller, inventory, utcnow())
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(409, "inventory-refused", str(exc)) from None
    return _done(session, inventory)


async def _bounded_body(request: Request) -> bytes:
    """The request body, refused past `MAX_UPLOAD_BYTES` before it is all read (422, as every
    batch that breaks its schema is: a client reads one status for a batch it must fix)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(
            declared) > inventories.MAX_UPLOAD_BYTES:
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > inventories.MAX_UPLOAD_BYTES:
            raise _too_large()
    return bytes(body)


def _too_large() -> Problem:
    return Problem(422, "upload-too-large", f"a batch is at most "
                   f"{inventories.MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")


@router.post("/inventories/{inventory_id}/upload", response_model=InventoryPublic,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": UploadBody.model_json_schema()}}}})
def upload_inventory(inventory_id: InventoryId, session: SessionDep, caller: CustodyWriter,
                     body: Annotated[bytes, Depends(_bounded_body)]) -> InventoryPublic:
    """A handheld's session, uploaded in one batch of signed reads: every read verified, the
    batch stored and reconciled whole, or refused whole (422, nothing stored)."""
    try:
        data = UploadBody.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Problem(422, "bad-upload", f"{'.'.join(map(str, first['loc']))}: "
                      f"{first['msg']}"[:300]) from None
    inventory = _own(session, caller, inventory_id)
    batch = inventories.Upload(data.started_at, data.ended_at,
                               [bytes.fromhex(item) for item in data.observations])
    try:
        inventories.upload(session, caller, inventory, batch, utcnow())
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(409, "inventory-refused", str(exc)) from None
    except inventories.UploadRefused as exc:
        session.rollback()
        raise Problem(422, "upload-refused", str(exc)) from None
    return _done(session, inventory)


@router.put("/sites/{site_id}/custodian", response_model=SitePublic)
def set_custodian(site_id: IdPath, data: CustodianChange, session: SessionDep,
                  caller: Admin) -> Site:
    """Name who answers for the site's store: logged, and a full inventory falls due."""
    site = agency_row(session, Site, caller.agency_id, site_id, "site")
    person = None if data.custodian is None else person_of(session, caller, data.custodian)
    try:
        inventories.set_custodian(session, caller, site, person, utcnow())
    except CustodyRefused as exc:
        session.rollback()
        raise Problem(409, "custodian-refused", str(exc)) from None
    session.commit()
    session.refresh(site)
    return site
