"""One pool's plan as the endpoint, the command and the page show it: the request checked
against what the caller's agency may see, the history read (`api.planning.history`), the
demand fitted, the sizing table, today's pool, and the what-ifs.

The request names the agency's own sites and class and, to plan a pool shared with another
agency, that agency and its class: the other agency's part is only what it shares with the
caller's (`AssetShare`). A site or class the agency may not see answers 404, as everywhere in
the API; a figure out of bounds 422 (`Problem`). Nothing here writes.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlmodel import Session

from api.models.assets import AssetClass
from api.models.registry import Agency, Site
from api.planning.demand import DemandModel, fit_demand
from api.planning.history import load_history, pool_items
from api.planning.model import (
    Estimate,
    PoolHistory,
    PoolPolicy,
    ReplayOutcome,
    ServiceLevel,
    SizingRow,
)
from api.planning.replay import replay
from api.planning.simulate import DAY_S
from api.planning.sizing import (
    PoolingSaving,
    Simulation,
    current_service,
    loan_rule,
    pooling_saving,
    service_table,
    smallest_pool,
    surge,
)
from api.planning.usage import items_on_loan
from api.problems import Problem, not_found
from api.scoping import agency_row

MAX_PERIOD_DAYS: Final = 731
"""Two years: enough for any seasonal pattern, bounded for the reading and the fit."""
MIN_PERIOD_DAYS: Final = 7
"""Every hour of the week seen at least once (the demand fit needs it)."""
MAX_RUNS: Final = 200
MAX_ITEMS: Final = 500
"""The largest pool any table or search goes to: a store, not a national depot."""
MAX_SITES: Final = 10
TABLE_MARGIN: Final = 2
"""Sizes shown below the smallest (or today's) pool and above the larger of the two."""
MAX_TABLE_ROWS: Final = 15
SIMULATED_DAYS: Final = 28
MAX_REPLAY_LOAN_S: Final = 366 * 86400.0
"""A loan rule of at most a year, as the longest booking."""
BUSY_RETRY_S: Final = 15
"""What a caller is told to wait while its agency's previous plan is still being simulated."""

_planning: set[str] = set()
_planning_lock = threading.Lock()
LOAN_SCALES: Final = (("loan_longer", "Loans 50 % longer", 1.5),
                      ("loan_shorter", "Loans 50 % shorter", 0.5))


@dataclass(frozen=True, slots=True)
class PlanRequest:
    """What is asked: the pool (agency, its sites, its class, and optionally another agency's
    class it shares), the period (the stores' calendar days in `zone`, both included), the
    target and the simulation."""

    agency_id: str
    site_ids: tuple[str, ...]
    class_id: str
    first: date
    last: date
    target: float = 0.99
    runs: int = 20
    seed: int = 0
    with_agency: str | None = None
    with_class: str | None = None
    max_items: int = MAX_ITEMS
    zone: str = "UTC"
    """The stores' time zone (`planning_time_zone`): their hours and days, summer time kept."""

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.tz).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.tz).astimezone(UTC)

    @property
    def shared(self) -> dict[str, str]:
        """The other agency and its class, as `load_history` takes them."""
        if self.with_agency is None or self.with_class is None:
            return {}
        return {self.with_agency: self.with_class}

    @property
    def simulation(self) -> Simulation:
        return Simulation(days=SIMULATED_DAYS, runs=self.runs, seed=self.seed)


@dataclass(frozen=True, slots=True)
class WhatIf:
    """A changed rule: the smallest pool meeting the target under it (None: none up to the
    largest size searched), and the service today's pool would give."""

    key: str
    label: str
    smallest: SizingRow | None
    today: SizingRow | None


@dataclass(frozen=True, slots=True)
class PoolPlan:
    request: PlanRequest
    history: PoolHistory
    demand: DemandModel
    table: list[SizingRow]
    smallest: SizingRow | None
    today: SizingRow | None
    what_ifs: list[WhatIf]
    pooling: PoolingSaving | None
    daily_use: list[tuple[date, float | None]]


def checked(session: Session, request: PlanRequest, *, min_days: int = MIN_PERIOD_DAYS
            ) -> PlanRequest:
    """`request` if the agency may plan it: its own sites and class (404 otherwise), another
    agency's class only if that agency shares an item of it with it (404 otherwise, so ids
    are not confirmed), figures within bounds (422)."""
    days = (request.last - request.first).days + 1
    if days < min_days or days > MAX_PERIOD_DAYS:
        raise Problem(422, "bad-period", f"a period is {min_days} to {MAX_PERIOD_DAYS} days, "
                      "from its first day to its last")
    if not 2 <= request.runs <= MAX_RUNS:
        raise Problem(422, "bad-runs", f"runs are 2 to {MAX_RUNS}")
    if not 0.5 <= request.target < 1:
        raise Problem(422, "bad-target", "the target is a share met at once, from 0.5 up to "
                      "(not including) 1, e.g. 0.99")
    if not 1 <= request.max_items <= MAX_ITEMS:
        raise Problem(422, "bad-size", f"pool sizes are 1 to {MAX_ITEMS}")
    if not 1 <= len(request.site_ids) <= MAX_SITES:
        raise Problem(422, "bad-sites", f"plan 1 to {MAX_SITES} sites at once")
    for site_id in request.site_ids:
        agency_row(session, Site, request.agency_id, site_id, "site")
    agency_row(session, AssetClass, request.agency_id, request.class_id, "class")
    if (request.with_agency is None) != (request.with_class is None):
        raise Problem(422, "bad-pooling", "pool with another agency by naming both the "
                      "agency and its class")
    if request.with_agency is not None and not _shares(session, request):
        raise not_found("shared class")
    return replace(request, site_ids=tuple(dict.fromkeys(request.site_ids)))


