"""How many items a pool needs: the sizing table, the smallest pool meeting a service level, and
the what-ifs (pooling two pools, a surge, a changed loan rule).

A pool "meets" a target when the simulated share of requests met at once is at least the
target. The search starts from the Erlang loss formula (Erlang B), which is exact for steady
Poisson arrivals and a pool nobody waits for; real demand peaks by hour, so the simulation has
the last word and the search moves from the guess until the pool one item smaller fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from itertools import islice

from api.planning import checks
from api.planning.checks import MAX_ITEMS
from api.planning.demand import DemandModel, combine
from api.planning.model import PoolPolicy, SizingRow
from api.planning.simulate import out_of_service_share, simulate

ANY_SIZE = PoolPolicy(items=1)
"""The default rules of a sizing search: the store as recorded (the search sets `items`)."""
MAX_ROWS = 200
"""The longest sizing table: each row is a simulation."""
ROWS_KEPT = 1024
"""Simulated rows kept for reuse. A row is small; each key holds its demand model alive (tens
of kilobytes), which a plan's few dozen rows share."""
SURGE = 3.0
"""A planned operation's demand, as a multiple of the usual (the issue's "three times")."""


@dataclass(frozen=True, slots=True)
class Simulation:
    """How each simulated figure is made: measured days per run, runs, seed, interval level."""

    days: float = 28
    runs: int = 20
    seed: int = 0
    level: float = 0.95


@dataclass(frozen=True, slots=True)
class PoolingSaving:
    """Two pools sized each on their own, and as one shared pool: `saving` items fewer."""

    a: SizingRow
    b: SizingRow
    pooled: SizingRow

    @property
    def saving(self) -> int:
        """Items the shared pool needs fewer than the two separate ones together."""
        return self.a.items + self.b.items - self.pooled.items


def erlang_b(servers: int, offered_load: float) -> float:
    """The Erlang loss formula: the share of requests refused by `servers` items when requests
    arrive as a steady Poisson stream offering `offered_load` erlangs (arrival rate times mean
    loan) and nobody waits. Computed by the recursion B(n) = A B(n-1) / (n + A B(n-1)), which
    stays within [0, 1] for any size, where the factorial form overflows."""
    checks.count("servers", servers)
    load = checks.finite("offered_load", offered_load)
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def offered_load(demand: DemandModel, policy: PoolPolicy) -> float:
    """Erlangs the demand offers a pool under `policy`: requests per hour that ask for an item
    times the mean loan in hours (the cap, when there is one, bounds the mean), plus the hours
    items are kept aside for bookings nobody collects."""
    absent = demand.booking_share * demand.no_show.value
    rate = demand.mean_rate_per_h * policy.demand_scale
    loan_h = demand.loan.mean_s.value * policy.loan_scale / 3600
    if policy.max_loan_s is not None:
        loan_h = min(loan_h, policy.max_loan_s / 3600)
    return rate * ((1 - absent) * loan_h + absent * policy.no_show_hold_s / 3600)


def erlang_guess(demand: DemandModel, policy: PoolPolicy, target: float, *,
                 limit: int = MAX_ITEMS) -> int:
    """The smallest pool Erlang B says meets `target`, grown by the out-of-service share, and
    at most `limit`. It runs the recursion once, stopping at the first size that meets it, so a
    surge of thousands of erlangs costs thousands of steps, not millions."""
    checks.share("target", target, strict=True)
    load = offered_load(demand, policy)
    servers, blocking = 0, 1.0
    while blocking > 1 - target and servers < limit:
        servers += 1
        blocking = load * blocking / (servers + load * blocking)
    return min(limit, max(1, math.ceil(servers / (1 - out_of_service_share(demand, policy)))))


def service_table(demand: DemandModel, policy: PoolPolicy, sizes: Iterable[int],
                  simulation: Simulation = Simulation()) -> list[SizingRow]:
    """The service level of each pool size in `sizes` (at most `MAX_ROWS` of them) under
    `policy`'s other rules."""
    chosen = list(islice(sizes, MAX_ROWS + 1))
    if len(chosen) > MAX_ROWS:
        raise ValueError(f"a sizing table has at most {MAX_ROWS} sizes")
    return [_row(demand, policy, items, simulation) for items in chosen]


