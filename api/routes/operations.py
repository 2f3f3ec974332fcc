"""Operational routes: alerts and stocktake for the caller's agency."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy import and_
from sqlmodel import col, select

from api.alert_actions import (
    AcknowledgeAlert,
    AlertActionKind,
    AlertActionPublic,
    ResolveAlert,
    act_on_alert,
    actions_of,
    agency_alert,
    client_actor,
)
from api.custody.stocktake import MAX_STOCKTAKE_ASSETS, expected_at, reconcile
from api.db import utcnow
from api.deps import AssetsReader, CustodyWriter, SessionDep
from api.models.assets import Asset
from api.models.custody import Alert, AlertAction
from api.models.ingest import ForeignSighting, Sighting
from api.models.registry import Site
from api.routes.assets import seen_by_own_reader
from api.routes.paging import IdPath, Limit
from api.scoping import agency_row, asset_visible

router = APIRouter(prefix="/v1", tags=["operations"])

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


AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/alerts/{alert_id}/actions", response_model=list[AlertActionPublic])
def alert_actions(alert_id: AlertId, session: SessionDep,
                  caller: AssetsReader) -> list[AlertAction]:
    """Who acknowledged and resolved the alert, when, with their notes."""
    agency_alert(session, caller.agency_id, alert_id)
    return actions_of(session, [alert_id])


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertActionPublic,
             status_code=201)
def acknowledge_alert(alert_id: AlertId, body: AcknowledgeAlert, session: SessionDep,
                      caller: CustodyWriter) -> AlertAction:
    """Say the alert has been seen and someone is on it (once; 409 after)."""
    alert = agency_alert(session, caller.agency_id, alert_id)
    return act_on_alert(session, alert=alert, action=AlertActionKind.ACKNOWLEDGE,
                        note=body.note, actor=client_actor(session, caller.client_id),
                        now=utcnow())


@router.post("/alerts/{alert_id}/resolve", response_model=AlertActionPublic, status_code=201)
def resolve_alert(alert_id: AlertId, body: ResolveAlert, session: SessionDep,
                  caller: CustodyWriter) -> AlertAction:
    """Close the alert with a note of what was found (once; 409 after)."""
    alert = agency_alert(session, caller.agency_id, alert_id)
    return act_on_alert(session, alert=alert, action=AlertActionKind.RESOLVE, note=body.note,
                        actor=client_actor(session, caller.client_id), now=utcnow())


@router.get("/sites/{site_id}/stocktake", response_model=Stocktake)
def stocktake(
    site_id: IdPath, session: SessionDep, caller: AssetsReader,
    hours: Annotated[int, Query(ge=1, le=24 * 31)] = 24,
) -> Stocktake:
    """Expected (in store here) against found (read here recently), and tags read here that
    are not the caller's: unknown ones, and other agencies' kit not shared with it, which is
    listed as any stray tag is (the reader read its EPC; nothing else of it is told)."""
    agency_row(session, Site, caller.agency_id, site_id, "site")
    since = utcnow() - timedelta(hours=hours)
    expected = expected_at(session, caller, site_id)
    found = set(session.exec(
        select(Asset.id).where(
            asset_visible(caller), Asset.last_seen_site_id == site_id,
            seen_by_own_reader(caller), col(Asset.last_seen_at) >= since,
        ).limit(MAX_STOCKTAKE_ASSETS)
    ))
    unknown = session.exec(
        select(Sighting.epc_hex).where(
            Sighting.agency_id == caller.agency_id, Sighting.site_id == site_id,
            col(Sighting.last_seen_at) >= since
        ).limit(MAX_STOCKTAKE_ASSETS)
    )
    foreign = session.exec(
        select(Asset.epc_hex).join(ForeignSighting, and_(
            col(ForeignSighting.owner_id) == col(Asset.agency_id),
            col(ForeignSighting.asset_id) == col(Asset.id)))
        .where(ForeignSighting.site_id == site_id,
               ForeignSighting.reporting_agency_id == caller.agency_id,
               col(ForeignSighting.last_seen_at) >= since).limit(MAX_STOCKTAKE_ASSETS)
    )
    take = reconcile(expected, expected, found, [*unknown, *foreign])
    return Stocktake(
        site_id=site_id, since=since, expected=take.expected, found=sorted(found),
        missing=take.missing, unexpected=take.unexpected, unknown_epcs=take.unknown,
    )