def _shares(session: Session, request: PlanRequest) -> bool:
    other = session.get(Agency, request.with_agency or "")
    return (other is not None and other.id != request.agency_id
            and bool(pool_items(session, request.agency_id, (), request.class_id,
                                request.shared)))


def _fitted(history: PoolHistory, tz: ZoneInfo) -> DemandModel:
    try:
        return fit_demand(history, tz=tz)
    except ValueError as exc:
        raise Problem(422, "cannot-plan", f"this history cannot be fitted: {exc}") from None


def _parts(session: Session, request: PlanRequest) -> tuple[PoolHistory, PoolHistory] | None:
    """The two pools a pooling what-if compares: the first site against the others, or the
    agency's sites against what the other agency shares. None for one site alone."""
    if request.with_agency is not None:
        return (_load(session, request, request.site_ids, {}),
                _load(session, request, (), request.shared))
    if len(request.site_ids) < 2:
        return None
    return (_load(session, request, request.site_ids[:1], {}),
            _load(session, request, request.site_ids[1:], {}))


def history_of(session: Session, request: PlanRequest) -> PoolHistory:
    """The recorded history of the whole pool `request` names."""
    return _load(session, request, request.site_ids, request.shared)


def _load(session: Session, request: PlanRequest, site_ids: Sequence[str],
          shared: dict[str, str]) -> PoolHistory:
    return load_history(session, request.agency_id, site_ids, request.class_id,
                        request.start, request.end, include_shared_from=shared)


def _smallest(demand: DemandModel, request: PlanRequest, policy: PoolPolicy
              ) -> SizingRow | None:
    try:
        return smallest_pool(demand, request.target, policy, request.simulation,
                             max_items=request.max_items)
    except ValueError:  # no pool up to max_items meets the target
        return None


def _sizes(request: PlanRequest, pool_size: int, smallest: SizingRow | None) -> range:
    marks = [pool_size] + ([smallest.items] if smallest is not None else [])
    low = max(1, min(marks) - TABLE_MARGIN)
    high = min(request.max_items, max(marks) + TABLE_MARGIN, low + MAX_TABLE_ROWS - 1)
    return range(low, high + 1)


def _today(demand: DemandModel, request: PlanRequest, policy: PoolPolicy
           ) -> SizingRow | None:
    """Today's pool under `policy` (None for a pool with no items left)."""
    if demand.pool_size < 1:
        return None
    return current_service(demand, policy, request.simulation)


@contextmanager
def _one_plan_per_agency(agency_id: str) -> Iterator[None]:
    """A plan costs seconds to minutes of CPU (two years, 200 runs): one agency runs one at a
    time in this process, and a second request meanwhile answers 429, so no key that may read
    assets can tie up every worker."""
    with _planning_lock:
        if agency_id in _planning:
            raise Problem(429, "planning-busy", "a plan of this agency is still being worked "
                          "out; ask again when it is done", {"Retry-After": str(BUSY_RETRY_S)})
        _planning.add(agency_id)
    try:
        yield
    finally:
        with _planning_lock:
            _planning.discard(agency_id)


def plan_pool(session: Session, request: PlanRequest) -> PoolPlan:
    """The whole plan of `request` (checked by `checked` first); a figure the analysis
    refuses (a demand no simulated store of the bounds can carry) answers 422."""
    with _one_plan_per_agency(request.agency_id):
        history = history_of(session, request)
        demand = _fitted(history, request.tz)
        try:
            return _plan(session, request, history, demand)
        except ValueError as exc:
            raise Problem(422, "cannot-plan", f"this pool cannot be planned: {exc}") from None


