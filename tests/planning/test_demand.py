"""Demand fitted from generated histories whose demand is known: the intervals cover the truth
about as often as their level says (checked over many seeds, not one lucky draw)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from api.planning.demand import SLOTS, combine, fit_demand, fit_loans, poisson_rate
from api.planning.model import OutOfService, PoolHistory, Request
from api.planning.synthetic import weekday_rates
from tests.planning.demands import HOUR, MONDAY, store_history

TRUE_RATES = weekday_rates(3.0)
OPEN = [s for s in range(SLOTS) if TRUE_RATES[s] > 0]


def test_rates_cover_the_true_rate_at_their_level() -> None:
    covered = []
    for seed in range(10):
        demand = fit_demand(store_history(seed))
        covered += [demand.rates[s].low <= 3.0 <= demand.rates[s].high for s in OPEN]
        assert all(demand.rates[s].value == 0 for s in range(SLOTS) if s not in OPEN)
        assert demand.mean_rate_per_h == pytest.approx(3.0 * 50 / SLOTS, rel=0.15)
    assert len(covered) == 500
    assert np.mean(covered) >= 0.93  # exact intervals: 95 % or a little more


def test_an_interval_that_misses_is_not_built_to_pass() -> None:
    demand = fit_demand(store_history(0))
    assert not all(demand.rates[s].low <= 4.5 <= demand.rates[s].high for s in OPEN)
    assert all(demand.rates[s].high < 3.0 * 4 for s in OPEN)


def test_refusals_count_as_demand_the_pool_did_not_meet() -> None:
    history = store_history(3, pool_size=3)
    refused = sum(r.source == "none_in_store" for r in history.requests)
    assert refused > 50
    demand = fit_demand(history)
    assert demand.unmet == refused
    assert demand.requests == len(history.requests)
    hourly = demand.by_hour_of_day()
    assert hourly[12].low <= 3.0 * 5 / 7 <= hourly[12].high
    assert hourly[3].value == 0.0
    assert sum(d.value for d in demand.by_day_of_week()[5:]) == 0.0


def test_mean_loan_covers_the_true_mean_and_lognormal_wins() -> None:
    covered, lognormal = [], []
    for seed in range(30):
        loan = fit_demand(store_history(seed, days=14, pool_size=40)).loan
        covered.append(loan.mean_s.low <= 2 * HOUR <= loan.mean_s.high)
        lognormal.append(loan.family == "lognorm")
        assert loan.mean_s.low < loan.mean_s.value < loan.mean_s.high
        assert {family for family, _ in loan.aic} == {"lognorm", "gamma", "expon"}
    assert sum(covered) >= 26
    assert sum(lognormal) >= 27


@pytest.mark.parametrize(("draw", "family"), [
    (lambda rng: rng.exponential(1800, 800), "expon"),
    (lambda rng: rng.gamma(6.0, 600, 800), "gamma"),
])
def test_aic_keeps_the_family_the_loans_came_from(
        draw: Callable[[np.random.Generator], np.ndarray], family: str) -> None:
    kept = [fit_loans(list(draw(np.random.default_rng(seed)))).family for seed in range(10)]
    assert kept.count(family) >= 7


def test_no_show_share_of_bookings() -> None:
    covered = []
    for seed in range(40):
        history = store_history(seed, booking_share=0.5, no_show_share=0.2)
        demand = fit_demand(history)
        covered.append(demand.no_show.low <= 0.2 <= demand.no_show.high)
        assert demand.booking_share == pytest.approx(0.5, abs=0.06)
        assert demand.no_shows == sum(r.no_show for r in history.requests)
    assert sum(covered) >= 34


def test_out_of_service_share_is_time_weighted_and_counts_overlaps_once() -> None:
    week = timedelta(days=7)
    history = replace(store_history(0, days=7, pool_size=4), out_of_service=(
        OutOfService("a1", MONDAY - week, None),                         # all week, still out
        OutOfService("a2", MONDAY, MONDAY + timedelta(days=2)),
        OutOfService("a2", MONDAY + timedelta(days=1), MONDAY + timedelta(days=3)),  # overlaps
        OutOfService("a3", MONDAY + week, MONDAY + 2 * week),            # after the period
    ))
    demand = fit_demand(history)
    assert demand.out_of_service_share == pytest.approx((7 + 3) / (4 * 7))
    assert demand.out_of_service_mean_s == pytest.approx((7 + 3) / 2 * 86400)


def test_hours_of_the_week_are_the_store_s_own() -> None:
    london = ZoneInfo("Europe/London")
    summer = MONDAY.replace(month=6, day=1)  # a Monday, on British Summer Time
    at = summer.replace(hour=7, minute=30)   # 08:30 in London
    history = PoolHistory(agency_ids=("a",), site_ids=("s",), class_id="radio", start=summer,
                          end=summer + timedelta(days=7), pool_size=2, requests=(
        Request(at, "s", "radio", "a", "check_out", True, 600.0),
        Request(at + timedelta(hours=1), "s", "radio", "a", "check_out", True, 900.0)))
    local = fit_demand(history, tz=london)
    assert local.counts[8] == 1 and local.counts[9] == 1
    assert sum(local.exposure_h) == pytest.approx(7 * 24)
    assert fit_demand(history).counts[7] == 1


def test_combine_adds_rates_and_mixes_loans() -> None:
    a = fit_demand(store_history(1))
    b = fit_demand(store_history(2, site="site-b", loan_mean_s=4 * HOUR))
    both = combine(a, b)
    assert both.site_ids == ("site-a", "site-b")
    for slot in (0, OPEN[0], OPEN[-1]):
        assert both.rates[slot].value == pytest.approx(a.rates[slot].value + b.rates[slot].value)
        # equal hours: the pooled interval is the exact one of the summed counts
        exact = poisson_rate(a.counts[slot] + b.counts[slot], a.exposure_h[slot])
        assert both.rates[slot].low == pytest.approx(exact.low)
        assert both.rates[slot].high == pytest.approx(exact.high)
    assert both.loan.family == "mixture"
    assert a.loan.mean_s.value < both.loan.mean_s.value < b.loan.mean_s.value
    assert both.requests == a.requests + b.requests
    assert combine(both, a).rates[OPEN[0]].value == pytest.approx(
        2 * a.rates[OPEN[0]].value + b.rates[OPEN[0]].value)


def test_combine_over_unequal_periods_keeps_the_sum_and_a_wider_interval() -> None:
    a = fit_demand(store_history(1, days=7))
    b = fit_demand(store_history(2, days=28, site="site-b"))
    slot = OPEN[0]
    both = combine(a, b)
    assert both.rates[slot].value == pytest.approx(a.rates[slot].value + b.rates[slot].value)
    assert both.rates[slot].high - both.rates[slot].low > b.rates[slot].high - b.rates[slot].low


def test_a_mixture_draws_each_pool_s_loans_in_proportion() -> None:
    a = fit_demand(store_history(1))
    b = fit_demand(store_history(2, site="site-b", per_hour=6.0, loan_mean_s=5 * HOUR))
    mixed = combine(a, b).loan
    weights = [c.weight for c in mixed.components]
    assert weights == pytest.approx([1 / 3, 2 / 3], abs=0.05)
    drawn = mixed.sample(np.random.default_rng(0), 200_000)
    assert drawn.mean() == pytest.approx(mixed.mean_s.value, rel=0.03)
    assert drawn.mean() == pytest.approx(HOUR * (2 / 3 + 10 / 3), rel=0.06)
    assert (drawn > 0).all()
