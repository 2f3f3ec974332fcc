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

from api.planning import checks
from api.planning.demand import DemandModel, combine
from api.planning.model import PoolPolicy, SizingRow
from api.planning.simulate import out_of_service_share, simulate

ANY_SIZE = PoolPolicy(items=1)
"""The default rules of a sizing search: the store as recorded (the search sets `items`)."""
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
    times the mean loan in hours (the cap, when there is one, bounds the mean)."""
    asking = 1 - demand.booking_share * demand.no_show.value
    rate = demand.mean_rate_per_h * policy.demand_scale * asking
    loan_h = demand.loan.mean_s.value * policy.loan_scale / 3600
    if policy.max_loan_s is not None:
        loan_h = min(loan_h, policy.max_loan_s / 3600)
    return rate * loan_h


def erlang_guess(demand: DemandModel, policy: PoolPolicy, target: float) -> int:
    """The smallest pool Erlang B says meets `target`, grown by the out-of-service share."""
    load = offered_load(demand, policy)
    servers = 1
    while erlang_b(servers, load) > 1 - target:
        servers += 1
    return max(1, math.ceil(servers / (1 - out_of_service_share(demand, policy))))


def service_table(demand: DemandModel, policy: PoolPolicy, sizes: Iterable[int],
                  simulation: Simulation = Simulation()) -> list[SizingRow]:
    """The service level of each pool size in `sizes` under `policy`'s other rules."""
    return [_row(demand, policy, items, simulation) for items in sizes]


def smallest_pool(demand: DemandModel, target: float = 0.99,
                  policy: PoolPolicy = ANY_SIZE,
                  simulation: Simulation = Simulation(), *,
                  max_items: int = 10_000) -> SizingRow:
    """The smallest pool (policy's rules, any `items`) whose share met at once reaches `target`.

    From the Erlang guess it doubles its step up (or down) until it brackets the answer, then
    halves the bracket: a dozen simulations rather than one per size. Common random numbers
    make the share met grow with the pool, so the pool one smaller than the answer falls short.
    """
    checks.share("target", target)
    checks.count("max_items", max_items, low=1)
    rows: dict[int, SizingRow] = {}

    def meets(items: int) -> bool:
        if items not in rows:
            rows[items] = _row(demand, policy, items, simulation)
        return rows[items].service.met_at_once.value >= target

    low, high = _bracket(meets, min(erlang_guess(demand, policy, target), max_items), max_items)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if meets(middle) else (middle, high)
    return rows[high] if high in rows else _row(demand, policy, high, simulation)


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


def _row(demand: DemandModel, policy: PoolPolicy, items: int,
         simulation: Simulation) -> SizingRow:
    """One sizing row: `policy` with `items` items, simulated."""
    service = simulate(demand, replace(policy, items=items), days=simulation.days,
                       runs=simulation.runs, seed=simulation.seed, level=simulation.level)
    return SizingRow(items=items, service=service)


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
