"""How much of a pool was out on loan over a recorded period: the series behind a "utilisation
over time" chart, read from the same `PoolHistory` the demand is fitted from.

Each met request holds an item from its time for its recorded `held_s`; a loan still out when
the record ends runs to the end. The answer is the mean number of items out in each step of the
period (time-weighted, so a loan of ten minutes counts a sixth of an hour), computed from
sorted loan starts and ends with cumulative sums: a year of loans in hourly steps takes
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from api.planning import checks
from api.planning.model import PoolHistory


@dataclass(frozen=True, slots=True)
class LoanStep:
    """One step of the period: from `start` for `seconds`, `items` out on average, which is
    `share` of the pool (None for a pool of no items)."""

    start: datetime
    seconds: float
    items: float
    share: float | None


def items_on_loan(history: PoolHistory, step_s: float = 3600.0) -> tuple[LoanStep, ...]:
    """The mean number of items on loan in each `step_s`-second step of the history's period
    (the last step may be shorter)."""
    checks.finite("step_s", step_s, strict=True)
    start, end = checks.aware("start", history.start), checks.aware("end", history.end)
    period = (end - start).total_seconds()
    if period <= 0:
        raise ValueError("the history's period must end after it starts")
    if period / step_s > 1_000_000:
        raise ValueError(f"{period / step_s:,.0f} steps is too many: choose a longer step")
    begins, ends = _loans(history, start, period)
    edges = np.append(np.arange(0.0, period, step_s), period)
    loaned = _loaned_by(edges, begins) - _loaned_by(edges, ends)
    widths = np.diff(edges)
    means = np.diff(loaned) / widths
    return tuple(LoanStep(start=start + timedelta(seconds=float(at)), seconds=float(width),
                          items=float(mean),
                          share=float(mean) / history.pool_size if history.pool_size else None)
                 for at, width, mean in zip(edges[:-1], widths, means, strict=True))


def _loans(history: PoolHistory, start: datetime,
           period: float) -> tuple[np.ndarray, np.ndarray]:
    """Sorted starts and sorted ends (seconds from `start`, clipped to the period) of the
    recorded loans."""
    begins, ends = [], []
    for index, request in enumerate(history.requests):
        if not request.met or request.no_show:
            continue
        at = (checks.aware(f"request {index} time", request.at) - start).total_seconds()
        held = period if request.held_s is None else checks.finite(f"request {index} held_s",
                                                                   request.held_s)
        begins.append(min(max(at, 0.0), period))
        ends.append(min(max(at + held, 0.0), period))
    return np.sort(np.array(begins)), np.sort(np.array(ends))


def _loaned_by(edges: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """For each edge t: the sum over `moments` m before t of (t - m), the item-seconds a set of
    loans starting (or ending) at `moments` has run by t."""
    before = np.searchsorted(moments, edges, side="right")
    running = np.concatenate(([0.0], np.cumsum(moments)))
    return edges * before - running[before]
