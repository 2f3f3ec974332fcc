"""How far a custody event's time may lie from the reads that justify it.

An event's `time` is the API's clock when the custody rules ruled on a read, not the read's own
time. A reader buffers its observations in its durable outbox while it is offline and publishes
them when it is back, so a read may be ruled on long after it was made; and a reader's clock
may run a little ahead of the API's. The API's ingest refuses reads outside exactly this
window (`api.config.Settings.max_observation_age_s` and `max_future_skew_s` are bounded by these
constants, and default to them), so no event it logs cites a read outside it, however it is
configured. The desk session timeout and the hold limit for reads awaiting their badge are
shorter than `MAX_READ_AGE` and are measured on the API's clock, not the read's: they bound
nothing a bundle can show.

The ledger never imports the API: tests/ledger/test_read_window.py holds the two together.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

MAX_READ_AGE: Final = timedelta(days=7)
"""A cited read may be at most this much older than the event: the longest a reader's outbox
holds a read (ingest refuses older ones)."""

MAX_READ_AHEAD: Final = timedelta(seconds=120)
"""A cited read may be at most this much later than the event: a reader clock running ahead of
the API's (ingest refuses reads further in its future)."""
