"""The checks every planning analysis makes of what it is given, so that a bad figure from a
form, a query string or a hand-made history fails with one clear `ValueError` naming the field,
rather than with a NaN in a chart or a SciPy traceback deep in a fit."""

from __future__ import annotations

import math
from datetime import datetime

from api.planning.model import PoolPolicy

MAX_ITEMS = 100_000
"""The largest pool planned: far above any store, low enough that a typo cannot exhaust memory
(the simulated store keeps one maintenance process per item)."""


def finite(name: str, value: float, *, low: float = 0.0, strict: bool = False) -> float:
    """`value` as a float if it is a finite number at least `low` (above it when `strict`)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, not {number}")
    if number < low or (strict and number == low):
        raise ValueError(f"{name} must be {'above' if strict else 'at least'} {low:g}, "
                         f"not {number:g}")
    return number


def level(value: float) -> float:
    """A confidence level: strictly between 0 and 1 (0.95 for 95 %)."""
    checked = finite("level", value, strict=True)
    if checked >= 1.0:
        raise ValueError(f"level must be below 1 (0.95 for 95 %), not {checked:g}")
    return checked


def share(name: str, value: float, *, strict: bool = False) -> float:
    """A share of a whole: from 0 (above it when `strict`) up to, but not including, 1."""
    checked = finite(name, value, strict=strict)
    if checked >= 1.0:
        raise ValueError(f"{name} must be below 1, not {checked:g}")
    return checked


def count(name: str, value: int, *, low: int = 0, high: int | None = None) -> int:
    """A whole number from `low` to `high` (bools are refused: `True` is not a pool size)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be a whole number, not {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, not {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be at most {high:,}, not {value:,}")
    return value


def aware(name: str, moment: datetime) -> datetime:
    """`moment` if it carries its time zone: planning compares instants, never wall clocks."""
    if not isinstance(moment, datetime):
        raise ValueError(f"{name} must be a datetime, not {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware (UTC) datetime, not a naive one")
    return moment


def policy(rules: PoolPolicy) -> PoolPolicy:
    """`rules` if a store could run by them: at least one item, positive scales, a loan cap
    above zero, patience and no-show holds not negative, an out-of-service share below 1."""
    count("items", rules.items, low=1, high=MAX_ITEMS)
    finite("patience_s", rules.patience_s)
    finite("no_show_hold_s", rules.no_show_hold_s)
    finite("demand_scale", rules.demand_scale, strict=True)
    finite("loan_scale", rules.loan_scale, strict=True)
    if rules.max_loan_s is not None:
        finite("max_loan_s", rules.max_loan_s, strict=True)
    if rules.out_of_service_share is not None:
        share("out_of_service_share", rules.out_of_service_share)
    return rules