def current_service(demand: DemandModel, policy: PoolPolicy = ANY_SIZE,
                    simulation: Simulation = Simulation()) -> SizingRow:
    """The service level of the pool as recorded (`demand.pool_size` items) under `policy`'s
    other rules: the row the sizing table compares against."""
    return _row(demand, policy, checks.count("pool_size", demand.pool_size, low=1), simulation)


def smallest_pool(demand: DemandModel, target: float = 0.99,
                  policy: PoolPolicy = ANY_SIZE,
                  simulation: Simulation = Simulation(), *,
                  max_items: int = 10_000) -> SizingRow:
    """The smallest pool (policy's rules, any `items`) whose share met at once reaches `target`.

    From the Erlang guess it doubles its step up (or down) until it brackets the answer, then
    halves the bracket: a dozen simulations rather than one per size. Common random numbers
    make the share met grow with the pool, so the pool one smaller than the answer falls short.
    """
    checks.share("target", target, strict=True)
    checks.count("max_items", max_items, low=1, high=MAX_ITEMS)
    rows: dict[int, SizingRow] = {}

    def meets(items: int) -> bool:
        if items not in rows:
            rows[items] = _row(demand, policy, items, simulation)
        return rows[items].service.met_at_once.value >= target

    low, high = _bracket(meets, erlang_guess(demand, policy, target, limit=max_items),
                         max_items)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return rows[high]  # the bracket and the halving only end on sizes they simulated


def pooling_saving(demand_a: DemandModel, demand_b: DemandModel, target: float = 0.99,
                   policy: PoolPolicy = ANY_SIZE,
                   simulation: Simulation = Simulation()) -> PoolingSaving:
    """What sharing saves: the smallest pool for each demand alone and for both together."""
    return PoolingSaving(a=smallest_pool(demand_a, target, policy, simulation),
                         b=smallest_pool(demand_b, target, policy, simulation),
                         pooled=smallest_pool(combine(demand_a, demand_b), target, policy,
                                              simulation))


def surge(policy: PoolPolicy, factor: float = SURGE) -> PoolPolicy:
    """`policy` with demand `factor` times its own (a planned operation)."""
    checks.finite("factor", factor, strict=True)
    return replace(policy, demand_scale=policy.demand_scale * factor)


def loan_rule(policy: PoolPolicy, *, scale: float = 1.0,
              max_loan_s: float | None = None) -> PoolPolicy:
    """`policy` with loans `scale` times as long and, when given, returned by `max_loan_s`."""
    checks.finite("scale", scale, strict=True)
    if max_loan_s is not None:
        checks.finite("max_loan_s", max_loan_s, strict=True)
    return replace(policy, loan_scale=policy.loan_scale * scale,
                   max_loan_s=policy.max_loan_s if max_loan_s is None else max_loan_s)


@lru_cache(maxsize=ROWS_KEPT)
def _row(demand: DemandModel, policy: PoolPolicy, items: int,
         simulation: Simulation) -> SizingRow:
    """One sizing row: `policy` with `items` items, simulated.

    Kept (least recently used out first): a seeded simulation is a function of its inputs
    alone, so a plan's table, its smallest-pool searches and its what-ifs share the sizes they
    have in common, and the same history planned again is not simulated again.
    """
    service = simulate(demand, replace(policy, items=items), days=simulation.days,
                       runs=simulation.runs, seed=simulation.seed, level=simulation.level)
    return SizingRow(items=items, service=service)


def forget_simulations() -> None:
    """Drop the kept rows: a benchmark times simulations, not the memory of them."""
    _row.cache_clear()


def _bracket(meets: Callable[[int], bool], guess: int, max_items: int) -> tuple[int, int]:
    """(a size that falls short or 0, the next size known to meet) around `guess`."""
    step = 1
    if meets(guess):
        high = guess
        while high > 1:
            low = max(0, high - step)
            if low == 0 or not meets(low):
                return low, high
            high, step = low, step * 2
        return 0, 1
    low = guess
    while True:
        high = min(max_items, low + step)
        if meets(high):
            return low, high
        if high == max_items:
            raise ValueError(f"no pool of up to {max_items} items meets the target")
        low, step = high, step * 2
