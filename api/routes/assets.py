"""Asset routes: register, update, search, one asset, where it is and who holds it, and where
readers of other agencies saw it (its owner's alone to see)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel
from sqlalchemy import and_, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.auth import Caller
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
from api.models.registry import Agency, Reader, Site
from api.problems import Problem, not_found
from api.registry import RegistryError, create_asset, update_asset
from api.routes.paging import After, AfterOwner, IdPath, Limit, OwnerQuery, Page, page_of
from api.scoping import asset_visible, own_row, owned_asset, visible_asset

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
    if class_id is not None and own_row(session, AssetClass, agency_id, class_id) is None:
        raise Problem(422, "unknown-class", "asset class is not one of your agency's")
    if site_id is not None and own_row(session, Site, agency_id, site_id) is None:
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
    after_owner: AfterOwner = None, class_id: RefQuery = None, status_: StatusQuery = None,
    site: RefQuery = None, holder: RefQuery = None,
) -> Page[Asset]:
    """Assets the caller may see, filtered by class, status, site and holder; in id order, then
    owner (an asset shared with the caller may have the id of one of its own)."""
    query = select(Asset).where(asset_visible(caller))
    if class_id:
        query = query.where(Asset.agency_id == caller.agency_id, Asset.class_id == class_id)
    if status_:
        query = query.where(Asset.status == status_.value)
    if site:
        query = query.where(or_(
            and_(col(Asset.holder_ref) == site, col(Asset.holder_agency_id) == caller.agency_id),
            and_(col(Asset.last_seen_site_id) == site, seen_by_own_reader(caller)),
        ))
    if holder:
        query = query.where(Asset.holder_ref == holder, or_(
            col(Asset.holder_kind) == HolderKind.AGENCY.value,
            col(Asset.holder_agency_id) == caller.agency_id))
    if after:
        later = col(Asset.id) > after
        query = query.where(or_(later, and_(col(Asset.id) == after,
                                            col(Asset.agency_id) > after_owner))
                            if after_owner else later)
    rows = list(session.exec(
        query.order_by(col(Asset.id), col(Asset.agency_id)).limit(limit + 1)))
    return page_of(rows, limit, "id", "agency_id")


def seen_by_own_reader(caller: Caller) -> Any:
    """A WHERE clause: the asset was last seen by one of the caller agency's readers (the site
    it was seen at is that agency's)."""
    return col(Asset.last_seen_reader_id).in_(
        select(Reader.id).where(Reader.agency_id == caller.agency_id))


def owner_read(session: Session, caller: Caller, asset_id: str, owner: str | None) -> Asset:
    """The asset for a read its owner alone may make: the caller agency's own; `owner`, if
    given, names the caller's agency (another is not found, as an asset it does not own)."""
    if owner not in (None, caller.agency_id):
        raise not_found("asset")
    return owned_asset(session, caller, asset_id)


@router.get("/{asset_id}", response_model=AssetPublic)
def read(asset_id: IdPath, session: SessionDep, caller: AssetsReader,
         owner: OwnerQuery = None) -> Asset:
    """One asset the caller may see."""
    return visible_asset(session, caller, asset_id, owner)


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
def location(asset_id: IdPath, session: SessionDep, caller: AssetsReader,
             owner: OwnerQuery = None) -> AssetLocation:
    """Last seen (reader, site, time) and who is responsible, in one call."""
    asset = visible_asset(session, caller, asset_id, owner)
    return AssetLocation(
        asset_id=asset.id, status=AssetStatus(asset.status),
        holder_kind=HolderKind(asset.holder_kind), holder_ref=asset.holder_ref,
        due_at=asset.due_at, last_seen_at=asset.last_seen_at,
        last_seen_reader_id=asset.last_seen_reader_id, last_seen_site_id=asset.last_seen_site_id,
    )


@router.get("/{asset_id}/foreign-sightings", response_model=list[ForeignSightingPublic])
def foreign_sightings(
    asset_id: IdPath, session: SessionDep, caller: AssetsReader, limit: Limit = 50,
    owner: OwnerQuery = None,
) -> list[ForeignSighting]:
    """Where readers of agencies that may not see the asset read it, latest first: the owner's
    only (an agency it is shared with is not told what a third one reported)."""
    asset = owner_read(session, caller, asset_id, owner)
    return list(session.exec(
        select(ForeignSighting).where(ForeignSighting.owner_id == asset.agency_id,
                                      ForeignSighting.asset_id == asset.id)
        .order_by(col(ForeignSighting.last_seen_at).desc(), col(ForeignSighting.id))
        .limit(limit)))
