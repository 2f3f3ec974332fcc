"""The planning page: how many items a store's pool needs, from its history, with charts.

A form chooses the store (and another of the agency's stores, or a class another agency
shares with it, to plan them as one pool), the class, the period and the target; the answer is
`api.planning.report`'s plan, as `GET /v1/planning/pools` gives it, with three charts drawn
by `api.web.planning_charts` (utilisation over time, demand by hour of day, service level
against pool size), each with a table of its figures. Same scope as the endpoint
(`assets:read`); a site or class the agency may not see is refused as the endpoint refuses
it, on the page. Nothing is written.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from api.db import utcnow
from api.deps import SessionDep, SettingsDep
from api.models import Agency, Asset, AssetClass, AssetShare, Site
from api.planning import report
from api.problems import Problem
from api.web.planning_charts import hour_chart, service_chart, use_chart
from api.web.session import AssetsUser
from api.web.templating import page
from ledger.core.bounds import MAX_ID_CHARS

router = APIRouter(prefix="/web", include_in_schema=False)

PAGE_RUNS: Final = 10
"""Simulated runs behind the page's figures: a page answers in seconds; the endpoint and the
command take more runs for narrower intervals."""
DEFAULT_DAYS: Final = 28
TARGETS: Final = (0.9, 0.95, 0.99, 0.995)
MAX_SHARED_POOLS: Final = 50

IdParam = Annotated[str | None, Query(max_length=MAX_ID_CHARS)]


def shared_pools(session: Session, agency_id: str) -> list[tuple[str, str, str]]:
    """(agency, class, shown name) of each other agency's class with an item shared with
    `agency_id`, in a fixed order: the form's choice is its place in this list (ids may hold
    any printable character, so no separator could join two of them safely)."""
    pairs = session.exec(select(Asset.agency_id, Asset.class_id).distinct().join(
        AssetShare, (col(AssetShare.owner_id) == col(Asset.agency_id))
        & (col(AssetShare.asset_id) == col(Asset.id))).where(
        AssetShare.agency_id == agency_id, Asset.agency_id != agency_id).order_by(
        col(Asset.agency_id), col(Asset.class_id)).limit(MAX_SHARED_POOLS)).all()
    names = {a.id: a.name for a in session.exec(select(Agency).where(
        col(Agency.id).in_({p[0] for p in pairs})))}
    return [(a, c, f"{names.get(a, a)}: {c}") for a, c in pairs]


def _charts(plan: dict[str, Any]) -> dict[str, str]:
    use = plan["daily_use"]
    hours = plan["demand"]["rate_by_hour_of_day"]
    rows = plan["sizing"]
    return {
        "use": use_chart([date.fromisoformat(d["day"]) for d in use], [d["share"] for d in use]),
        "hours": hour_chart([(r["value"], r["low"], r["high"]) for r in hours],
                            plan["pool"]["time_zone"]),
        "service": service_chart([r["items"] for r in rows],
                                 [(r["met_at_once"]["value"], r["met_at_once"]["low"],
                                   r["met_at_once"]["high"]) for r in rows],
                                 plan["target"], plan["pool"]["items"])}


@router.get("/planning", response_class=HTMLResponse)
def planning(
    request: Request, session: SessionDep, user: AssetsUser, settings: SettingsDep,
    site: IdParam = None, with_site: IdParam = None,
    class_id: Annotated[str | None, Query(alias="class", max_length=MAX_ID_CHARS)] = None,
    first: Annotated[date | None, Query(alias="from")] = None,
    last: Annotated[date | None, Query(alias="to")] = None,
    target: Annotated[float, Query(ge=0.5, lt=1)] = 0.99,
    shared: Annotated[int, Query(alias="with", ge=0, le=MAX_SHARED_POOLS)] = 0,
) -> Response:
    """The form and, once a store and class are chosen, their plan."""
    agency_id = user.caller.agency_id
    sites = list(session.exec(select(Site).where(Site.agency_id == agency_id)
                              .order_by(col(Site.id))))
    classes = list(session.exec(select(AssetClass).where(AssetClass.agency_id == agency_id)
                                .order_by(col(AssetClass.id))))
    pools = shared_pools(session, agency_id)
    today = utcnow().date()
    last = last or today - timedelta(days=1)
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    form = {"site": site, "with_site": with_site, "class": class_id, "from": first,
            "to": last, "target": target, "with": shared}
    context: dict[str, Any] = {"user": user, "zone": settings.planning_time_zone,
                               "sites": sites, "classes": classes,
                               "pools": pools, "targets": TARGETS, "form": form,
                               "plan": None, "charts": None, "error": None}
    if site is None or class_id is None:
        return page(request, "planning.html", **context)
    other = pools[shared - 1] if 1 <= shared <= len(pools) else None
    try:
        if shared > len(pools):
            raise Problem(422, "bad-pooling", "choose a shared class from the list")
        plan = report.plan_json(report.plan_pool(session, report.checked(
            session, report.PlanRequest(
                agency_id, tuple(s for s in (site, with_site) if s), class_id, first, last,
                target=target, runs=PAGE_RUNS, with_agency=other[0] if other else None,
                with_class=other[1] if other else None, zone=settings.planning_time_zone))))
    except Problem as exc:
        context["error"] = exc.detail
        return page(request, "planning.html", status_code=exc.status_code, **context)
    return page(request, "planning.html", **{**context, "plan": plan, "charts": _charts(plan)})


@router.get("/planning/replay", response_class=HTMLResponse)
def replay_page(
    request: Request, session: SessionDep, user: AssetsUser, settings: SettingsDep,
    site: Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)],
    class_id: Annotated[str, Query(alias="class", min_length=1, max_length=MAX_ID_CHARS)],
    day: date, items: Annotated[int, Query(ge=1, le=report.MAX_ITEMS)],
    loan_h: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """A recorded day at the store replayed through `items` items (loans cut at `loan_h`
    hours; left empty, as recorded): what the changed pool would have refused, as
    `POST /v1/planning/replay`."""
    try:
        asked = report.checked(session, report.PlanRequest(
            user.caller.agency_id, (site,), class_id, day, day,
            zone=settings.planning_time_zone), min_days=1)
        outcome = report.replayed(session, asked, items, _loan_s(loan_h))
    except Problem as exc:
        return page(request, "planning_replay.html", status_code=exc.status_code, user=user,
                    outcome=None, error=exc.detail, zone=settings.planning_time_zone)
    for refused in outcome["refused"]:  # the stores' clock, as the page says
        refused["local"] = datetime.fromisoformat(refused["at"]).astimezone(asked.tz)
    return page(request, "planning_replay.html", user=user, outcome=outcome, error=None,
                zone=settings.planning_time_zone)


def _loan_s(hours: str) -> float | None:
    """The form's loan limit in seconds: empty for none, else hours up to a year."""
    if not hours.strip():
        return None
    try:
        value = float(hours)
    except ValueError:
        value = -1.0
    if not 0 < value <= report.MAX_REPLAY_LOAN_S / 3600:  # NaN fails this too
        raise Problem(422, "bad-loan", "loans back within a number of hours, up to a year")
    return value * 3600
