"""Benchmark: a year of one store's history planned end to end (issue 27: "in seconds").

    .venv/bin/python bench/planning.py [--runs 3] [--days 365]

Generates a year of a busy store's requests (about 40 a day, most between 07:00 and 19:00 on
weekdays, lognormal loans of 4 hours on average, 20 items, so peak hours see refusals), then
times each step of an analysis: the demand fit, the sizing table for 10 to 30 items (the
simulated store at its defaults: 20 runs of 28 days each), the smallest pool for 99 % met at
once, and the replay of the whole year through 15 and 25 items. Prints the figures, then the
median wall and CPU time of each step over the runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

from api.planning.demand import SLOTS, DemandModel, fit_demand
from api.planning.model import PoolHistory, PoolPolicy, ReplayOutcome, SizingRow
from api.planning.replay import replay
from api.planning.sizing import forget_simulations, service_table, smallest_pool
from api.planning.synthetic import generated_history

T = TypeVar("T")
START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday
ITEMS = 20


def _rates() -> tuple[float, ...]:
    """Busy weekdays 07-19, a quieter weekend day shift, a trickle at night: ~40 a day."""
    def rate(slot: int) -> float:
        day, hour = divmod(slot, 24)
        if 7 <= hour < 19:
            return 4.2 if day < 5 else 1.5
        return 0.3
    return tuple(rate(slot) for slot in range(SLOTS))


def _timed(step: Callable[[], T], runs: int) -> tuple[tuple[float, float], T]:
    """The median wall and CPU seconds of `runs` calls of `step`, and its last answer. CPU time
    is the figure to compare on a shared machine: wall time includes waiting for a core. Each
    call starts with no simulated rows kept, as a first plan of a store would."""
    wall, cpu, answer = [], [], None
    for _ in range(runs):
        forget_simulations()
        began, began_cpu = time.perf_counter(), time.process_time()
        answer = step()
        wall.append(time.perf_counter() - began)
        cpu.append(time.process_time() - began_cpu)
    assert answer is not None
    return (statistics.median(wall), statistics.median(cpu)), answer


def _print_table(rows: list[SizingRow]) -> None:
    print(f"{'items':>5}  {'met at once':>22}  {'utilisation':>11}")
    for row in rows:
        met = row.service.met_at_once
        print(f"{row.items:5d}  {met.value:7.2%} [{met.low:6.2%}, {met.high:6.2%}]"
              f"  {row.service.utilisation.value:11.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    history: PoolHistory = generated_history(_rates(), start=START, days=args.days,
                                             pool_size=ITEMS, loan_mean_s=4 * 3600, seed=1)
    refused = sum(not r.met for r in history.requests)
    print(f"history: {len(history.requests)} requests over {args.days} days "
          f"({len(history.requests) / args.days:.1f} a day), {refused} told none in store, "
          f"{ITEMS} items")
    steps: list[tuple[str, tuple[float, float]]] = []
    fit_s, demand = _timed(lambda: fit_demand(history), args.runs)
    steps.append(("fit demand", fit_s))
    table_s, rows = _timed(lambda: service_table(demand, PoolPolicy(items=1), range(10, 31)),
                           args.runs)
    steps.append(("sizing table, 10-30 items", table_s))
    smallest_s, smallest = _timed(lambda: smallest_pool(demand, 0.99), args.runs)
    steps.append(("smallest pool for 99 %", smallest_s))
    replays: dict[int, ReplayOutcome] = {}
    for items in (15, 25):
        replay_s, replays[items] = _timed(
            partial(replay, history.requests, PoolPolicy(items=items)), args.runs)
        steps.append((f"replay of the year, {items} items", replay_s))
    _report(demand, rows, smallest, replays, steps, args.runs)


def _report(demand: DemandModel, rows: list[SizingRow], smallest: SizingRow,
            replays: dict[int, ReplayOutcome], steps: list[tuple[str, tuple[float, float]]],
            runs: int) -> None:
    """The figures, then the timings."""
    loan = demand.loan
    print(f"loans: {loan.family}, mean {loan.mean_s.value / 3600:.2f} h "
          f"[{loan.mean_s.low / 3600:.2f}, {loan.mean_s.high / 3600:.2f}] from {loan.loans}")
    print(f"requests per hour, weekday noon: {demand.rates[12].value:.2f} "
          f"[{demand.rates[12].low:.2f}, {demand.rates[12].high:.2f}]")
    _print_table(rows)
    print(f"smallest pool meeting 99 %: {smallest.items} items "
          f"({smallest.service.met_at_once.value:.2%} met at once)")
    for items, outcome in replays.items():
        print(f"the year replayed through {items} items: {len(outcome.refused)} refused")
    print(f"median of {runs} runs: {'wall':>9} {'cpu':>9}")
    for name, (wall, cpu) in steps:
        print(f"  {name:32} {wall:7.2f} s {cpu:7.2f} s")
    print(f"  {'total':32} {sum(w for _, (w, _) in steps):7.2f} s "
          f"{sum(c for _, (_, c) in steps):7.2f} s")


if __name__ == "__main__":
    main()
