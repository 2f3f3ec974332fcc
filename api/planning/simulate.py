"""A simulated store (SimPy): a pool of items lent to requests arriving as the demand model says,
under a policy's rules, run several times to give the service level with its intervals.

Requests arrive as a Poisson process whose rate changes every hour of the week (drawn hour by
hour: a count, then uniform times within the hour), scaled by `demand_scale`; a booking nobody
collects keeps an item aside for `no_show_hold_s`, if one is free, and is not counted as a
request. Each request takes an item at once if one is on the shelf, else waits up to
`patience_s` for the first one back (first come, first served) and then leaves without. Loans
last a duration drawn from the fitted distribution, times `loan_scale`, capped at `max_loan_s`.
Items go out of service in turn (each alternately in service and out, with exponential spells
whose means give the out-of-service share); an item due for service is taken when it is next
on the shelf, ahead of anyone waiting.

Every run starts empty on a Monday 00:00 and is measured after a one-day warm-up. Runs are
seeded by `SeedSequence(seed).spawn(runs)`: run i draws from its own streams, so the figures
repeat exactly for a seed and do not depend on the order the runs happen in; and each run
draws its arrivals and loans before anything else, so two pool sizes simulated with one seed
see the same requests (common random numbers: their difference is the pool's, not chance's).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import numpy as np
import simpy
from scipy import stats

from api.planning import checks
from api.planning.demand import HOUR_S, SLOTS, DemandModel
from api.planning.model import Estimate, PoolPolicy, ServiceLevel

DAY_S = 86400.0
WARMUP_S = DAY_S
"""Simulated time before measuring starts: a store that opens empty is not a typical store."""
DEFAULT_REPAIR_S = DAY_S
"""Mean time out of service when the history saw an out-of-service share but no whole spell."""
PERSON, UPKEEP = 1, 0
"""Request priorities: an item due for service is taken before anyone waiting gets it."""
MAX_DAYS = 3660
MAX_RUNS = 1000
MAX_ARRIVALS = 5_000_000
"""Expected requests in one run above which a simulation is refused: bounds memory and time
against a surge factor or a period typed with too many zeros."""


@dataclass(slots=True)
class _Tally:
    """What one run saw among the requests arriving in the measured window."""

    requests: int = 0
    at_once: int = 0
    refused: int = 0
    waiters: int = 0
    waited_s: float = 0.0
    loaned_s: float = 0.0
    """Item-seconds on loan inside the measured window (loans of any request)."""


@dataclass(slots=True)
class _Store:
    """One run's store: the pool, the measured window, and the tally."""

    env: simpy.Environment
    pool: simpy.PriorityResource
    window: tuple[float, float]
    patience_s: float
    tally: _Tally = field(default_factory=_Tally)
    waiting: int = 0
    """People at the desk waiting for an item."""
    settled: simpy.Event | None = None
    """Set once the arrivals are over: triggered when the last one waiting is decided."""

    def arrivals(self, times: np.ndarray, loans: np.ndarray,
                 absent: np.ndarray) -> Generator[simpy.Event, object, None]:
        """Bring each request to the desk at its time: lend at once, turn away, or let wait.
        A booking nobody collects (`absent`) only keeps an item aside for its `loans` time."""
        for at, loan, away in zip(times.tolist(), loans.tolist(), absent.tolist(), strict=True):
            yield self.env.timeout(at - self.env.now)
            if away:
                self._set_aside(loan)
                continue
            counted = at >= self.window[0]
            self.tally.requests += counted
            request = self.pool.request(priority=PERSON)
            if request.triggered:
                self.tally.at_once += counted
                self._lend(request, loan)
            elif self.patience_s == 0:
                request.cancel()
                self.tally.refused += counted
            else:
                self.waiting += 1
                self.env.process(self._wait(request, loan, at, counted))

    def _wait(self, request: simpy.resources.resource.PriorityRequest, loan: float, at: float,
              counted: bool) -> Generator[simpy.Event, object, None]:
        """Wait at the desk for an item until patience runs out."""
        yield request | self.env.timeout(self.patience_s)
        if counted:
            self.tally.waiters += 1
            self.tally.waited_s += self.env.now - at
        if request.triggered:  # granted, even when patience ran out at the same instant
            self._lend(request, loan)
        else:
            request.cancel()
            self.tally.refused += counted
        self.waiting -= 1
        if self.waiting == 0 and self.settled is not None:
            self.settled.succeed()

    def _lend(self, request: simpy.resources.resource.PriorityRequest, loan: float) -> None:
        """The item goes out for `loan` seconds and comes back on its own."""
        now = self.env.now
        self.tally.loaned_s += max(0.0, min(now + loan, self.window[1]) - max(now, self.window[0]))
        self.env.timeout(loan).callbacks.append(lambda _: self._return(request))

    def _set_aside(self, hold: float) -> None:
        """Keep an item aside for `hold` seconds if one is on the shelf (none: nobody is told,
        nobody came)."""
        if hold <= 0:
            return
        request = self.pool.request(priority=PERSON)
        if request.triggered:
            self.env.timeout(hold).callbacks.append(lambda _: self._return(request))
        else:
            request.cancel()

    def _return(self, request: simpy.resources.resource.PriorityRequest) -> None:
        """A loan ends: the item is back on the shelf (or straight to whoever is first)."""
        self.pool.release(request)


