"""Operational routes: alerts and stocktake for the caller's agency."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, select

from api.db import utcnow
from api.deps import AssetsReader, SessionDep
from api.models.assets import Asset, AssetStatus, HolderKind
from api.models.custody import Alert
from api.models.ingest import ForeignSighting, Sighting
from api.models.registry import Site
from api.problems import not_found
from api.routes.paging import IdPath, Limit
from api.scoping import asset_visible

router = APIRouter(prefix="/v1", tags=["operations"])

MAX_STOCKTAKE_ASSETS = 10_000
"""Assets compared in one stocktake answer: a large store; bigger sites page by class."""


class AlertPublic(BaseModel):
    id: int
    kind: str
    asset_id: str | None
    reader_id: str | None
    site_id: str | None
    detail: str
    created_at: datetime
    resolved_at: datetime | None


class Stocktake(BaseModel):
    site_id: str
    since: datetime
    expected: list[str]
    found: list[str]
    missing: list[str]
    unexpected: list[str]
    unknown_epcs: list[str]


@router.get("/alerts", response_model=list[AlertPublic])
def alerts(
    session: SessionDep, caller: AssetsReader, limit: Limit = 50,
    kind: Annotated[str | None, Query(max_length=32)] = None, open_only: bool = True,
    before_id: Annotated[int | None, Query(ge=1)] = None,
) -> list[Alert]:
    """The caller agency's alerts, newest first."""
    query = select(Alert).where(Alert.agency_id == caller.agency_id)
    if kind:
        query = query.where(Alert.kind == kind)
    if open_only:
        query = query.where(col(Alert.resolved_at).is_(None))
    if before_id:
        query = query.where(col(Alert.id) < before_id)
    return list(session.exec(query.order_by(col(Alert.id).desc()).limit(limit)))


@router.get("/sites/{site_id}/stocktake", response_model=Stocktake)
def stocktake(
    site_id: IdPath, session: SessionDep, caller: AssetsReader,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
) -> Stocktake:
    """Expected (in store here) against found (read here recently), and tags read here that
    are not the caller's: unknown ones, and other agencies' kit not shared with it, which is
    listed as any stray tag is (the reader read its EPC; nothing else of it is told)."""
    site = session.get(Site, site_id)
    if site is None or site.agency_id != caller.agency_id:
        raise not_found("site")
    since = utcnow() - timedelta(hours=hours)
    expected = set(session.exec(
        select(Asset.id).where(
            asset_visible(caller), Asset.status == AssetStatus.IN_STORE.value,
            Asset.holder_kind == HolderKind.LOCATION.value, Asset.holder_ref == site_id,
        ).limit(MAX_STOCKTAKE_ASSETS)
    ))
    found = set(session.exec(
        select(Asset.id).where(
            asset_visible(caller), Asset.last_seen_site_id == site_id,
            col(Asset.last_seen_at) >= since,
        ).limit(MAX_STOCKTAKE_ASSETS)
    ))
    unknown = session.exec(
        select(Sighting.epc_hex).where(
            Sighting.site_id == site_id, col(Sighting.last_seen_at) >= since
        ).limit(MAX_STOCKTAKE_ASSETS)
    )
    foreign = session.exec(
        select(Asset.epc_hex).join(ForeignSighting, col(ForeignSighting.asset_id) == Asset.id)
        .where(ForeignSighting.site_id == site_id,
               ForeignSighting.reporting_agency_id == caller.agency_id,
               col(ForeignSighting.last_seen_at) >= since).limit(MAX_STOCKTAKE_ASSETS)
    )
    return Stocktake(
        site_id=site_id, since=since, expected=sorted(expected), found=sorted(found),
        missing=sorted(expected - found), unexpected=sorted(found - expected),
        unknown_epcs=sorted({*unknown, *foreign}),
    )
