"""Generated histories whose demand is known: what the tests recover, what the benchmark times,
and what a demo store can be planned from before it has a history of its own.

Requests arrive as a Poisson process with a rate per hour of the week; loans are lognormal with
a given mean; a share are bookings, some of them never collected. The store's own pool then
decides who was told "none in store": the requests are replayed through `pool_size` items, and
those refused become refusals with no loan. Loans still out when the period ends have no
recorded duration, as in a real record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from api.planning import checks
from api.planning.demand import HOUR_S, SLOTS
from api.planning.model import PoolHistory, PoolPolicy, Request
from api.planning.replay import replay


@dataclass(frozen=True, slots=True)
class Store:
    """Who the generated requests belong to."""

    site_id: str = "site-a"
    class_id: str = "radio"
    agency_id: str = "agency-a"


def weekday_rates(per_hour: float = 3.0, opens: int = 8, closes: int = 18) -> tuple[float, ...]:
    """Hour-of-week rates: `per_hour` from `opens` to `closes` o'clock Monday to Friday, none
    at other times (the store's desk hours)."""
    return tuple(per_hour if slot // 24 < 5 and opens <= slot % 24 < closes else 0.0
                 for slot in range(SLOTS))


def generated_history(rates: Sequence[float], *, start: datetime, days: int, pool_size: int,
                      loan_mean_s: float, loan_sigma: float = 0.8, booking_share: float = 0.0,
                      no_show_share: float = 0.0, seed: int = 0,
                      store: Store = Store()) -> PoolHistory:
    """A history of `days` days from `start` (UTC hours are the store's hours) with requests at
    `rates` per hour of the week (Monday 00:00 first) and lognormal loans of mean `loan_mean_s`
    and log-spread `loan_sigma`, served by `pool_size` items."""
    if len(rates) != SLOTS:
        raise ValueError(f"rates must give {SLOTS} hours of the week, not {len(rates)}")
    checks.aware("start", start)
    checks.count("days", days, low=1)
    checks.finite("loan_mean_s", loan_mean_s, strict=True)
    rng = np.random.default_rng(seed)
    end = start + timedelta(days=days)
    asked = _asked(rates, start, days, rng)
    mu = math.log(loan_mean_s) - loan_sigma**2 / 2
    held = rng.lognormal(mu, loan_sigma, asked.size)
    booked = rng.random(asked.size) < booking_share
    absent = booked & (rng.random(asked.size) < no_show_share)
    requests = [Request(at=start + timedelta(seconds=float(offset)), site_id=store.site_id,
                        class_id=store.class_id, agency_id=store.agency_id,
                        source="booking" if is_booked else "check_out", met=not is_absent,
                        held_s=None if is_absent else float(hold), no_show=bool(is_absent))
                for offset, hold, is_booked, is_absent in zip(asked, held, booked, absent,
                                                              strict=True)]
    return PoolHistory(agency_ids=(store.agency_id,), site_ids=(store.site_id,),
                       class_id=store.class_id, start=start, end=end, pool_size=pool_size,
                       requests=_served(requests, pool_size, end))


def _asked(rates: Sequence[float], start: datetime, days: int,
           rng: np.random.Generator) -> np.ndarray:
    """Sorted request times (seconds from `start`): a Poisson count per hour, uniform within."""
    first = start.weekday() * 24 + start.hour
    hours = np.arange(days * 24)
    counts = rng.poisson(np.asarray(rates)[(first + hours) % SLOTS])
    offsets = np.repeat(hours * HOUR_S, counts) + rng.uniform(0, HOUR_S, int(counts.sum()))
    return np.sort(offsets)


def _served(requests: list[Request], pool_size: int, end: datetime) -> tuple[Request, ...]:
    """The requests as the store recorded them: those its pool could not meet turned away
    ("none in store", no loan), loans running past `end` without a duration."""
    if pool_size == 0:
        return tuple(_refused(r) if r.met else r for r in requests)
    outcome = replay(requests, PoolPolicy(items=pool_size))
    recorded = []
    for request, met in zip(outcome.requests, outcome.met, strict=True):
        if not met:
            recorded.append(_refused(request))
        elif request.held_s is not None and request.at + timedelta(seconds=request.held_s) > end:
            recorded.append(replace(request, held_s=None))
        else:
            recorded.append(request)
    return tuple(recorded)


def _refused(request: Request) -> Request:
    """`request` as the desk records a refusal: no item, no loan."""
    source = "none_in_store" if request.source == "check_out" else request.source
    return replace(request, source=source, met=False, held_s=None)