def _plan(session: Session, request: PlanRequest, history: PoolHistory, demand: DemandModel
          ) -> PoolPlan:
    policy = PoolPolicy(items=max(1, history.pool_size))
    smallest = _smallest(demand, request, policy)
    table = service_table(demand, policy, _sizes(request, history.pool_size, smallest),
                          request.simulation)
    today = _today(demand, request, policy)
    changed = [("surge", "Surge: three times the demand", surge(policy))] + [
        (key, label, loan_rule(policy, scale=scale)) for key, label, scale in LOAN_SCALES]
    what_ifs = [WhatIf(key, label, _smallest(demand, request, rule),
                       _today(demand, request, rule))
                for key, label, rule in changed]
    parts = _parts(session, request)
    pooling = None
    if parts is not None:
        try:
            pooling = pooling_saving(_fitted(parts[0], request.tz), _fitted(parts[1], request.tz),
                                     request.target, policy, request.simulation)
        except (Problem, ValueError):  # one side has too little history to stand alone
            pooling = None
    return PoolPlan(request, history, demand, table, smallest, today, what_ifs, pooling,
                    daily_use(history, request.tz))


def daily_use(history: PoolHistory, tz: ZoneInfo) -> list[tuple[date, float | None]]:
    """Each day's time-weighted share of the pool out on loan (None: no pool), named by the
    stores' date at its middle (a day of a clock change is an hour longer or shorter)."""
    half = timedelta(seconds=DAY_S / 2)
    return [((step.start + half).astimezone(tz).date(), step.share)
            for step in items_on_loan(history, DAY_S)]


def _estimate(value: Estimate) -> dict[str, float]:
    return {"value": value.value, "low": value.low, "high": value.high, "level": value.level}


def _service(service: ServiceLevel) -> dict[str, Any]:
    return {"met_at_once": _estimate(service.met_at_once),
            "mean_wait_s": _estimate(service.mean_wait_s),
            "refused": _estimate(service.refused), "utilisation": _estimate(service.utilisation),
            "runs": service.runs, "seed": service.seed,
            "requests_per_run": service.requests_per_run}


def _row(row: SizingRow | None) -> dict[str, Any] | None:
    return None if row is None else {"items": row.items, **_service(row.service)}


def plan_json(plan: PoolPlan) -> dict[str, Any]:
    """The plan as the endpoint answers it (every figure with its interval)."""
    request, demand, history = plan.request, plan.demand, plan.history
    pooling = plan.pooling
    return {
        "pool": {"agency_ids": list(history.agency_ids), "site_ids": list(history.site_ids),
                 "class_id": request.class_id, "from": request.first.isoformat(),
                 "to": request.last.isoformat(), "items": history.pool_size,
                 "with_agency": request.with_agency, "with_class": request.with_class,
                 "time_zone": request.zone},
        "demand": {
            "requests": demand.requests, "unmet": demand.unmet, "bookings": demand.bookings,
            "no_shows": demand.no_shows, "no_show_share": _estimate(demand.no_show),
            "mean_rate_per_h": demand.mean_rate_per_h,
            "rate_by_hour_of_day": [_estimate(e) for e in demand.by_hour_of_day()],
            "rate_by_day_of_week": [_estimate(e) for e in demand.by_day_of_week()],
            "loan": {"family": demand.loan.family, "mean_s": _estimate(demand.loan.mean_s),
                     "loans": demand.loan.loans},
            "out_of_service_share": demand.out_of_service_share,
            "out_of_service_mean_s": demand.out_of_service_mean_s},
        "target": request.target,
        "simulation": {"days": SIMULATED_DAYS, "runs": request.runs, "seed": request.seed},
        "sizing": [_row(row) for row in plan.table],
        "smallest": _row(plan.smallest),
        "today": _row(plan.today),
        "what_ifs": [{"key": w.key, "label": w.label, "smallest": _row(w.smallest),
                      "today": _row(w.today)} for w in plan.what_ifs]
        + ([{"key": "pooling", "label": "Pooled as one store",
             "separate": [_row(pooling.a), _row(pooling.b)], "smallest": _row(pooling.pooled),
             "saving": pooling.saving}] if pooling is not None else []),
        "daily_use": [{"day": d.isoformat(), "share": s} for d, s in plan.daily_use],
    }


def replayed(session: Session, request: PlanRequest, items: int, max_loan_s: float | None
             ) -> dict[str, Any]:
    """The day of `request` (checked, one day) replayed through a pool of `items`, loans cut
    at `max_loan_s`: its recorded requests and which the changed pool would have refused."""
    requests = history_of(session, request).requests
    policy = PoolPolicy(items=items, max_loan_s=max_loan_s)
    try:
        outcome = replay(requests, policy) if requests else ReplayOutcome(policy, (), ())
    except ValueError as exc:
        raise Problem(422, "cannot-replay", f"this day cannot be replayed: {exc}") from None
    return {"site": request.site_ids[0], "class": request.class_id,
            "day": request.first.isoformat(), "items": items, "max_loan_s": max_loan_s,
            "requests": len(outcome.requests), "refused_count": len(outcome.refused),
            "recorded_unmet": sum(not r.met for r in outcome.requests),
            "refused": [{"at": r.at.isoformat(), "source": r.source, "met_then": r.met}
                        for r in outcome.refused]}
