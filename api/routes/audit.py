"""Audit routes (scope `audit:read`): custody history with inclusion proofs and the anchored
checkpoint, the agency log's head, signed checkpoints, consistency proofs, audit bundles.

Every agency has its own log; a caller sees its own agency's log, and an asset's history is
proven in the log of the agency that owns it (visible to the agencies it is shared with).
Proofs are built from the stored nodes by `ledger.merkle_log.MerkleLog` (plan, fetch, compute). An
auditor checks them with `kitledger proof`, or a whole bundle with `kitledger verify`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel
from sqlmodel import Session, col, select

from api.auth import Caller
from api.bundle_requests import (
    MAX_ASSET_PARAM_CHARS,
    BadBundleScope,
    ExportedBundle,
    NoVisibleAssets,
    export_requested_bundle,
)
from api.bundles import MAX_BUNDLE_ASSETS, BundleUnavailable
from api.checkpoints import latest_checkpoint
from api.custody.corrections import corrections_of
from api.db import utcnow
from api.deps import Auditor, SessionDep
from api.logstore import open_log
from api.models.custody import CustodyEventRow, LogCheckpoint
from api.models.evidence import MAX_REFERENCE_CHARS
from api.problems import Problem, not_found
from api.routes.paging import IdPath, Limit, OwnerQuery
from api.scoping import visible_asset
from ledger.core.merkle import ProofInputError

router = APIRouter(prefix="/v1", tags=["audit"])

BUNDLE_MEDIA_TYPE: Final = "application/x-ndjson"
Size = Annotated[int, Query(ge=0, le=2**53 - 1)]


class TreeHead(BaseModel):
    size: int
    root: str


class AnchorInfo(BaseModel):
    chain_id: int | None
    contract: str | None
    tx_hash: str
    block_number: int | None
    block_hash: str | None
    anchorer: str | None


class SignedCheckpoint(BaseModel):
    log_id: str
    tree_size: int
    root: str
    envelope: dict[str, Any]
    anchor: AnchorInfo | None = None


class EventCorrection(BaseModel):
    leaf_index: int
    reason: str
    time: str


class EventWithProof(BaseModel):
    seq: int
    action: str
    leaf_index: int
    event_hash: str
    record: dict[str, Any]
    inclusion_proof: list[str]
    checkpoint_proof: list[str] | None = None
    manual: str | None = None
    """Why an officer entered it by hand at the desk `record.reader`, if they did."""
    corrected_by: list[EventCorrection] = []
    """The corrections declaring this event wrong (the event itself is never changed)."""
    receipt: str = ""
    """Where its printable receipt is (`api.routes.receipts`; `.pdf` appended for the PDF)."""


class CustodyHistory(BaseModel):
    asset_id: str
    tree: TreeHead
    checkpoint: SignedCheckpoint | None = None
    events: list[EventWithProof]
    next_after: int | None = None


class ConsistencyProof(BaseModel):
    first: TreeHead
    second: TreeHead
    proof: list[str]


def _signed(row: LogCheckpoint) -> SignedCheckpoint:
    anchor = None
    if row.tx_hash is not None:
        anchor = AnchorInfo(
            chain_id=row.chain_id, contract=row.contract, tx_hash=row.tx_hash.hex(),
            block_number=row.block_number,
            block_hash=None if row.block_hash is None else row.block_hash.hex(),
            anchorer=row.anchorer)
    return SignedCheckpoint(log_id=row.log_id, tree_size=row.tree_size, root=row.root.hex(),
                            envelope=json.loads(row.envelope), anchor=anchor)


@router.get("/assets/{asset_id}/history", response_model=CustodyHistory)
def history(
    asset_id: IdPath, session: SessionDep, caller: Auditor, limit: Limit = 50,
    after: Annotated[int | None, Query(ge=-1, le=2**53 - 1)] = None, owner: OwnerQuery = None,
) -> CustodyHistory:
    """An asset's custody events, oldest first, each proven against its log's current head
    and, when covered, against the latest anchored checkpoint; with its corrections."""
    asset = visible_asset(session, caller, asset_id, owner)
    query = select(CustodyEventRow).where(CustodyEventRow.agency_id == asset.agency_id,
                                          CustodyEventRow.asset_id == asset.id)
    if after is not None:
        query = query.where(CustodyEventRow.seq > after)
    rows = list(session.exec(query.order_by(col(CustodyEventRow.seq)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    log = open_log(session, asset.agency_id)
    size, root = log.size, log.root()
    anchored = latest_checkpoint(session, asset.agency_id, anchored=True)
    corrected: dict[int, list[EventCorrection]] = {}
    for correction, at in corrections_of(session, asset):
        corrected.setdefault(correction.get("leaf"), []).append(EventCorrection(
            leaf_index=at, reason=correction.get("reason"), time=correction.time))
    events = [
        EventWithProof(
            seq=row.seq, action=row.action, leaf_index=row.leaf_index,
            event_hash=row.event_hash.hex(), record=json.loads(row.record),
            inclusion_proof=[h.hex() for h in log.inclusion_proof(row.leaf_index, size)],
            checkpoint_proof=None if anchored is None or row.leaf_index >= anchored.tree_size
            else [h.hex() for h in log.inclusion_proof(row.leaf_index, anchored.tree_size)],
            manual=json.loads(row.record).get("manual"),
            corrected_by=corrected.get(row.leaf_index, []),
            receipt=f"/v1/custody-events/{row.event_hash.hex()}/receipt",
        )
        for row in rows
    ]
    return CustodyHistory(
        asset_id=asset.id, tree=TreeHead(size=size, root=root.hex()),
        checkpoint=None if anchored is None else _signed(anchored), events=events,
        next_after=rows[-1].seq if more else None,
    )


@router.get("/log/head", response_model=TreeHead)
def head(session: SessionDep, caller: Auditor) -> TreeHead:
    """The caller agency's log: current size and root."""
    log = open_log(session, caller.agency_id)
    return TreeHead(size=log.size, root=log.root().hex())


