"""The demand a pool's history supports: when requests arrive, how long loans last, how many
bookings nobody collects and how much of the pool is out of service, each with its uncertainty.

Arrivals are counted per hour of the week (168 slots, Monday 00:00 first, in the store's time
zone) and each slot's rate is a Poisson rate with its exact (gamma) interval: a store sees a
handful of requests per hour, too few for normal approximations. Every request counts, whether
it was met, refused with "none in store" (demand the pool did not meet, which is exactly what
sizing must see) or booked. Loan durations are fitted by maximum likelihood to a lognormal, a
gamma and an exponential, and the one with the lowest AIC is kept for the simulated store.

A history should give one `Request` per ask: a booking that was collected is one request, not a
booking and a check-out. Loans still out at the end of the period have no duration and are left
out of the fit (with long loans that biases the mean slightly short).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal

import numpy as np
from scipy import stats

from api.planning import checks
from api.planning.model import Estimate, OutOfService, PoolHistory, Request

SLOTS = 7 * 24
"""Hours of the week: slot `weekday * 24 + hour` (Monday 0)."""
HOUR_S = 3600.0
WEEK = timedelta(days=7)
BOOTSTRAP_RESAMPLES = 999
"""Resamples of the mean loan's interval: enough for a 95 % percentile interval's ends."""

Family = Literal["lognorm", "gamma", "expon"]
FAMILIES: tuple[Family, ...] = ("lognorm", "gamma", "expon")


@dataclass(frozen=True, slots=True)
class LoanComponent:
    """One fitted distribution of loan durations (seconds) and its weight in a mixture.

    `params` are SciPy's (shape..., loc, scale) for `family`, loc fixed at 0: a loan cannot be
    shorter than nothing.
    """

    family: Family
    params: tuple[float, ...]
    weight: float = 1.0

    def distribution(self) -> stats.rv_continuous:
        """The frozen SciPy distribution, for drawing and for its moments."""
        return getattr(stats, self.family)(*self.params)


@dataclass(frozen=True, slots=True)
class LoanModel:
    """How long an item stays out once lent: one fitted family, or a mixture of two pools'.

    `aic` lists each candidate family's AIC from the fit (lower is better; empty for a mixture);
    `mean_s` is the mean loan with its interval; `loans` is how many completed loans it rests on.
    """

    components: tuple[LoanComponent, ...]
    mean_s: Estimate
    loans: int
    aic: tuple[tuple[Family, float], ...] = ()

    @property
    def family(self) -> str:
        """The kept family's name, or "mixture" for pooled sites."""
        return self.components[0].family if len(self.components) == 1 else "mixture"

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """`size` loan durations (seconds) drawn with `rng`, so a seeded run repeats."""
        weights = np.array([c.weight for c in self.components])
        picks = rng.choice(len(self.components), size=size, p=weights / weights.sum())
        drawn = np.empty(size)
        for index, component in enumerate(self.components):
            where = picks == index
            drawn[where] = component.distribution().rvs(size=int(where.sum()), random_state=rng)
        return drawn


@dataclass(frozen=True, slots=True)
class DemandModel:
    """The fitted demand of one pool (or of pooled pools, `combine`) over [start, end).

    `rates[s]` is requests per hour in hour-of-week slot `s`; `counts[s]` and `exposure_h[s]`
    are what it rests on (requests seen, hours of the period in that slot; after `combine`, the
    equivalent Poisson count and hours of the summed rate). `no_show` is the share of bookings
    nobody collected and `booking_share` the share of requests that were bookings: a no-show
    takes no loan (at most an item kept aside, `PoolPolicy.no_show_hold_s`).
    `out_of_service_share` is the time-weighted share of the pool out of service, and
    `out_of_service_mean_s` the mean length of a period out (None: none seen).
    """

    class_id: str
    site_ids: tuple[str, ...]
    agency_ids: tuple[str, ...]
    start: datetime
    end: datetime
    pool_size: int
    rates: tuple[Estimate, ...]
    counts: tuple[float, ...]
    exposure_h: tuple[float, ...]
    loan: LoanModel
    no_show: Estimate
    booking_share: float
    out_of_service_share: float
    out_of_service_mean_s: float | None
    requests: int
    unmet: int
    bookings: int
    no_shows: int
    level: float = 0.95

    @property
    def mean_rate_per_h(self) -> float:
        """Requests per hour over a whole week: the offered load's arrival rate."""
        return sum(r.value for r in self.rates) / SLOTS

    def by_hour_of_day(self) -> tuple[Estimate, ...]:
        """Requests per hour for each hour of the day (0-23), all weekdays together."""
        return tuple(_pooled_rate([self.counts[d * 24 + h] for d in range(7)],
                                  [self.exposure_h[d * 24 + h] for d in range(7)], self.level)
                     for h in range(24))

    def by_day_of_week(self) -> tuple[Estimate, ...]:
        """Requests per hour for each day of the week (Monday first), all hours together."""
        return tuple(_pooled_rate(self.counts[d * 24:(d + 1) * 24],
                                  self.exposure_h[d * 24:(d + 1) * 24], self.level)
                     for d in range(7))


