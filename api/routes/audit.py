"""Audit routes (scope `audit:read`): custody history with inclusion proofs, the log's head,
and consistency proofs between two sizes.

Proofs are built from the stored nodes by `ledger.log.MerkleLog` (plan, fetch, compute). An
auditor checks them with `kitledger proof` or any RFC 9162 verifier, against a root they
trust (one anchored on chain).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, select

from api.deps import Auditor, SessionDep
from api.logstore import open_log
from api.models.custody import CustodyEventRow
from api.problems import Problem
from api.routes.paging import Limit
from api.scoping import visible_asset
from ledger.core.merkle import ProofInputError

router = APIRouter(prefix="/v1", tags=["audit"])


class TreeHead(BaseModel):
    size: int
    root: str


class EventWithProof(BaseModel):
    seq: int
    action: str
    leaf_index: int
    event_hash: str
    record: dict[str, Any]
    inclusion_proof: list[str]


class CustodyHistory(BaseModel):
    asset_id: str
    tree: TreeHead
    events: list[EventWithProof]
    next_after: int | None = None


class ConsistencyProof(BaseModel):
    first: TreeHead
    second: TreeHead
    proof: list[str]


@router.get("/assets/{asset_id}/history", response_model=CustodyHistory)
def history(
    asset_id: str, session: SessionDep, caller: Auditor, limit: Limit = 50,
    after: Annotated[int | None, Query(ge=-1)] = None,
) -> CustodyHistory:
    """An asset's custody events, oldest first, each with its proof against the current head."""
    asset = visible_asset(session, caller, asset_id)
    query = select(CustodyEventRow).where(CustodyEventRow.asset_id == asset.id)
    if after is not None:
        query = query.where(CustodyEventRow.seq > after)
    rows = list(session.exec(query.order_by(col(CustodyEventRow.seq)).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    log = open_log(session)
    size, root = log.size, log.root()
    events = [
        EventWithProof(
            seq=row.seq, action=row.action, leaf_index=row.leaf_index,
            event_hash=row.event_hash.hex(), record=json.loads(row.record),
            inclusion_proof=[h.hex() for h in log.inclusion_proof(row.leaf_index, size)],
        )
        for row in rows
    ]
    return CustodyHistory(
        asset_id=asset.id, tree=TreeHead(size=size, root=root.hex()), events=events,
        next_after=rows[-1].seq if more else None,
    )


@router.get("/log/head", response_model=TreeHead)
def head(session: SessionDep, caller: Auditor) -> TreeHead:
    """The log's current size and root."""
    log = open_log(session)
    return TreeHead(size=log.size, root=log.root().hex())


@router.get("/log/consistency", response_model=ConsistencyProof)
def consistency(
    session: SessionDep, caller: Auditor, first: Annotated[int, Query(ge=0)],
    second: Annotated[int | None, Query(ge=0)] = None,
) -> ConsistencyProof:
    """Proof that the log at `second` leaves (default: now) extends the log at `first`."""
    log = open_log(session)
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