@router.get("/log/consistency", response_model=ConsistencyProof)
def consistency(
    session: SessionDep, caller: Auditor, first: Size, second: Size | None = None,
) -> ConsistencyProof:
    """Proof that the caller agency's log at `second` leaves (default: now) extends the log at
    `first` (e.g. between two checkpoints)."""
    log = open_log(session, caller.agency_id)
    try:
        proof = log.consistency_proof(first, second)
        second_size = log.size if second is None else second
        return ConsistencyProof(
            first=TreeHead(size=first, root=log.root(first).hex()),
            second=TreeHead(size=second_size, root=log.root(second_size).hex()),
            proof=[h.hex() for h in proof],
        )
    except ProofInputError as exc:
        raise Problem(422, "bad-tree-size", str(exc)) from None


@router.get("/checkpoints", response_model=SignedCheckpoint)
def checkpoint(session: SessionDep, caller: Auditor, size: Size | None = None
               ) -> SignedCheckpoint:
    """The caller agency log's latest signed checkpoint, or the one at `size` leaves, with
    where it was anchored."""
    if size is None:
        row = latest_checkpoint(session, caller.agency_id)
    else:
        row = session.exec(select(LogCheckpoint).where(
            LogCheckpoint.agency_id == caller.agency_id, LogCheckpoint.tree_size == size,
        )).first()
    if row is None:
        raise not_found("checkpoint")
    return _signed(row)


@router.get("/audit/bundles", response_class=Response,
            responses={200: {"content": {BUNDLE_MEDIA_TYPE: {}}}})
def bundle(
    session: SessionDep, caller: Auditor,
    asset: Annotated[list[str] | None, Query(max_length=MAX_BUNDLE_ASSETS)] = None,
    site: Annotated[str | None, Query(max_length=MAX_ASSET_PARAM_CHARS)] = None,
    start: Annotated[str | None, Query(max_length=40)] = None,
    end: Annotated[str | None, Query(max_length=40)] = None,
    since_size: Annotated[int | None, Query(ge=1, le=2**53 - 1)] = None,
    case: Annotated[str | None, Query(max_length=MAX_REFERENCE_CHARS)] = None,
    owner: OwnerQuery = None,
) -> Response:
    """An audit bundle (docs/audit-bundle.md) for assets, a site, a case (every exhibit the
    log's latest references put in it) or a time range; with `since_size`, its checkpoints
    start at the one of that size (an auditor's last verified). Assets another agency shared
    are named with `owner` where an id of the caller's own is the same."""
    exported = requested_bundle(session, caller, assets=asset, site=site, start=start,
                                end=end, since_size=since_size, case=case, owner=owner)
    return Response(exported.body, media_type=BUNDLE_MEDIA_TYPE)


def requested_bundle(session: Session, caller: Caller, *, assets: list[str] | None = None,
                     site: str | None = None, start: str | None = None, end: str | None = None,
                     case: str | None = None, since_size: int | None = None,
                     owner: str | None = None) -> ExportedBundle:
    """The bundle `caller` asks for (`export_requested_bundle`), its errors as problems: an
    asset, site or case with nothing to show is 404, a bad question 422, no checkpoint 409.
    The audit pages ask through here too."""
    try:
        return export_requested_bundle(session, caller, assets=assets, site=site, start=start,
                                       end=end, now=utcnow(), since_size=since_size, case=case,
                                       owner=owner)
    except NoVisibleAssets:
        raise not_found("asset") from None
    except BadBundleScope as exc:
        raise Problem(422, exc.slug, str(exc)) from None
    except BundleUnavailable as exc:
        raise Problem(409, "not-checkpointed", str(exc)) from None