def fit_demand(history: PoolHistory, level: float = 0.95, *, tz: tzinfo = UTC) -> DemandModel:
    """The demand model `history` supports, each figure with its interval at `level`.

    `tz` is the store's time zone: "08:00 on a Monday" is the store's, not UTC's. The period must
    span at least a week, so that every hour of the week has been seen at least once.
    """
    checks.level(level)
    start, end = _period(history)
    requests = _checked_requests(history, start, end)
    if not requests:
        raise ValueError("the history has no requests to fit demand from")
    counts = [0.0] * SLOTS
    for request in requests:
        counts[_slot(request.at, tz)] += 1
    exposure = _exposure_h(start, end, tz)
    bookings = [r for r in requests if r.source == "booking"]
    no_shows = sum(r.no_show for r in bookings)
    share, mean_out = _out_of_service(history.out_of_service, history.pool_size, start, end)
    return DemandModel(
        class_id=history.class_id, site_ids=history.site_ids, agency_ids=history.agency_ids,
        start=start, end=end, pool_size=history.pool_size,
        rates=tuple(poisson_rate(c, e, level) for c, e in zip(counts, exposure, strict=True)),
        counts=tuple(counts), exposure_h=tuple(exposure),
        loan=fit_loans([r.held_s for r in requests if r.met and r.held_s], level),
        no_show=proportion(no_shows, len(bookings), level),
        booking_share=len(bookings) / len(requests),
        out_of_service_share=share, out_of_service_mean_s=mean_out,
        requests=len(requests), unmet=sum(r.source == "none_in_store" for r in requests),
        bookings=len(bookings), no_shows=no_shows, level=level)


def combine(a: DemandModel, b: DemandModel) -> DemandModel:
    """One pool serving both `a` and `b` (two sites, or two agencies sharing): rates add, loans
    mix in proportion to each side's requests, the out-of-service share is pool-weighted.

    Both must be of the same class and fitted at the same level; hours of the week are each
    model's own local hours, so the two stores should share a time zone.
    """
    if a.class_id != b.class_id:
        raise ValueError(f"cannot pool different classes: {a.class_id!r} and {b.class_id!r}")
    if a.level != b.level:
        raise ValueError(f"cannot pool models fitted at levels {a.level:g} and {b.level:g}")
    slots = [_summed_slot(a, b, s) for s in range(SLOTS)]
    pool = a.pool_size + b.pool_size
    bookings, no_shows = a.bookings + b.bookings, a.no_shows + b.no_shows
    requests = a.requests + b.requests
    return DemandModel(
        class_id=a.class_id, site_ids=_union(a.site_ids, b.site_ids),
        agency_ids=_union(a.agency_ids, b.agency_ids),
        start=min(a.start, b.start), end=max(a.end, b.end), pool_size=pool,
        rates=tuple(rate for rate, _, _ in slots), counts=tuple(c for _, c, _ in slots),
        exposure_h=tuple(e for _, _, e in slots),
        loan=mix_loans(a.loan, a.mean_rate_per_h, b.loan, b.mean_rate_per_h),
        no_show=proportion(no_shows, bookings, a.level),
        booking_share=bookings / requests if requests else 0.0,
        out_of_service_share=((a.out_of_service_share * a.pool_size
                               + b.out_of_service_share * b.pool_size) / pool) if pool else 0.0,
        out_of_service_mean_s=_mean_present(a.out_of_service_mean_s, b.out_of_service_mean_s),
        requests=requests, unmet=a.unmet + b.unmet, bookings=bookings, no_shows=no_shows,
        level=a.level)


