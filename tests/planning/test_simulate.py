"""The simulated store against queueing theory (Erlang's loss model, where it is exact), its
seeding, and the direction each rule moves the service level."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from api.planning import simulate as simulation
from api.planning.demand import fit_demand
from api.planning.model import PoolPolicy
from api.planning.sizing import erlang_b
from tests.planning.demands import HOUR, steady_demand, store_history

ERLANG_CASES = [  # items, requests per hour, mean loan in hours
    (2, 1.0, 1.0),
    (5, 3.0, 1.0),
    (10, 4.0, 2.0),
    (4, 3.0, 0.5),
]


@pytest.mark.parametrize(("items", "per_hour", "loan_h"), ERLANG_CASES)
def test_refusals_match_the_erlang_loss_formula(items: int, per_hour: float,
                                                loan_h: float) -> None:
    demand = steady_demand(per_hour, loan_h * HOUR)
    load = per_hour * loan_h
    blocking = erlang_b(items, load)
    carried = load * (1 - blocking) / items
    covered, utilisation, neighbour = 0, 0, 0
    for seed in range(5):
        service = simulation.simulate(demand, PoolPolicy(items=items), seed=seed)
        covered += service.refused.low <= blocking <= service.refused.high
        utilisation += service.utilisation.low <= carried <= service.utilisation.high
        neighbour += service.refused.low <= erlang_b(items + 1, load) <= service.refused.high
        assert service.met_at_once.value + service.refused.value == pytest.approx(1.0)
        assert service.mean_wait_s.value == 0.0
        assert service.requests_per_run == pytest.approx(per_hour * 24 * 28, rel=0.05)
    assert covered >= 4
    assert utilisation >= 4
    assert neighbour == 0  # the intervals are tight enough to tell one item apart


@pytest.mark.parametrize(("items", "per_hour", "loan_h"), [(3, 2.0, 1.0), (2, 1.0, 0.5),
                                                            (8, 6.0, 1.0)])
def test_waits_match_erlang_c_when_nobody_leaves(items: int, per_hour: float,
                                                 loan_h: float) -> None:
    # Patience without end: M/M/c. The share met at once is 1 - C (Erlang C, from Erlang B),
    # and those who wait wait 1 / (c mu - lambda) on average.
    load = per_hour * loan_h
    blocking = erlang_b(items, load)
    waits = blocking / (1 - load / items * (1 - blocking))
    mean_wait_s = loan_h * HOUR / (items - load)
    met, waited = 0, 0
    for seed in range(5):
        service = simulation.simulate(steady_demand(per_hour, loan_h * HOUR),
                                      PoolPolicy(items=items, patience_s=1e7), days=14,
                                      seed=seed)
        met += service.met_at_once.low <= 1 - waits <= service.met_at_once.high
        waited += service.mean_wait_s.low <= mean_wait_s <= service.mean_wait_s.high
        assert service.refused.value == 0.0
    assert met >= 4
    assert waited >= 4


def test_same_seed_same_figures_other_seed_other_figures() -> None:
    demand = fit_demand(store_history(1))
    policy = PoolPolicy(items=6, patience_s=600, out_of_service_share=0.1)
    first = simulation.simulate(demand, policy, days=14, runs=5, seed=7)
    assert simulation.simulate(demand, policy, days=14, runs=5, seed=7) == first
    other = simulation.simulate(demand, policy, days=14, runs=5, seed=8)
    assert other != first
    assert other.met_at_once.value != first.met_at_once.value


def test_runs_do_not_depend_on_the_order_they_run_in() -> None:
    demand = fit_demand(store_history(1))
    policy = PoolPolicy(items=6, patience_s=600, out_of_service_share=0.1)
    children = np.random.SeedSequence(3).spawn(4)
    forward = [simulation._run(demand, policy, 7 * 86400, child) for child in children]
    backward = [simulation._run(demand, policy, 7 * 86400, child) for child in children[::-1]]
    assert forward == backward[::-1]
    assert forward[0] != forward[1]


def test_each_rule_moves_the_service_level_the_right_way() -> None:
    demand = fit_demand(store_history(2))
    base = PoolPolicy(items=7)

    def refused(policy: PoolPolicy) -> float:
        return simulation.simulate(demand, policy, days=14, runs=8).refused.value

    today = refused(base)
    assert 0 < today < 0.5
    assert refused(replace(base, items=9)) < today
    assert refused(replace(base, patience_s=1800)) < today
    assert refused(replace(base, max_loan_s=HOUR)) < today
    assert refused(replace(base, loan_scale=0.5)) < today
    assert refused(replace(base, demand_scale=3.0)) > today
    assert refused(replace(base, loan_scale=2.0)) > today
    assert refused(replace(base, out_of_service_share=0.3)) > today


def test_waits_are_reported_for_those_who_waited() -> None:
    demand = steady_demand(3.0, HOUR)
    service = simulation.simulate(demand, PoolPolicy(items=3, patience_s=900), days=7, runs=5)
    assert 0 < service.mean_wait_s.low <= service.mean_wait_s.value <= 900
    assert service.met_at_once.value + service.refused.value < 1  # some were met after a wait


def test_out_of_service_items_are_not_lent() -> None:
    demand = steady_demand(2.0, HOUR)
    full = simulation.simulate(demand, PoolPolicy(items=6), days=14, runs=6)
    half = simulation.simulate(demand, PoolPolicy(items=6, out_of_service_share=0.5),
                               days=14, runs=6)
    three = simulation.simulate(demand, PoolPolicy(items=3), days=14, runs=6)
    assert half.refused.value > full.refused.value
    # half the pool out of service is about a pool of three, not of six
    assert abs(half.refused.value - three.refused.value) < abs(half.refused.value
                                                               - full.refused.value)


def test_long_patience_ends_when_the_last_one_waiting_is_served() -> None:
    # a month's patience with items going out of service: the run ends once the desk is clear,
    # not a simulated month of maintenance later
    demand = steady_demand(3.0, HOUR)
    policy = PoolPolicy(items=2, patience_s=30 * 86400, out_of_service_share=0.2)
    service = simulation.simulate(demand, policy, days=2, runs=2)
    assert service.refused.value == 0.0
    assert service.mean_wait_s.value > 0


def test_no_show_bookings_keep_items_aside_for_the_hold() -> None:
    demand = fit_demand(store_history(2, booking_share=0.6, no_show_share=0.5))
    base = PoolPolicy(items=7)
    free = simulation.simulate(demand, base, days=14, runs=8)
    held = simulation.simulate(demand, replace(base, no_show_hold_s=4 * HOUR), days=14, runs=8)
    assert held.refused.value > free.refused.value
    assert held.requests_per_run == free.requests_per_run
    assert free.requests_per_run == pytest.approx(demand.requests / 2 * (1 - 0.6 * 0.5),
                                                  rel=0.1)