def simulate(demand: DemandModel, policy: PoolPolicy, *, days: float = 28, runs: int = 20,
             seed: int = 0, level: float = 0.95) -> ServiceLevel:
    """The service level a pool run by `policy` gives under `demand`: `runs` independent runs of
    `days` measured days each, with t-intervals at `level` over the runs.

    Shares are of the requests arriving in the measured days (no-shows are not requests): met
    at once, refused (none free and patience ran out), and the rest met after a wait. The mean
    wait is over everyone who could not be served at once, whether an item came or not, from
    the runs where anyone waited. Utilisation is item-time on loan over the pool's item-time.
    """
    checks.policy(policy)
    if checks.finite("days", days, strict=True) > MAX_DAYS:
        raise ValueError(f"days must be at most {MAX_DAYS}, not {days:g}")
    checks.count("runs", runs, low=2, high=MAX_RUNS)
    checks.count("seed", seed)
    checks.level(level)
    expected = demand.mean_rate_per_h * policy.demand_scale * (WARMUP_S + days * DAY_S) / HOUR_S
    if expected == 0:
        raise ValueError("the demand model has no arrivals to simulate")
    if expected > MAX_ARRIVALS:
        raise ValueError(f"about {expected:,.0f} requests a run is more than the "
                         f"{MAX_ARRIVALS:,} a simulation takes: fewer days or less demand")
    tallies = [_run(demand, policy, days * DAY_S, child)
               for child in np.random.SeedSequence(seed).spawn(runs)]
    return _service_level(tallies, policy.items, days * DAY_S, level, seed)


def out_of_service_share(demand: DemandModel, policy: PoolPolicy) -> float:
    """The share of items out of service the simulated store runs with: the policy's, else the
    history's."""
    if policy.out_of_service_share is not None:
        return policy.out_of_service_share
    return demand.out_of_service_share


def _run(demand: DemandModel, policy: PoolPolicy, measured_s: float,
         seeds: np.random.SeedSequence) -> _Tally:
    """One run: draw its requests and loans, then play them through a SimPy store."""
    arrivals_rng, loans_rng, upkeep_rng = (_stream(seeds, k) for k in range(3))
    horizon = WARMUP_S + measured_s
    times, absent = _arrival_times(demand, policy.demand_scale, horizon, arrivals_rng)
    loans = demand.loan.sample(loans_rng, times.size) * policy.loan_scale
    if policy.max_loan_s is not None:
        loans = np.minimum(loans, policy.max_loan_s)
    loans[absent] = policy.no_show_hold_s
    env = simpy.Environment()
    store = _Store(env, simpy.PriorityResource(env, capacity=policy.items),
                   (WARMUP_S, horizon), policy.patience_s)
    share = out_of_service_share(demand, policy)
    if share > 0:
        repair_s = demand.out_of_service_mean_s or DEFAULT_REPAIR_S
        for _ in range(policy.items):
            env.process(_upkeep(env, store.pool, share, repair_s, upkeep_rng))
    env.process(store.arrivals(times, loans, absent))
    env.run(until=horizon)
    if store.waiting:  # those still at the desk are decided before the run ends
        store.settled = env.event()
        env.run(until=store.settled)
    return store.tally


