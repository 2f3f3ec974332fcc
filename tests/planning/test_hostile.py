"""Hostile and malformed input at every planning entry point: a clear ValueError naming what is
wrong, never a NaN figure or a SciPy traceback."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from api.planning.demand import combine, fit_demand, fit_loans
from api.planning.model import OutOfService, PoolHistory, PoolPolicy, Request
from api.planning.replay import replay
from api.planning.simulate import simulate
from api.planning.sizing import (
    Simulation,
    current_service,
    erlang_b,
    loan_rule,
    service_table,
    smallest_pool,
    surge,
)
from tests.planning.demands import HOUR, MONDAY, steady_demand, store_history


@pytest.fixture(scope="module")
def history() -> PoolHistory:
    return store_history(0, days=7)


def test_empty_history(history: PoolHistory) -> None:
    with pytest.raises(ValueError, match="no requests"):
        fit_demand(replace(history, requests=()))


@pytest.mark.parametrize(("change", "message"), [
    ({"end": MONDAY + timedelta(days=3)}, "at least a week"),
    ({"end": MONDAY - timedelta(days=8)}, "at least a week"),
    ({"start": MONDAY.replace(tzinfo=None)}, "aware"),
    ({"pool_size": -1}, "pool_size must be at least 0"),
    ({"pool_size": True}, "pool_size must be a whole number"),
])
def test_bad_periods_and_pools(history: PoolHistory, change: dict[str, object],
                               message: str) -> None:
    with pytest.raises(ValueError, match=message):
        fit_demand(replace(history, **change))


@pytest.mark.parametrize(("change", "message"), [
    ({"at": MONDAY + timedelta(days=7)}, "outside the period"),
    ({"at": MONDAY - timedelta(seconds=1)}, "outside the period"),
    ({"at": datetime(2026, 1, 6)}, "aware"),
    ({"held_s": math.nan}, "held_s must be a finite number"),
    ({"held_s": -5.0}, "held_s must be at least 0"),
    ({"held_s": math.inf}, "finite"),
    ({"class_id": "camera"}, "not the pool's 'radio'"),
    ({"site_id": "other-agency-site"}, "from site 'other-agency-site', not one of the pool's"),
])
def test_bad_requests(history: PoolHistory, change: dict[str, object], message: str) -> None:
    requests = (replace(history.requests[0], **change), *history.requests[1:])
    with pytest.raises(ValueError, match=message):
        fit_demand(replace(history, requests=requests))


def test_out_of_service_ending_before_it_starts(history: PoolHistory) -> None:
    backwards = OutOfService("a1", MONDAY + timedelta(days=2), MONDAY + timedelta(days=1))
    with pytest.raises(ValueError, match="ends before it starts"):
        fit_demand(replace(history, out_of_service=(backwards,)))


@pytest.mark.parametrize("level", [0, 1, 1.5, -0.1, math.nan, "0.95"])
def test_bad_levels(history: PoolHistory, level: float) -> None:
    with pytest.raises(ValueError, match="level"):
        fit_demand(history, level)


def test_too_few_loans() -> None:
    with pytest.raises(ValueError, match="at least two completed loans"):
        fit_loans([None, 0.0, 600.0])


def test_pooling_different_classes_or_levels(history: PoolHistory) -> None:
    demand = fit_demand(history)
    with pytest.raises(ValueError, match="different classes"):
        combine(demand, replace(demand, class_id="camera"))
    with pytest.raises(ValueError, match="levels"):
        combine(demand, replace(demand, level=0.9))


POLICIES = [
    (PoolPolicy(items=0), "items must be at least 1"),
    (PoolPolicy(items=-3), "items must be at least 1"),
    (PoolPolicy(items=10**9), "items must be at most 100,000"),
    (PoolPolicy(items=2.5), "items must be a whole number"),
    (PoolPolicy(items=True), "items must be a whole number"),
    (PoolPolicy(items=2, demand_scale=-1), "demand_scale must be above 0"),
    (PoolPolicy(items=2, demand_scale=0), "demand_scale must be above 0"),
    (PoolPolicy(items=2, demand_scale=math.nan), "demand_scale must be a finite number"),
    (PoolPolicy(items=2, loan_scale=math.inf), "loan_scale must be a finite number"),
    (PoolPolicy(items=2, loan_scale=-0.5), "loan_scale must be above 0"),
    (PoolPolicy(items=2, max_loan_s=0), "max_loan_s must be above 0"),
    (PoolPolicy(items=2, patience_s=-1), "patience_s must be at least 0"),
    (PoolPolicy(items=2, no_show_hold_s=-60), "no_show_hold_s must be at least 0"),
    (PoolPolicy(items=2, no_show_hold_s=math.nan), "no_show_hold_s must be a finite number"),
    (PoolPolicy(items=2, out_of_service_share=1.0), "out_of_service_share must be below 1"),
    (PoolPolicy(items=2, out_of_service_share=-0.1), "out_of_service_share must be at least"),
]


@pytest.mark.parametrize(("policy", "message"), POLICIES)
def test_bad_policies_are_refused_by_simulate_and_replay(policy: PoolPolicy,
                                                         message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(steady_demand(1.0, HOUR), policy, days=1, runs=2)
    with pytest.raises(ValueError, match=message):
        replay([], policy)


@pytest.mark.parametrize(("options", "message"), [
    ({"runs": 1}, "runs must be at least 2"),
    ({"runs": 10**6}, "runs must be at most 1,000"),
    ({"days": 1e9}, "days must be at most 3660"),
    ({"days": 0}, "days must be above 0"),
    ({"days": math.nan}, "days must be a finite number"),
    ({"seed": -1}, "seed must be at least 0"),
    ({"level": 1.0}, "level must be below 1"),
])
def test_bad_simulation_options(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(steady_demand(1.0, HOUR), PoolPolicy(items=2), **options)


def test_a_demand_with_no_arrivals_cannot_be_simulated() -> None:
    with pytest.raises(ValueError, match="no arrivals"):
        simulate(steady_demand(0.0, HOUR), PoolPolicy(items=2))


def test_a_surge_too_large_to_simulate_is_refused() -> None:
    with pytest.raises(ValueError, match="more than the 5,000,000 a simulation takes"):
        simulate(steady_demand(1.0, HOUR), PoolPolicy(items=2, demand_scale=1e6))


@pytest.mark.parametrize(("servers", "load", "message"), [
    (-1, 1.0, "servers must be at least 0"),
    (2, -1.0, "offered_load must be at least 0"),
    (2, math.nan, "offered_load must be a finite number"),
    (2.0, 1.0, "servers must be a whole number"),
])
def test_bad_erlang_b(servers: int, load: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        erlang_b(servers, load)


@pytest.mark.parametrize("target", [0, 1.0, 1.2, math.nan])
def test_bad_targets(target: float) -> None:
    with pytest.raises(ValueError, match="target"):
        smallest_pool(steady_demand(1.0, HOUR), target, simulation=Simulation(days=1, runs=2))


def test_sizing_tables_are_bounded() -> None:
    demand = steady_demand(1.0, HOUR)
    with pytest.raises(ValueError, match="at most 200 sizes"):
        service_table(demand, PoolPolicy(items=1), itertools.count(1))
    with pytest.raises(ValueError, match="items must be at least 1"):
        service_table(demand, PoolPolicy(items=1), [0], Simulation(days=1, runs=2))


def test_today_s_pool_must_have_items() -> None:
    with pytest.raises(ValueError, match="pool_size must be at least 1"):
        current_service(steady_demand(1.0, HOUR))


def test_bad_what_ifs() -> None:
    with pytest.raises(ValueError, match="factor must be above 0"):
        surge(PoolPolicy(items=1), -3)
    with pytest.raises(ValueError, match="scale must be a finite number"):
        loan_rule(PoolPolicy(items=1), scale=math.nan)
    with pytest.raises(ValueError, match="max_loan_s must be above 0"):
        loan_rule(PoolPolicy(items=1), max_loan_s=-60)


def test_bad_replays() -> None:
    good = Request(MONDAY, "s", "radio", "a", "check_out", True, 60.0)
    with pytest.raises(ValueError, match="aware"):
        replay([good, replace(good, at=datetime(2026, 1, 5))], PoolPolicy(items=1))
    with pytest.raises(ValueError, match="held_s must be a finite number"):
        replay([replace(good, held_s=math.nan)], PoolPolicy(items=1))
    refused = replace(good, met=False, held_s=None, source="none_in_store")
    with pytest.raises(ValueError, match="held_default_s must be above 0"):
        replay([good, refused], PoolPolicy(items=1), held_default_s=-1)
    with pytest.raises(ValueError, match="give held_default_s"):
        replay([refused], PoolPolicy(items=1))
    with pytest.raises(ValueError, match="one class; the requests ask for 2: 'camera', 'radio'"):
        replay([good, replace(good, class_id="camera")], PoolPolicy(items=1))
