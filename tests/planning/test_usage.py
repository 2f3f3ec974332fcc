"""Items on loan over a recorded period, against loans worked by hand and against a brute-force
sum on a generated year."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import timedelta

import pytest

from api.planning.model import PoolHistory, Request
from api.planning.usage import items_on_loan
from tests.planning.demands import HOUR, MONDAY, store_history


def loan(hours: float, held_h: float | None, *, met: bool = True) -> Request:
    return Request(at=MONDAY + timedelta(hours=hours), site_id="s", class_id="radio",
                   agency_id="a", source="check_out", met=met,
                   held_s=None if held_h is None else held_h * HOUR)


def test_loans_by_hand() -> None:
    history = PoolHistory(agency_ids=("a",), site_ids=("s",), class_id="radio", start=MONDAY,
                          end=MONDAY + timedelta(hours=4, minutes=30), pool_size=2, requests=(
        loan(0.5, 1.0),          # half of hour 0, half of hour 1
        loan(1.0, None),         # still out: hour 1 to the end
        loan(2.0, 0.25),         # a quarter of hour 2
        loan(3.0, 9.0, met=False)))  # refused: nothing out
    steps = items_on_loan(history)
    assert [s.items for s in steps] == pytest.approx([0.5, 1.5, 1.25, 1.0, 1.0])
    assert [s.seconds for s in steps] == [HOUR] * 4 + [HOUR / 2]
    assert steps[1].share == pytest.approx(0.75)
    assert steps[4].start == MONDAY + timedelta(hours=4)
    assert items_on_loan(replace(history, pool_size=0))[0].share is None


def test_a_generated_month_matches_a_brute_force_sum() -> None:
    history = store_history(2, pool_size=6)
    steps = items_on_loan(history, step_s=6 * HOUR)
    end = history.end
    for step in steps[::7]:
        finish = step.start + timedelta(seconds=step.seconds)
        total = 0.0
        for r in history.requests:
            if not r.met:
                continue
            returned = end if r.held_s is None else r.at + timedelta(seconds=r.held_s)
            overlap = (min(returned, finish) - max(r.at, step.start)).total_seconds()
            total += max(0.0, overlap)
        assert step.items == pytest.approx(total / step.seconds, abs=1e-9)
        assert 0 <= step.items <= 6


@pytest.mark.parametrize(("step_s", "message"), [(0, "step_s must be above 0"),
                                                 (math.nan, "finite"),
                                                 (0.001, "too many")])
def test_bad_steps(step_s: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        items_on_loan(store_history(0, days=7), step_s)


def test_bad_periods_and_loans() -> None:
    history = store_history(0, days=7)
    with pytest.raises(ValueError, match="end after it starts"):
        items_on_loan(replace(history, end=history.start))
    broken = (replace(history.requests[0], held_s=-1.0), *history.requests[1:])
    with pytest.raises(ValueError, match="held_s must be at least 0"):
        items_on_loan(replace(history, requests=broken))
