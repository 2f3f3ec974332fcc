"""The agency page: assets by site, a stocktake per site, open alerts, utilisation by class,
and each reader's latest health (`api.ingest.health`: as its agent reported it, unsigned).

The utilisation chart is an SVG drawn here (no chart library, nothing fetched): per asset
class, the share of its assets out of the store (checked out or on loan) right now.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from api.deps import SessionDep
from api.models import Alert, Asset, AssetClass, AssetStatus, Reader, ReaderHealth, Site
from api.routes.operations import Stocktake, stocktake
from api.scoping import asset_visible
from api.web.session import AssetsUser
from api.web.templating import page

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_ALERTS: Final = 50
"""Open alerts listed; older ones stay reachable through `GET /v1/alerts`."""
MAX_SITES: Final = 200
"""Sites drawn with a stocktake each: a force's stores, not every vehicle."""
MAX_READERS: Final = 500
"""Readers listed with their health; the rest through `/metrics` and the alerts."""
OUT: Final = frozenset({AssetStatus.CHECKED_OUT.value, AssetStatus.ON_LOAN.value})


@dataclass(frozen=True, slots=True)
class ClassUse:
    class_id: str
    name: str
    out: int
    total: int

    @property
    def percent(self) -> int:
        return round(100 * self.out / self.total) if self.total else 0


@router.get("/agency", response_class=HTMLResponse)
def agency(request: Request, session: SessionDep, user: AssetsUser) -> Response:
    """The agency overview."""
    caller = user.caller
    sites = list(session.exec(select(Site).where(Site.agency_id == caller.agency_id)
                              .order_by(col(Site.id)).limit(MAX_SITES)))
    assets = list(session.exec(select(Asset).where(asset_visible(caller))
                               .order_by(col(Asset.id))))
    by_site: dict[str, list[Asset]] = {s.id: [] for s in sites}
    for asset in assets:
        by_site.setdefault(asset.home_site_id, []).append(asset)
    takes: dict[str, Stocktake] = {s.id: stocktake(s.id, session, caller, 24) for s in sites}
    alerts = list(session.exec(
        select(Alert).where(Alert.agency_id == caller.agency_id,
                            col(Alert.resolved_at).is_(None))
        .order_by(col(Alert.id).desc()).limit(MAX_ALERTS)))
    total = Counter(a.class_id for a in assets)
    names = {c.id: c.name for c in session.exec(
        select(AssetClass).where(col(AssetClass.id).in_(list(total))))}
    out = Counter(a.class_id for a in assets if a.status in OUT)
    use = [ClassUse(c, names.get(c, c), out[c], total[c]) for c in sorted(total)]
    readers = list(session.exec(select(Reader).where(Reader.agency_id == caller.agency_id)
                                .order_by(col(Reader.id)).limit(MAX_READERS)))
    health = {h.reader_id: h for h in session.exec(select(ReaderHealth).where(
        col(ReaderHealth.reader_id).in_([r.id for r in readers])))}
    return page(request, "agency.html", user=user, sites=sites, by_site=by_site, takes=takes,
                alerts=alerts, use=use, readers=readers, health=health)
