"""The verifier's window between an event and its reads (`ledger.core.read_window`) holds
whatever the API is configured to accept: ingest's clock bounds are the window at most, so
every event the API logs cites reads the verifier accepts. The ledger never imports the API;
this test holds the two together."""

from __future__ import annotations

from datetime import timedelta

from annotated_types import Ge, Le

from api.config import Settings
from api.custody.batch import DESK_SESSION_TIMEOUT
from api.custody.pending import HOLD_LIMIT
from ledger.core.read_window import MAX_READ_AGE, MAX_READ_AHEAD


def _bounds(name: str) -> tuple[int, int, int]:
    field = Settings.model_fields[name]
    low = next(m.ge for m in field.metadata if isinstance(m, Ge))
    high = next(m.le for m in field.metadata if isinstance(m, Le))
    assert isinstance(field.default, int)
    return int(low), field.default, int(high)


def test_ingest_accepts_no_read_older_than_the_window() -> None:
    low, default, high = _bounds("max_observation_age_s")
    assert low <= default <= high
    assert timedelta(seconds=high) <= MAX_READ_AGE


def test_ingest_accepts_no_read_further_ahead_than_the_window() -> None:
    low, default, high = _bounds("max_future_skew_s")
    assert low <= default <= high
    assert timedelta(seconds=high) <= MAX_READ_AHEAD


def test_a_read_held_for_its_badge_is_ruled_on_inside_the_window() -> None:
    # A read held for its badge, then let into a desk session at its timeout's end, is still
    # ruled on long before the window closes.
    assert HOLD_LIMIT + DESK_SESSION_TIMEOUT < MAX_READ_AGE
