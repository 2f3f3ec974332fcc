"""Asset routes: register, update, search, one asset, where it is and who holds it, and where
readers of other agencies saw it (its owner's alone to see)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.db import utcnow
from api.deps import AssetsReader, AssetsWriter, SessionDep
from api.models.assets import (
    Asset,
    AssetClass,
    AssetCreate,
    AssetPublic,
    AssetStatus,
    AssetUpdate,
    HolderKind,
)
from api.models.ingest import ForeignSighting
from api.models.registry import Agency, Site
from api.problems import Problem
from api.registry import RegistryError, create_asset, update_asset
from api.routes.paging import After, IdPath, Limit, Page, page_of
from api.scoping import asset_visible, owned_asset, visible_asset

router = APIRouter(prefix="/v1/assets", tags=["assets"])

RefQuery = Annotated[str | None, Query(max_length=128)]
StatusQuery = Annotated[AssetStatus | None, Query(alias="status")]


class ForeignSightingPublic(BaseModel):
    """A reader of another agency read the asset's tag: where, when, how often, and which
    agency reported it. Such reads moved nothing: they are not the asset's last sighting."""

    reporting_agency_id: str
    reader_id: str
    site_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    count: int


class AssetLocation(BaseModel):
    """Where an asset was last seen and who is responsible for it, in one answer."""

    asset_id: str
    status: AssetStatus
    holder_kind: HolderKind
    holder_ref: str
    due_at: datetime | None
    last_seen_at: datetime | None
    last_seen_reader_id: str | None
    last_seen_site_id: str | None


def _check_refs(session: Session, agency_id: str, class_id: str | None, site_id: str | None,
                shared_with: list[str] | None) -> None:
    if class_id is not None:
        asset_class = session.get(AssetClass, class_id)
        if asset_class is None or asset_class.agency_id != agency_id:
            raise Problem(422, "unknown-class", "asset class is not one of your agency's")
    if site_id is not None:
        site = session.get(Site, site_id)
        if site is None or site.agency_id != agency_id:
            raise Problem(422, "unknown-site", "site is not one of your agency's sites")
    for other in shared_with or []:
        if session.get(Agency, other) is None:
            raise Problem(422, "unknown-agency", "shared_with names an unknown agency")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AssetPublic)
def register(data: AssetCreate, session: SessionDep, caller: AssetsWriter) -> Asset:
    """Register an asset in its home store (its first custody event)."""
    _check_refs(session, caller.agency_id, data.class_id, data.home_site_id, data.shared_with)
    try:
        asset = create_asset(session, agency_id=caller.agency_id, data=data, now=utcnow())
        session.commit()
    except (RegistryError, IntegrityError):
        session.rollback()
        raise Problem(409, "conflict", "asset id or EPC already registered") from None
    return asset


@router.get("", response_model=Page[AssetPublic])
def search(
    session: SessionDep, caller: AssetsReader, limit: Limit = 50, after: After = None,
    class_id: RefQuery = None, status_: StatusQuery = None, site: RefQuery = None,
    holder: RefQuery = None,
) -> Page[Asset]:
    """Assets the caller may see, filtered by class, status, site and holder."""
    query = select(Asset).where(asset_visible(caller))
    if class_id:
        query = query.where(Asset.class_id == class_id)
    if status_:
        query = query.where(Asset.status == status_.value)
    if site:
        query = query.where(
            or_(col(Asset.holder_ref) == site, col(Asset.last_seen_site_id) == site)
        )
    if holder:
        query = query.where(Asset.holder_ref == holder)
    if after:
        query = query.where(col(Asset.id) > after)
    rows = list(session.exec(query.order_by(col(Asset.id)).limit(limit + 1)))
    return page_of(rows, limit, "id")


@router.get("/{asset_id}", response_model=AssetPublic)
def read(asset_id: IdPath, session: SessionDep, caller: AssetsReader) -> Asset:
    """One asset the caller may see."""
    return visible_asset(session, caller, asset_id)


@router.patch("/{asset_id}", response_model=AssetPublic)
def update(asset_id: IdPath, data: AssetUpdate, session: SessionDep, caller: AssetsWriter) -> Asset:
    """Change an asset's URI, home store or sharing (custody changes go through readers)."""
    asset = owned_asset(session, caller, asset_id)
    if asset.status == AssetStatus.RETIRED:  # its log chain ended with its retirement
        raise Problem(409, "asset-retired", "asset is retired: it can no longer be changed")
    _check_refs(session, caller.agency_id, None, data.home_site_id, data.shared_with)
    try:
        update_asset(session, asset=asset, data=data, now=utcnow())
    except RegistryError as exc:
        raise Problem(422, "epc-uri-mismatch", str(exc)) from None
    session.commit()
    session.refresh(asset)
    return asset


@router.get("/{asset_id}/location", response_model=AssetLocation)
def location(asset_id: IdPath, session: SessionDep, caller: AssetsReader) -> AssetLocation:
    """Last seen (reader, site, time) and who is responsible, in one call."""
    asset = visible_asset(session, caller, asset_id)
    return AssetLocation(
        asset_id=asset.id, status=AssetStatus(asset.status),
        holder_kind=HolderKind(asset.holder_kind), holder_ref=asset.holder_ref,
        due_at=asset.due_at, last_seen_at=asset.last_seen_at,
        last_seen_reader_id=asset.last_seen_reader_id, last_seen_site_id=asset.last_seen_site_id,
    )


@router.get("/{asset_id}/foreign-sightings", response_model=list[ForeignSightingPublic])
def foreign_sightings(
    asset_id: IdPath, session: SessionDep, caller: AssetsReader, limit: Limit = 50,
) -> list[ForeignSighting]:
    """Where readers of agencies that may not see the asset read it, latest first: the owner's
    only (an agency it is shared with is not told what a third one reported)."""
    asset = owned_asset(session, caller, asset_id)
    return list(session.exec(
        select(ForeignSighting).where(ForeignSighting.asset_id == asset.id)
        .order_by(col(ForeignSighting.last_seen_at).desc(), col(ForeignSighting.id))
        .limit(limit)))
