"""Sizing: Erlang B itself, the smallest pool (meets the target, one fewer does not), the
sizing table, and the what-ifs (pooling, a surge, a changed loan rule)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from api.planning import sizing
from api.planning.demand import fit_demand
from api.planning.model import Estimate, PoolPolicy
from api.planning.simulate import simulate
from api.planning.sizing import (
    Simulation,
    current_service,
    erlang_b,
    erlang_guess,
    loan_rule,
    offered_load,
    pooling_saving,
    service_table,
    smallest_pool,
    surge,
)
from tests.planning.demands import HOUR, steady_demand, store_history

QUICK = Simulation(days=14, runs=8)


def _erlang_b_by_factorials(servers: int, load: float) -> float:
    top = load**servers / math.factorial(servers)
    return top / sum(load**k / math.factorial(k) for k in range(servers + 1))


@pytest.mark.parametrize(("servers", "load"), [(0, 2.0), (1, 1.0), (5, 3.0), (10, 5.0),
                                               (30, 25.0), (3, 0.0)])
def test_erlang_b_matches_the_textbook_formula(servers: int, load: float) -> None:
    assert erlang_b(servers, load) == pytest.approx(_erlang_b_by_factorials(servers, load))


def test_erlang_b_stays_finite_where_factorials_overflow() -> None:
    assert erlang_b(10, 5.0) == pytest.approx(0.018384, abs=1e-6)  # the published table
    large = erlang_b(2000, 1900.0)
    assert 0 < large < 0.05
    assert erlang_b(2001, 1900.0) < large


def test_smallest_pool_meets_the_target_and_one_fewer_does_not() -> None:
    demand = fit_demand(store_history(4))
    for target in (0.9, 0.99):
        row = smallest_pool(demand, target, simulation=QUICK)
        assert row.service.met_at_once.value >= target
        fewer = simulate(demand, PoolPolicy(items=row.items - 1), days=QUICK.days,
                         runs=QUICK.runs, seed=QUICK.seed)
        assert fewer.met_at_once.value < target
    # peaks at desk hours need more than the week's average load suggests
    assert row.items >= erlang_guess(demand, PoolPolicy(items=1), 0.99)


def test_smallest_pool_of_the_steady_case_is_erlang_s() -> None:
    demand = steady_demand(3.0, HOUR)
    erlang = next(n for n in range(1, 50) if 1 - erlang_b(n, 3.0) >= 0.97)
    assert erlang == 7  # 97.8 % met; six items meet 94.8 %, well apart from the target
    assert smallest_pool(demand, 0.97, simulation=QUICK).items == erlang


def test_today_s_pool_is_simulated_at_its_recorded_size() -> None:
    demand = fit_demand(store_history(4, pool_size=9))
    today = current_service(demand, simulation=QUICK)
    assert today.items == 9
    assert today == service_table(demand, PoolPolicy(items=1), [9], QUICK)[0]
    # the record refused about what the simulated store refuses
    recorded = demand.unmet / demand.requests
    assert today.service.refused.low - 0.02 <= recorded <= today.service.refused.high + 0.02


def test_service_table_lists_each_size_in_order() -> None:
    demand = fit_demand(store_history(4))
    rows = service_table(demand, PoolPolicy(items=1), range(4, 13, 2), QUICK)
    assert [row.items for row in rows] == [4, 6, 8, 10, 12]
    met = [row.service.met_at_once.value for row in rows]
    assert met == sorted(met)
    assert rows[0].service.utilisation.value > rows[-1].service.utilisation.value


def test_a_size_simulated_once_is_not_simulated_again() -> None:
    demand = fit_demand(store_history(8))
    table = service_table(demand, PoolPolicy(items=1), range(4, 16), QUICK)
    before = sizing._row.cache_info()
    row = smallest_pool(demand, 0.95, simulation=QUICK)
    after = sizing._row.cache_info()
    assert after.misses == before.misses  # every size the search asked for was in the table
    assert after.hits > before.hits
    assert row == next(r for r in table if r.items == row.items)


def test_pooling_two_stores_needs_fewer_than_both_alone() -> None:
    a = fit_demand(store_history(5))
    b = fit_demand(store_history(6, site="site-b"))
    saving = pooling_saving(a, b, 0.99, simulation=QUICK)
    assert saving.pooled.items < saving.a.items + saving.b.items
    assert saving.saving == saving.a.items + saving.b.items - saving.pooled.items > 0
    assert saving.pooled.service.met_at_once.value >= 0.99


def test_surge_and_loan_rules_change_the_pool_needed() -> None:
    demand = fit_demand(store_history(4))
    base = PoolPolicy(items=1)
    usual = smallest_pool(demand, 0.95, base, QUICK).items
    assert smallest_pool(demand, 0.95, surge(base), QUICK).items > usual
    assert smallest_pool(demand, 0.95, loan_rule(base, scale=2.0), QUICK).items > usual
    assert smallest_pool(demand, 0.95, loan_rule(base, max_loan_s=HOUR), QUICK).items < usual
    assert surge(base).demand_scale == 3.0
    assert surge(surge(base), 2.0).demand_scale == 6.0
    assert loan_rule(replace(base, max_loan_s=60.0), scale=0.5).max_loan_s == 60.0


def test_erlang_guess_is_erlang_s_answer_and_stops_at_its_limit() -> None:
    demand = steady_demand(3.0, HOUR)
    assert erlang_guess(demand, PoolPolicy(items=1), 0.97) == 7
    assert erlang_guess(demand, PoolPolicy(items=1, out_of_service_share=0.5), 0.97) == 14
    surge_of_millions = PoolPolicy(items=1, demand_scale=1e7)
    assert erlang_guess(demand, surge_of_millions, 0.99, limit=500) == 500


def test_offered_load_follows_the_policy() -> None:
    demand = steady_demand(2.0, HOUR)
    assert offered_load(demand, PoolPolicy(items=1)) == pytest.approx(2.0)
    assert offered_load(demand, PoolPolicy(items=1, demand_scale=3.0)) == pytest.approx(6.0)
    assert offered_load(demand, PoolPolicy(items=1, max_loan_s=1800)) == pytest.approx(1.0)
    booked = replace(demand, booking_share=0.5, no_show=Estimate(0.2, 0.1, 0.3))
    assert offered_load(booked, PoolPolicy(items=1)) == pytest.approx(2.0 * 0.9)
    assert offered_load(booked, PoolPolicy(items=1, no_show_hold_s=2 * HOUR)) == pytest.approx(
        2.0 * (0.9 + 0.1 * 2))


def test_no_pool_up_to_the_limit_is_a_clear_error() -> None:
    demand = steady_demand(3.0, HOUR)
    with pytest.raises(ValueError, match="no pool of up to 4 items meets the target"):
        smallest_pool(demand, 0.99, simulation=QUICK, max_items=4)
