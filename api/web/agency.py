"""The agency page: per site its assets and a stocktake that reads unambiguously, open alerts
(each with the desk's Acknowledge and Resolve buttons, `api.web.desk_alerts`),
utilisation over time per asset class, the overdue list, and each reader's latest health
(`api.ingest.health`: as its agent reported it, unsigned).

The utilisation charts are SVG drawn here from custody history (`api.web.utilisation`; no
chart library, nothing fetched), each with a table of the same figures for screen readers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from api.auth import Caller
from api.custody.rules import AlertKind
from api.db import utcnow
from api.deps import SessionDep
from api.models import Alert, Asset, AssetClass, AssetStatus, Reader, ReaderHealth, Site
from api.routes.operations import Stocktake, stocktake
from api.scoping import asset_visible
from api.web.desk_alerts import acknowledgements
from api.web.holders import Holders
from api.web.session import AssetsUser
from api.web.templating import page
from api.web.utilisation import Period, Step, fetch_history, utilisation

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_ALERTS: Final = 50
"""Open alerts listed; older ones stay reachable through `GET /v1/alerts`."""
MAX_SITES: Final = 200
"""Sites drawn with a stocktake each: a force's stores, not every vehicle."""
MAX_READERS: Final = 500
"""Readers listed with their health; the rest through `/metrics` and the alerts."""
MAX_OVERDUE: Final = 200
"""Overdue assets listed, the longest overdue first."""
OUT: Final = frozenset({AssetStatus.CHECKED_OUT.value, AssetStatus.ON_LOAN.value})
GONE: Final = frozenset({AssetStatus.DISPOSED.value, AssetStatus.RETIRED.value})


@dataclass(frozen=True, slots=True)
class SiteCheck:
    """A site's stocktake as five figures that add up: expected = seen + missing."""

    take: Stocktake

    @property
    def seen(self) -> list[str]:
        """Expected here and read here."""
        return sorted(set(self.take.expected) & set(self.take.found))


def _asset_alerts(session: Session, caller: Caller) -> dict[str, list[Alert]]:
    """Each asset's open alerts: an asset with one never shows a plain tick."""
    found: dict[str, list[Alert]] = {}
    for alert in session.exec(select(Alert).where(
            Alert.agency_id == caller.agency_id, col(Alert.resolved_at).is_(None),
            col(Alert.asset_id).is_not(None)).order_by(col(Alert.id))):
        found.setdefault(alert.asset_id or "", []).append(alert)
    return found


@router.get("/agency", response_class=HTMLResponse)
def agency(
    request: Request, session: SessionDep, user: AssetsUser,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    by: Step = Step.HOUR,
) -> Response:
    """The agency overview."""
    caller = user.caller
    now = utcnow()
    today = now.date()
    period = Period.checked(first or last or today, last or first or today, by)
    sites = list(session.exec(select(Site).where(Site.agency_id == caller.agency_id)
                              .order_by(col(Site.id)).limit(MAX_SITES)))
    own = list(session.exec(select(Asset).where(Asset.agency_id == caller.agency_id)
                            .order_by(col(Asset.id))))
    by_site: dict[str, list[Asset]] = {s.id: [] for s in sites}
    for asset in own:  # kit shared with the agency has its home in its owner's sites
        by_site.setdefault(asset.home_site_id, []).append(asset)
    checks = {s.id: SiteCheck(stocktake(s.id, session, caller, 24)) for s in sites}
    alerts = list(session.exec(
        select(Alert).where(Alert.agency_id == caller.agency_id,
                            col(Alert.resolved_at).is_(None))
        .order_by(col(Alert.id).desc()).limit(MAX_ALERTS)))
    use = utilisation(period, fetch_history(session, caller.agency_id, period), now)
    names = {c.id: c.name for c in session.exec(
        select(AssetClass).where(AssetClass.agency_id == caller.agency_id))}
    out_now = Counter(a.class_id for a in own if a.status in OUT)
    pool_now = Counter(a.class_id for a in own if a.status not in GONE)
    overdue = list(session.exec(
        select(Asset).where(asset_visible(caller), col(Asset.status).in_(OUT),
                            col(Asset.due_at) < now)
        .order_by(col(Asset.due_at), col(Asset.id)).limit(MAX_OVERDUE)))
    readers = list(session.exec(select(Reader).where(Reader.agency_id == caller.agency_id)
                                .order_by(col(Reader.id)).limit(MAX_READERS)))
    health = {h.reader_id: h for h in session.exec(select(ReaderHealth).where(
        col(ReaderHealth.reader_id).in_([r.id for r in readers])))}
    due = {a.site_id for a in session.exec(select(Alert).where(
        Alert.agency_id == caller.agency_id, Alert.kind == AlertKind.INVENTORY_DUE.value,
        col(Alert.resolved_at).is_(None)))}
    return page(request, "agency.html", user=user, sites=sites, by_site=by_site, checks=checks,
                due=due,
                alerts=alerts, acks=acknowledgements(session, alerts),
                asset_alerts=_asset_alerts(session, caller), use=use, names=names,
                out_now=out_now, pool_now=pool_now, period=period, now=now,
                overdue=overdue, holders=Holders(session, caller.agency_id), readers=readers,
                health=health,
                temperature_limit=request.app.state.settings.reader_temperature_alert_c)
