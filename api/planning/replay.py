"""A recorded period replayed through a changed pool: the same requests at the same times, each
kept as long as it was (under the changed loan rule), and which a pool of `policy.items` would
have met or refused. No randomness: the same requests and policy always give the same answer.

Holding times: a met request keeps its item for its recorded `held_s`; one still out at the end
of the record keeps it to the end; a request the store refused ("none in store") was never lent
anything, so it keeps the item for `held_default_s` (by default the median recorded loan). A
booking nobody collected is met: it keeps an item aside for the policy's `no_show_hold_s` if
one is on the shelf, and nobody waits for it. With `patience_s` > 0 a request that finds
the shelf empty waits, first come first served, for the first item back within its patience.
An item returned at the very instant of a request is back in time for it. The policy's
out-of-service share takes that share of the pool (rounded) off the shelf for the whole replay.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from api.planning import checks
from api.planning.model import PoolPolicy, ReplayOutcome, Request


@dataclass(slots=True)
class _Desk:
    """The replay's state: items on the shelf, loans due back, people waiting, and outcomes."""

    free: int
    patience_s: float
    met: list[bool]
    waited_s: list[float]
    due_back: list[float] = field(default_factory=list)
    """When each item out comes back (a heap: the next one first)."""
    waiting: deque[tuple[int, float, float]] = field(default_factory=deque)
    """(request index, arrival time, hold), first come first served."""

    def returns_until(self, moment: float) -> None:
        """Take back every item due by `moment`, each to the first person still waiting."""
        while self.due_back and self.due_back[0] <= moment:
            back = heapq.heappop(self.due_back)
            self.give_up_before(back)
            if self.waiting:
                index, at, hold = self.waiting.popleft()
                self.met[index], self.waited_s[index] = True, back - at
                self.lend(back, hold)
            else:
                self.free += 1

    def give_up_before(self, moment: float) -> None:
        """Those whose patience ran out before `moment` leave without an item."""
        while self.waiting and self.waiting[0][1] + self.patience_s < moment:
            index, _, _ = self.waiting.popleft()
            self.waited_s[index] = self.patience_s

    def ask(self, index: int, at: float, hold: float) -> None:
        """Request `index` at `at`: lent at once, left to wait, or refused."""
        self.give_up_before(at)
        if self.free > 0:
            self.free -= 1
            self.met[index] = True
            self.lend(at, hold)
        elif self.patience_s > 0:
            self.waiting.append((index, at, hold))

    def set_aside(self, at: float, hold: float) -> None:
        """Keep an item aside from `at` for `hold` seconds, if one is on the shelf."""
        if hold > 0 and self.free > 0:
            self.free -= 1
            self.lend(at, hold)

    def lend(self, at: float, hold: float) -> None:
        """An item goes out at `at` for `hold` seconds (forever: infinite)."""
        heapq.heappush(self.due_back, at + hold)


def replay(requests: Sequence[Request], policy: PoolPolicy, *,
           held_default_s: float | None = None) -> ReplayOutcome:
    """`requests` (in time order; ties keep their given order) served by a pool run by
    `policy`. `held_default_s` (seconds) is how long a request the store refused would have
    kept its item; None: the median of the recorded loans."""
    checks.policy(policy)
    classes = {r.class_id for r in requests}
    if len(classes) > 1:
        raise ValueError(f"a pool lends one class; the requests ask for {len(classes)}: "
                         f"{', '.join(sorted(map(repr, classes))[:5])}")
    ordered = sorted(requests, key=lambda r: checks.aware("request time", r.at))
    holds = _holds(ordered, policy, _default_hold(ordered, held_default_s))
    share = policy.out_of_service_share or 0.0
    desk = _Desk(free=policy.items - round(policy.items * share), patience_s=policy.patience_s,
                 met=[False] * len(ordered), waited_s=[0.0] * len(ordered))
    times = [(r.at - ordered[0].at).total_seconds() for r in ordered]
    for index, (request, at, hold) in enumerate(zip(ordered, times, holds, strict=True)):
        desk.returns_until(at)
        if request.no_show:
            desk.met[index] = True
            desk.set_aside(at, hold)
        else:
            desk.ask(index, at, hold)
    desk.returns_until(math.inf)
    desk.give_up_before(math.inf)
    return ReplayOutcome(policy=policy, requests=tuple(ordered), met=tuple(desk.met),
                         waited_s=tuple(desk.waited_s))


def _default_hold(requests: Sequence[Request], given: float | None) -> float:
    """How long a refused request would have kept its item: `given`, else the median loan."""
    if given is not None:
        return checks.finite("held_default_s", given, strict=True)
    recorded = [r.held_s for r in requests if r.met and r.held_s is not None]
    if recorded:
        return statistics.median(recorded)
    if any(not r.met and not r.no_show for r in requests):
        raise ValueError("no recorded loan to hold refused requests for: give held_default_s")
    return 0.0


def _holds(requests: Sequence[Request], policy: PoolPolicy, default_s: float) -> list[float]:
    """Each request's holding time (seconds) under the policy's loan rule."""
    holds = []
    for index, request in enumerate(requests):
        if request.no_show:
            holds.append(policy.no_show_hold_s)
            continue
        if not request.met:
            hold = default_s
        elif request.held_s is None:
            hold = math.inf  # still out when the record ends
        else:
            hold = checks.finite(f"request {index} held_s", request.held_s)
        hold *= policy.loan_scale
        holds.append(hold if policy.max_loan_s is None else min(hold, policy.max_loan_s))
    return holds
