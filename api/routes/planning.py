"""Pool planning routes: record an officer told "none in store" (scope `custody:write`, the
desk's), and read a pool's plan and replay a recorded day through a changed pool (scope
`assets:read`).

Planning reads the agency's history in aggregate, as the agency page's utilisation charts do
(which also need `assets:read`): rates, loan lengths and shares, never who held what, so the
scope every logistics lead's role holds (read-only and up) is the one it needs; the custody
timelines of `audit:read` are not shown. Nothing here writes to the custody log. A site or
class the agency may not see answers 404; a figure out of bounds 422.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from api.db import utcnow
from api.deps import AssetsReader, CustodyWriter, SessionDep, SettingsDep
from api.planning import report
from api.planning.unmet import record_none_in_store
from api.problems import Problem
from ledger.core.bounds import MAX_ID_CHARS

router = APIRouter(prefix="/v1", tags=["planning"])

IdText = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
IdQuery = Annotated[str, Query(min_length=1, max_length=MAX_ID_CHARS)]


class NoneInStoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")  # an unknown field is refused, not ignored

    class_id: IdText
    at: AwareDatetime | None = None
    """When the officer was told (default: now); at most 31 days ago."""


class NoneInStorePublic(BaseModel):
    id: int
    site_id: str
    class_id: str
    at: datetime
    created_at: datetime


@router.post("/sites/{site_id}/none-in-store", status_code=status.HTTP_201_CREATED,
             response_model=NoneInStorePublic)
def none_in_store(site_id: Annotated[str, Path(max_length=MAX_ID_CHARS)],
                  data: NoneInStoreCreate, session: SessionDep,
                  caller: CustodyWriter) -> Any:
    """Record that an officer asked this store for an item of a class and none was in store
    (unmet demand, counted by pool planning; not a custody change)."""
    row = record_none_in_store(session, agency_id=caller.agency_id, site_id=site_id,
                               class_id=data.class_id, at=data.at, now=utcnow(),
                               client_id=caller.client_id)
    session.commit()
    session.refresh(row)
    return row


class EstimatePublic(BaseModel):
    value: float
    low: float
    high: float
    level: float


class SizingRowPublic(BaseModel):
    """A pool size and the service it gives, each figure over the simulated runs."""

    items: int
    met_at_once: EstimatePublic
    mean_wait_s: EstimatePublic
    refused: EstimatePublic
    utilisation: EstimatePublic
    runs: int
    seed: int
    requests_per_run: float


class LoanPublic(BaseModel):
    family: str
    mean_s: EstimatePublic
    loans: int


class DemandPublic(BaseModel):
    requests: int
    unmet: int
    """Requests told "none in store"."""
    bookings: int
    no_shows: int
    no_show_share: EstimatePublic
    mean_rate_per_h: float
    rate_by_hour_of_day: list[EstimatePublic]
    rate_by_day_of_week: list[EstimatePublic]
    """Monday first."""
    loan: LoanPublic
    out_of_service_share: float
    out_of_service_mean_s: float | None


class PoolPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    agency_ids: list[str]
    site_ids: list[str]
    class_id: str
    first: date = Field(alias="from")
    last: date = Field(alias="to")
    items: int
    with_agency: str | None
    with_class: str | None
    time_zone: str = Field(description="the stores' time zone: its hours, days and dates")


class WhatIfPublic(BaseModel):
    """A changed rule (`surge`, `loan_longer`, `loan_shorter`): the smallest pool meeting the
    target under it and today's pool's service; or `pooling`: the two pools apart
    (`separate`), together (`smallest`) and the `saving`."""

    key: str
    label: str
    smallest: SizingRowPublic | None
    today: SizingRowPublic | None = None
    separate: list[SizingRowPublic | None] | None = None
    saving: int | None = None


class DayUsePublic(BaseModel):
    day: date
    share: float | None


class PlanPublic(BaseModel):
    pool: PoolPublic
    demand: DemandPublic
    target: float
    simulation: dict[str, float]
    sizing: list[SizingRowPublic]
    smallest: SizingRowPublic | None
    """None when no pool up to `max_items` meets the target."""
    today: SizingRowPublic | None
    what_ifs: list[WhatIfPublic]
    daily_use: list[DayUsePublic]


class RefusedPublic(BaseModel):
    at: datetime
    source: str
    met_then: bool


class ReplayPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    site: str
    class_id: str = Field(alias="class")
    day: date
    items: int
    max_loan_s: float | None
    requests: int
    refused_count: int
    recorded_unmet: int
    refused: list[RefusedPublic]


def _sites(site: list[str]) -> tuple[str, ...]:
    if not 1 <= len(site) <= report.MAX_SITES or any(
            not 1 <= len(s) <= MAX_ID_CHARS for s in site):
        raise Problem(422, "bad-sites", f"give 1 to {report.MAX_SITES} site ids")
    return tuple(site)


@router.get("/planning/pools", response_model=PlanPublic, response_model_by_alias=True)
def plan_pool(
    session: SessionDep, caller: AssetsReader, settings: SettingsDep,
    site: Annotated[list[str], Query(description="the agency's site (repeat to pool sites)")],
    class_id: Annotated[IdQuery, Query(alias="class")],
    first: Annotated[date, Query(alias="from")], last: Annotated[date, Query(alias="to")],
    target: Annotated[float, Query(ge=0.5, lt=1)] = 0.99,
    runs: Annotated[int, Query(ge=2, le=report.MAX_RUNS)] = 20,
    seed: Annotated[int, Query(ge=0, le=2**32 - 1)] = 0,
    with_agency: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    with_class: Annotated[str | None, Query(min_length=1, max_length=MAX_ID_CHARS)] = None,
    max_items: Annotated[int, Query(ge=1, le=report.MAX_ITEMS)] = report.MAX_ITEMS,
) -> dict[str, Any]:
    """A pool's demand fitted from its history (rates by hour of day and day of week with
    intervals, loan length, no-shows, out-of-service share, unmet requests), the sizing table,
    today's pool's service level and the what-ifs (surge, loans ±50 %, pooling)."""
    request = report.checked(session, report.PlanRequest(
        caller.agency_id, _sites(site), class_id, first, last, target=target, runs=runs,
        seed=seed, with_agency=with_agency, with_class=with_class, max_items=max_items,
        zone=settings.planning_time_zone))
    return report.plan_json(report.plan_pool(session, request))


class ReplayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: IdText
    class_id: IdText = Field(alias="class")
    day: date
    items: int = Field(ge=1, le=report.MAX_ITEMS, strict=True)
    max_loan_s: float | None = Field(default=None, gt=0, le=report.MAX_REPLAY_LOAN_S)


@router.post("/planning/replay", response_model=ReplayPublic, response_model_by_alias=True)
def replay_day(data: ReplayCreate, session: SessionDep, caller: AssetsReader,
               settings: SettingsDep) -> dict[str, Any]:
    """The day's recorded requests at the store replayed through a pool of `items` (loans
    returned by `max_loan_s` at the latest): which it would have refused."""
    request = report.checked(session, report.PlanRequest(
        caller.agency_id, (data.site,), data.class_id, data.day, data.day,
        zone=settings.planning_time_zone), min_days=1)
    return report.replayed(session, request, data.items, data.max_loan_s)
