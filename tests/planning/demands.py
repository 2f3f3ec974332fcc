"""Demand models for the planning tests: the textbook case queueing theory answers exactly, and
generated store histories whose demand is known."""

from __future__ import annotations

from datetime import UTC, datetime

from api.planning.demand import SLOTS, DemandModel, LoanComponent, LoanModel, poisson_rate
from api.planning.model import Estimate, PoolHistory
from api.planning.synthetic import Store, generated_history, weekday_rates

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)
HOUR = 3600.0


def steady_demand(per_hour: float, mean_loan_s: float, *, site: str = "site-a") -> DemandModel:
    """Requests arriving as a steady Poisson stream at `per_hour`, exponential loans of mean
    `mean_loan_s`, no bookings, nothing out of service: Erlang's loss model."""
    exposure = 1000.0
    return DemandModel(
        class_id="radio", site_ids=(site,), agency_ids=("agency-a",), start=MONDAY,
        end=MONDAY, pool_size=0,
        rates=(poisson_rate(per_hour * exposure, exposure),) * SLOTS,
        counts=(per_hour * exposure,) * SLOTS, exposure_h=(exposure,) * SLOTS,
        loan=LoanModel(components=(LoanComponent("expon", (0.0, mean_loan_s)),),
                       mean_s=Estimate(mean_loan_s, mean_loan_s, mean_loan_s), loans=0),
        no_show=Estimate(0.0, 0.0, 1.0), booking_share=0.0, out_of_service_share=0.0,
        out_of_service_mean_s=None, requests=0, unmet=0, bookings=0, no_shows=0)


def store_history(seed: int = 0, *, days: int = 28, pool_size: int = 12, per_hour: float = 3.0,
                  loan_mean_s: float = 2 * HOUR, site: str = "site-a", booking_share: float = 0.0,
                  no_show_share: float = 0.0) -> PoolHistory:
    """A store open 08-18 on weekdays with `per_hour` requests an hour and lognormal loans."""
    return generated_history(weekday_rates(per_hour), start=MONDAY, days=days,
                             pool_size=pool_size, loan_mean_s=loan_mean_s,
                             booking_share=booking_share, no_show_share=no_show_share,
                             seed=seed, store=Store(site_id=site))
