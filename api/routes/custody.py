"""Custody routes (scope `custody:write`): transfers, loans, acceptance and disposal.

A refused change answers 409 with the reason as a problem detail, and is recorded as a refusal.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, status
from pydantic import BaseModel, BeforeValidator, Field
from sqlmodel import Session

from api.auth import Caller
from api.custody import transfers
from api.custody.transfers import CustodyRefused
from api.db import utcnow
from api.deps import CustodyWriter, SessionDep
from api.models.assets import Asset, AssetPublic
from api.models.custody import Refusal, Transfer
from api.models.people import Person
from api.models.registry import MAX_ID_CHARS
from api.models.wire import number_not_text
from api.problems import Problem, not_found
from api.routes.paging import IdPath
from api.scoping import own_row, owned_asset

router = APIRouter(prefix="/v1", tags=["custody"])

TransferId = Annotated[int, Path(ge=1, le=2**63 - 1)]
"""A transfer's row id: a 64-bit key, so larger numbers are refused (422) before any query
(SQLite cannot even bind them)."""

LoanLength = Annotated[int, Field(ge=1, le=365), BeforeValidator(number_not_text)]
"""A loan's length in days: a JSON integer, never `true` or `"7"`."""
RefBody = Annotated[str, Body(embed=True, min_length=1, max_length=MAX_ID_CHARS)]


class TransferPublic(BaseModel):
    id: int
    asset_id: str
    action: str
    from_kind: str
    from_ref: str
    to_kind: str
    to_ref: str
    loan_days: int | None
    status: str
    offered_at: datetime
    decided_at: datetime | None


def refused(session: Session, caller: Caller, asset_id: str, action: str,
             exc: CustodyRefused) -> Problem:
    session.rollback()
    session.add(Refusal(agency_id=caller.agency_id, asset_id=asset_id, action=action,
                        reason=str(exc), created_at=utcnow()))
    session.commit()
    return Problem(409, "custody-refused", str(exc))


def _transfer(session: Session, caller: Caller, transfer_id: int, *, receiving: bool) -> Transfer:
    transfer = session.get(Transfer, transfer_id)
    if transfer is None:
        raise not_found("transfer")
    party = transfers.accepting_agency(transfer) if receiving else transfer.agency_id
    if party != caller.agency_id:
        raise not_found("transfer")
    return transfer


@router.post("/assets/{asset_id}/transfers", status_code=status.HTTP_201_CREATED,
             response_model=TransferPublic)
def offer_transfer(asset_id: IdPath, to_person: RefBody, session: SessionDep,
                   caller: CustodyWriter) -> Transfer:
    """Offer a checked-out asset to another person of the agency."""
    asset = owned_asset(session, caller, asset_id)
    person = own_row(session, Person, caller.agency_id, to_person)
    if person is None:
        raise Problem(422, "unknown-person", "recipient is not one of your agency's people")
    try:
        transfer = transfers.offer_transfer(session, asset=asset, to_person=person, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "transfer", exc) from None
    session.commit()
    return transfer


@router.post("/assets/{asset_id}/loans", status_code=status.HTTP_201_CREATED,
             response_model=TransferPublic)
def offer_loan(asset_id: IdPath, to_agency: RefBody, session: SessionDep, caller: CustodyWriter,
               days: Annotated[LoanLength, Body()] = 7) -> Transfer:
    """Offer an asset in store on loan to another agency, which must accept it."""
    asset = owned_asset(session, caller, asset_id)
    try:
        transfer = transfers.offer_loan(session, asset=asset, to_agency=to_agency, days=days,
                                        now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "loan_out", exc) from None
    session.commit()
    return transfer


@router.post("/transfers/{transfer_id}/accept", response_model=AssetPublic)
def accept(transfer_id: TransferId, session: SessionDep, caller: CustodyWriter) -> Asset:
    """Accept an offer (the receiving agency for a loan); re-checked before custody moves."""
    transfer = _transfer(session, caller, transfer_id, receiving=True)
    try:
        asset = transfers.accept(session, transfer=transfer, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, transfer.asset_id, transfer.action, exc) from None
    session.commit()
    session.refresh(asset)
    return asset


@router.post("/transfers/{transfer_id}/reject", response_model=TransferPublic)
def reject(transfer_id: TransferId, session: SessionDep, caller: CustodyWriter) -> Transfer:
    """Turn an offer down."""
    transfer = _transfer(session, caller, transfer_id, receiving=True)
    return _close(session, caller, transfer, transfers.REJECTED)


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferPublic)
def cancel(transfer_id: TransferId, session: SessionDep, caller: CustodyWriter) -> Transfer:
    """Withdraw an offer the caller's agency made."""
    transfer = _transfer(session, caller, transfer_id, receiving=False)
    return _close(session, caller, transfer, transfers.CANCELLED)


def _close(session: Session, caller: Caller, transfer: Transfer, state: str) -> Transfer:
    try:
        transfers.close(session, transfer=transfer, status=state, now=utcnow())
    except CustodyRefused as exc:
        raise Problem(409, "custody-refused", str(exc)) from None
    session.commit()
    return transfer


@router.post("/assets/{asset_id}/dispose", response_model=AssetPublic)
def dispose(asset_id: IdPath, session: SessionDep, caller: CustodyWriter) -> Asset:
    """Dispose of an asset in store; final."""
    asset = owned_asset(session, caller, asset_id)
    try:
        transfers.dispose(session, asset=asset, now=utcnow())
    except CustodyRefused as exc:
        raise refused(session, caller, asset_id, "dispose", exc) from None
    session.commit()
    session.refresh(asset)
    return asset