def poisson_rate(events: float, hours: float, level: float = 0.95) -> Estimate:
    """`events` seen in `hours` as a rate per hour with its exact Poisson interval.

    The gamma quantiles are the chi-square interval (Garwood) and accept a fractional count, so
    the same formula serves the equivalent counts of pooled rates. No hours: nothing known, so
    the rate is 0 with an unbounded top.
    """
    if hours <= 0:
        return Estimate(0.0, 0.0, math.inf, level)
    tail = (1 - level) / 2
    low = stats.gamma.ppf(tail, events) / hours if events > 0 else 0.0
    high = stats.gamma.ppf(1 - tail, events + 1) / hours
    return Estimate(events / hours, float(low), float(high), level)


def proportion(successes: int, trials: int, level: float = 0.95) -> Estimate:
    """`successes` of `trials` as a share with its exact (Clopper-Pearson) interval; no trials
    at all: 0 with the whole range [0, 1] as its interval."""
    if trials == 0:
        return Estimate(0.0, 0.0, 1.0, level)
    interval = stats.binomtest(successes, trials).proportion_ci(level, method="exact")
    return Estimate(successes / trials, float(interval.low), float(interval.high), level)


def fit_loans(held_s: Sequence[float | None], level: float = 0.95) -> LoanModel:
    """The loan-duration model of completed loans `held_s` (seconds; zero-length ones, a check-
    in straight after the check-out, are dropped): the family with the lowest AIC, and the mean
    loan with a percentile bootstrap interval (seeded: the same loans give the same interval)."""
    durations = np.array([h for h in held_s if h is not None and h > 0], dtype=float)
    if durations.size < 2:
        raise ValueError("the history needs at least two completed loans to fit loan durations")
    fits = {family: _fit_family(family, durations) for family in FAMILIES}
    best = min(FAMILIES, key=lambda family: fits[family][1])
    mean = stats.bootstrap((durations,), np.mean, confidence_level=level, method="percentile",
                           n_resamples=BOOTSTRAP_RESAMPLES, batch=100,
                           random_state=np.random.default_rng(0)).confidence_interval
    return LoanModel(components=(LoanComponent(best, fits[best][0]),),
                     mean_s=Estimate(float(durations.mean()), float(mean.low),
                                     float(mean.high), level),
                     loans=int(durations.size),
                     aic=tuple((family, fits[family][1]) for family in FAMILIES))


def mix_loans(a: LoanModel, weight_a: float, b: LoanModel, weight_b: float) -> LoanModel:
    """A pool lending `a`'s loans and `b`'s in proportion `weight_a : weight_b`. The mean's
    interval mixes the two intervals' ends: wider than exact, never narrower."""
    total = weight_a + weight_b
    wa, wb = (0.5, 0.5) if total <= 0 else (weight_a / total, weight_b / total)
    components = tuple(LoanComponent(c.family, c.params, c.weight * w)
                       for model, w in ((a, wa), (b, wb)) for c in model.components if w > 0)
    mean = Estimate(wa * a.mean_s.value + wb * b.mean_s.value,
                    wa * a.mean_s.low + wb * b.mean_s.low,
                    wa * a.mean_s.high + wb * b.mean_s.high, a.mean_s.level)
    return LoanModel(components=components, mean_s=mean, loans=a.loans + b.loans)


def _fit_family(family: Family, durations: np.ndarray) -> tuple[tuple[float, ...], float]:
    """Maximum-likelihood parameters of `family` (loc 0) and their AIC."""
    distribution = getattr(stats, family)
    params = tuple(float(p) for p in distribution.fit(durations, floc=0))
    free = len(params) - 1  # loc was fixed
    loglik = float(np.sum(distribution.logpdf(durations, *params)))
    return params, 2 * free - 2 * loglik if math.isfinite(loglik) else math.inf


def _period(history: PoolHistory) -> tuple[datetime, datetime]:
    """The history's [start, end), checked: aware, in order, at least a week long."""
    start, end = checks.aware("start", history.start), checks.aware("end", history.end)
    if end - start < WEEK:
        raise ValueError("demand by hour of the week needs at least a week of history, "
                         f"not {(end - start).total_seconds() / 86400:.1f} days")
    checks.count("pool_size", history.pool_size)
    return start, end


def _checked_requests(history: PoolHistory, start: datetime,
                      end: datetime) -> list[Request]:
    """The history's requests, each checked: aware, inside the period, of the pool's class and
    sites, with a finite, non-negative holding time."""
    for index, request in enumerate(history.requests):
        at = checks.aware(f"request {index} time", request.at)
        if not start <= at < end:
            raise ValueError(f"request {index} at {at.isoformat()} is outside the period "
                             f"[{start.isoformat()}, {end.isoformat()})")
        if request.class_id != history.class_id:
            raise ValueError(f"request {index} is for class {request.class_id!r}, "
                             f"not the pool's {history.class_id!r}")
        if history.site_ids and request.site_id not in history.site_ids:
            raise ValueError(f"request {index} is from site {request.site_id!r}, "
                             "not one of the pool's")
        if request.held_s is not None:
            checks.finite(f"request {index} held_s", request.held_s)
    return list(history.requests)


