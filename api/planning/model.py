"""What pool planning reads and what it answers: plain values, with no database in them.

`api.planning.history` turns an agency's recorded history (check-outs and check-ins, refusals
for "none in store", bookings, out-of-service periods) into a `PoolHistory`; the analysis
(`demand`, `simulate`, `sizing`, `replay`) works on these values only, so it can be tested on
generated histories whose demand is known and run on a year of one store in seconds. Nothing
here writes to the custody log.

All times are aware UTC datetimes; durations are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

RequestSource = Literal["check_out", "none_in_store", "booking"]
"""Where a request for an item came from: a check-out that was met, an officer told "none in
store" at the desk (unmet demand), or a booking for a planned operation."""


@dataclass(frozen=True, slots=True)
class Request:
    """One person asking the store for one item of a class at `at`.

    `held_s` is how long the item was kept when the request was met (None while it is still out
    at the end of the period, or when the request was not met). `no_show` marks a booking that
    nobody collected.
    """

    at: datetime
    site_id: str
    class_id: str
    agency_id: str
    source: RequestSource
    met: bool
    held_s: float | None = None
    no_show: bool = False


@dataclass(frozen=True, slots=True)
class OutOfService:
    """An item of the pool unavailable from `start` to `end` (None: still out of service).
    `agency_id` is the item's agency (ids are per agency; None: the pool's one agency)."""

    asset_id: str
    start: datetime
    end: datetime | None
    agency_id: str | None = None


@dataclass(frozen=True, slots=True)
class PoolHistory:
    """Everything recorded about one pool (one or more sites, one class) over [start, end)."""

    agency_ids: tuple[str, ...]
    site_ids: tuple[str, ...]
    class_id: str
    start: datetime
    end: datetime
    pool_size: int
    """Items of the class registered at those sites, not retired, at the end of the period."""
    requests: tuple[Request, ...] = ()
    out_of_service: tuple[OutOfService, ...] = ()


@dataclass(frozen=True, slots=True)
class Estimate:
    """A fitted figure with its confidence interval at `level` (e.g. 0.95)."""

    value: float
    low: float
    high: float
    level: float = 0.95


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """The rules of a simulated store.

    `items`: how many items are in the pool. `max_loan_s`: loans are returned by then at the
    latest (None: as the history shows). `patience_s`: how long a person waits at the desk for
    an item before leaving without (0: served at once or not at all). `demand_scale`: multiplies
    arrival rates (3.0 for a surge). `loan_scale`: multiplies loan durations (a longer or
    shorter loan rule). `out_of_service_share`: the share of items unavailable at any time
    (None: as fitted). `no_show_hold_s`: how long an item is kept aside for a booking nobody
    collects (0: a no-show asks for nothing).
    """

    items: int
    max_loan_s: float | None = None
    patience_s: float = 0.0
    demand_scale: float = 1.0
    loan_scale: float = 1.0
    out_of_service_share: float | None = None
    no_show_hold_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ServiceLevel:
    """What a simulated (or replayed) pool gave: the share of requests met at once, the mean wait
    of those who waited, the share refused, and the mean share of items out on loan, each with
    its interval over repeated runs."""

    met_at_once: Estimate
    mean_wait_s: Estimate
    refused: Estimate
    utilisation: Estimate
    runs: int
    seed: int
    requests_per_run: float


@dataclass(frozen=True, slots=True)
class SizingRow:
    """One line of the sizing table: a pool size and the service level it gives."""

    items: int
    service: ServiceLevel


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """A recorded period replayed through a changed pool: each request and whether the changed
    pool would have met it."""

    policy: PoolPolicy
    requests: tuple[Request, ...]
    met: tuple[bool, ...]
    waited_s: tuple[float, ...] = field(default=())

    @property
    def refused(self) -> tuple[Request, ...]:
        """The requests the changed pool would have refused."""
        return tuple(r for r, ok in zip(self.requests, self.met, strict=True) if not ok)