def _stream(seeds: np.random.SeedSequence, index: int) -> np.random.Generator:
    """The run's `index`th random stream. Unlike `seeds.spawn`, which counts the children it
    has made, this gives the same stream however often it is asked: a run is its seed."""
    return np.random.default_rng(np.random.SeedSequence(seeds.entropy,
                                                        spawn_key=(*seeds.spawn_key, index)))


def _arrival_times(demand: DemandModel, scale: float, horizon: float,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Arrival times (seconds from Monday 00:00) of requests, a Poisson count per hour at that
    hour-of-week's rate spread uniformly in the hour, and which are bookings nobody collects."""
    hours = math.ceil(horizon / HOUR_S)
    rates = np.array([rate.value for rate in demand.rates]) * scale
    counts = rng.poisson(rates[np.arange(hours) % SLOTS])
    starts = np.repeat(np.arange(hours) * HOUR_S, counts)
    times = np.sort(starts + rng.uniform(0, HOUR_S, starts.size))
    absent = rng.random(times.size) < demand.booking_share * demand.no_show.value
    inside = times < horizon
    return times[inside], absent[inside]


def _upkeep(env: simpy.Environment, pool: simpy.PriorityResource, share: float,
            repair_s: float, rng: np.random.Generator) -> Generator[simpy.Event, object, None]:
    """One item's service: in use for an exponential spell (mean chosen so that it is out
    `share` of the time), then, once it is on the shelf, out of service for an exponential
    spell of mean `repair_s`. It starts out of service with probability `share`."""
    up_s = repair_s * (1 - share) / share
    out = rng.random() < share
    while True:
        if not out:
            yield env.timeout(rng.exponential(up_s))
        with pool.request(priority=UPKEEP) as taken:
            yield taken
            yield env.timeout(rng.exponential(repair_s))
        out = False


def _service_level(tallies: Sequence[_Tally], items: int, measured_s: float, level: float,
                   seed: int) -> ServiceLevel:
    """The runs' tallies as shares and means with their t-intervals over the runs."""
    requests = [float(t.requests) for t in tallies]
    return ServiceLevel(
        met_at_once=ratio_interval([t.at_once for t in tallies], requests, level, high=1.0,
                                   empty=1.0),
        mean_wait_s=ratio_interval([t.waited_s for t in tallies],
                                   [float(t.waiters) for t in tallies], level, high=math.inf),
        refused=ratio_interval([t.refused for t in tallies], requests, level, high=1.0),
        utilisation=ratio_interval([t.loaned_s for t in tallies],
                                   [items * measured_s] * len(tallies), level, high=1.0),
        runs=len(tallies), seed=seed,
        requests_per_run=sum(requests) / len(tallies))


def ratio_interval(parts: Sequence[float], wholes: Sequence[float], level: float, *,
                   high: float, empty: float = 0.0) -> Estimate:
    """Sum of `parts` over sum of `wholes` across the runs, with its Student-t interval over
    the runs (the ratio estimator's: residuals part - ratio * whole). Pooling rather than
    averaging each run's own ratio keeps busy runs at their weight: a run with more requests
    also has more waits and refusals, and a mean of per-run shares would run low. Nothing to
    divide by at all gives `empty` (every request met when none came). Kept within [0, high].
    """
    part, whole = np.asarray(parts, dtype=float), np.asarray(wholes, dtype=float)
    if whole.sum() == 0:
        return Estimate(empty, empty, empty, level)
    ratio = float(part.sum() / whole.sum())
    spread = np.std(part - ratio * whole, ddof=1) / (math.sqrt(len(part)) * whole.mean())
    half = float(stats.t.ppf((1 + level) / 2, len(part) - 1) * spread)
    return Estimate(ratio, max(0.0, ratio - half), min(high, ratio + half), level)