def _slot(moment: datetime, tz: tzinfo) -> int:
    """The hour-of-week slot of `moment` on the store's clock."""
    local = moment.astimezone(tz)
    return local.weekday() * 24 + local.hour


def _exposure_h(start: datetime, end: datetime, tz: tzinfo) -> list[float]:
    """Hours of [start, end) in each hour-of-week slot, walking the store's local hours (so
    half-hour time zones and daylight saving land in the right slot)."""
    hours = [0.0] * SLOTS
    moment = start
    while moment < end:
        local = moment.astimezone(tz)
        into = local.minute * 60 + local.second + local.microsecond / 1e6
        step = min(end, moment + timedelta(seconds=HOUR_S - into))
        hours[local.weekday() * 24 + local.hour] += (step - moment).total_seconds() / HOUR_S
        moment = step
    return hours


def _out_of_service(periods: Iterable[OutOfService], pool_size: int, start: datetime,
                    end: datetime) -> tuple[float, float | None]:
    """The time-weighted share of the pool out of service over [start, end), and the mean
    length (seconds) of a period out. Overlapping periods of one item count once; periods
    still open run to `end`."""
    by_item: dict[tuple[str | None, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for index, period in enumerate(periods):
        began = checks.aware(f"out-of-service {index} start", period.start)
        ended = end if period.end is None else checks.aware(f"out-of-service {index} end",
                                                            period.end)
        if ended < began:
            raise ValueError(f"out-of-service {index} ends before it starts")
        clipped = (max(began, start), min(ended, end))
        if clipped[0] < clipped[1]:
            by_item[(period.agency_id, period.asset_id)].append(clipped)
    spans = [span for item in by_item.values() for span in _merged(item)]
    if not spans or pool_size == 0:
        return 0.0, None
    seconds = sum((b - a).total_seconds() for a, b in spans)
    return min(1.0, seconds / (pool_size * (end - start).total_seconds())), seconds / len(spans)


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """`spans` with overlapping ones joined."""
    merged: list[tuple[datetime, datetime]] = []
    for began, ended in sorted(spans):
        if merged and began <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], ended))
        else:
            merged.append((began, ended))
    return merged


def _summed_slot(a: DemandModel, b: DemandModel, slot: int) -> tuple[Estimate, float, float]:
    """The rate of slot `slot` in `a` and `b` together, with its equivalent Poisson count and
    hours (see `_pooled_rate`)."""
    counts = (a.counts[slot], b.counts[slot])
    hours = (a.exposure_h[slot], b.exposure_h[slot])
    events, exposure = _equivalent(counts, hours, add=True)
    return poisson_rate(events, exposure, a.level), events, exposure


def _pooled_rate(counts: Sequence[float], hours: Sequence[float], level: float) -> Estimate:
    """One rate over several slots (an average weighted by their hours), with its interval."""
    return poisson_rate(*_equivalent(counts, hours, add=False), level)


def _equivalent(counts: Sequence[float], hours: Sequence[float],
                add: bool) -> tuple[float, float]:
    """The Poisson count and hours with the same mean and variance as the summed rates (`add`)
    or the hours-weighted average rate of `counts` seen in `hours`.

    Summing rates seen over equal hours gives back the summed count exactly; with unequal hours
    it is the gamma (Welch-Satterthwaite) match of mean and variance. With no events at all the
    shortest exposure is kept: the least we know bounds the top.
    """
    seen = [(c, h) for c, h in zip(counts, hours, strict=True) if h > 0]
    if not seen:
        return 0.0, 0.0
    if not add:
        return sum(c for c, _ in seen), sum(h for _, h in seen)
    mean = sum(c / h for c, h in seen)
    variance = sum(c / h**2 for c, h in seen)
    if variance == 0:
        return 0.0, min(h for _, h in seen)
    return mean**2 / variance, mean / variance


def _union(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[str, ...]:
    """`a` then what `b` adds, each once, in order."""
    return tuple(dict.fromkeys(a + b))


def _mean_present(a: float | None, b: float | None) -> float | None:
    """The mean of whichever of `a` and `b` are known."""
    known = [x for x in (a, b) if x is not None]
    return sum(known) / len(known) if known else None
