"""Evidence routes: case and exhibit references (scope `assets:write`, searched with
`assets:read`), disposal with its reason and recipient (scope `custody:write`), and the
evidence room's access log (scope `audit:read`).

References and disposals are logged as registry records of the asset (`api.custody.evidence`);
a refused change answers 409 with the reason and is recorded as a refusal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, ConfigDict, StringConstraints
from sqlmodel import col, select

from api.custody import evidence
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import AssetsReader, AssetsWriter, Auditor, CustodyWriter, SessionDep
from api.models.evidence import (
    MAX_RECIPIENT_CHARS,
    MAX_REFERENCE_CHARS,
    EvidenceDisposal,
    EvidenceReference,
    EvidenceRoomAccess,
)
from api.problems import not_found
from api.routes.assets import owner_read
from api.routes.custody import refused
from api.routes.paging import IdPath, Limit, OwnerQuery
from api.scoping import owned_asset

router = APIRouter(prefix="/v1", tags=["evidence"])

Reference = Annotated[str, StringConstraints(min_length=1, max_length=MAX_REFERENCE_CHARS,
                                             pattern=r"^[!-~]([ -~]*[!-~])?$")]
"""A case or exhibit reference: printable ASCII, no leading or trailing space (it goes into
the log, where a reason's rules apply)."""
RecipientName = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RECIPIENT_CHARS,
                                                 pattern=r"^[^\x00-\x1f\x7f]+$",
                                                 strip_whitespace=True)]
"""Whom the item went to, as on the form: any printable text (names are not ASCII)."""


class EvidenceReferenceSet(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case_ref: Reference
    exhibit_ref: Reference


class EvidenceReferencePublic(BaseModel):
    asset_id: str
    case_ref: str
    exhibit_ref: str
    leaf_index: int
    updated_at: datetime


class RoomAccessPublic(BaseModel):
    id: int
    reader_id: str
    site_id: str
    person_id: str | None
    admitted: bool
    reason: str
    observation_hash: str
    read_at: datetime

    @classmethod
    def of(cls, row: EvidenceRoomAccess) -> RoomAccessPublic:
        return cls(id=row.id or 0, reader_id=row.reader_id, site_id=row.site_id,
                   person_id=row.person_id, admitted=row.admitted, reason=row.reason,
                   observation_hash=row.observation_hash.hex(), read_at=row.read_at)


class DisposalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disposition: Literal["returned_to_owner", "destroyed", "released"]
    recipient: RecipientName | None = None


class DisposalPublic(BaseModel):
    asset_id: str
    disposition: str
    recipient_name: str | None
    """The agency's own record; the log holds only `recipient_commitment`."""
    recipient_commitment: str | None
    event_leaf: int
    leaf_index: int
    created_at: datetime


@router.put("/assets/{asset_id}/evidence", response_model=EvidenceReferencePublic)
def set_references(asset_id: IdPath, data: EvidenceReferenceSet, session: SessionDep,
                   caller: AssetsWriter) -> EvidenceReference:
    """Give an exhibit its case and exhibit references (logged)."""
    asset = owned_asset(session, caller, asset_id)
    try:
        row = evidence.set_references(session, asset=asset, case_ref=data.case_ref,
                                      exhibit_ref=data.exhibit_ref, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "evidence-referenced", exc) from None
    session.commit()
    session.refresh(row)
    return row


@router.get("/evidence", response_model=list[EvidenceReferencePublic])
def search(session: SessionDep, caller: AssetsReader,
           case: Annotated[str, Query(min_length=1, max_length=MAX_REFERENCE_CHARS)],
           limit: Limit = 50) -> list[EvidenceReference]:
    """The agency's exhibits of one case, by exhibit reference."""
    return list(session.exec(select(EvidenceReference).where(
        EvidenceReference.agency_id == caller.agency_id, EvidenceReference.case_ref == case,
    ).order_by(col(EvidenceReference.exhibit_ref)).limit(limit)))


@router.post("/assets/{asset_id}/disposals", status_code=status.HTTP_201_CREATED,
             response_model=DisposalPublic)
def dispose(asset_id: IdPath, data: DisposalCreate, session: SessionDep,
            caller: CustodyWriter) -> EvidenceDisposal:
    """Dispose of an item in store: returned to its owner, destroyed or released, to whom."""
    asset = owned_asset(session, caller, asset_id)
    try:
        row = evidence.dispose_evidence(session, asset=asset, disposition=data.disposition,
                                        recipient=data.recipient, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "dispose", exc) from None
    session.commit()
    session.refresh(row)
    return row


@router.get("/assets/{asset_id}/disposal", response_model=DisposalPublic)
def disposal(asset_id: IdPath, session: SessionDep, caller: Auditor,
             owner: OwnerQuery = None) -> EvidenceDisposal:
    """How and to whom the agency's item was disposed of."""
    asset = owner_read(session, caller, asset_id, owner)
    row = session.get(EvidenceDisposal, {"agency_id": asset.agency_id, "asset_id": asset.id})
    if row is None:
        raise not_found("disposal")
    return row


@router.get("/evidence-room/access", response_model=list[RoomAccessPublic])
def room_access(session: SessionDep, caller: Auditor,
                site: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
                person: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
                limit: Limit = 50) -> list[RoomAccessPublic]:
    """The agency's evidence room access log (badges at its doors), newest first."""
    query = select(EvidenceRoomAccess).where(EvidenceRoomAccess.agency_id == caller.agency_id)
    if site is not None:
        query = query.where(EvidenceRoomAccess.site_id == site)
    if person is not None:
        query = query.where(EvidenceRoomAccess.person_id == person)
    rows = session.exec(query.order_by(col(EvidenceRoomAccess.read_at).desc(),
                                       col(EvidenceRoomAccess.id).desc()).limit(limit))
    return [RoomAccessPublic.of(row) for row in rows]
