"""Limits on failed authentication: per address and per API client id, answered with 429.

Only failures count (a wrong, unknown, revoked or expired key, a wrong metrics key): a busy
client with a good key is never slowed. Once an address, or a client id named in the keys
tried, has failed `auth_failure_limit` times within `auth_failure_window_s`, every attempt
from it (a good key included) is answered 429 with `Retry-After` until the oldest failure
leaves the moving window. Keys have 256 random bits, so this is not what stops guessing; it
stops a scanner from hammering the key check and the database behind it, and makes a stolen
but revoked key noisy to retry.

The counting is the `limits` library's moving window, held in memory: it fits the
"check first, count only failures" use (`test` before, `hit` on failure), which request-count
limiters such as slowapi do not. The memory is per process: with `serve --workers N` an
address gets up to N times the limit, once per worker.
"""

from __future__ import annotations

import math
import re
import time
from typing import Final

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

_CLIENT_ID: Final = re.compile(r"kl_([0-9a-f]{16})_")
"""The client id inside a key (`kl_<id>_<secret>`), counted whether or not the rest is right."""


def claimed_client_id(key: str) -> str | None:
    """The client id a presented key names, if it has the shape of one."""
    match = _CLIENT_ID.match(key)
    return match.group(1) if match else None


class FailedAuthLimiter:
    """Counts authentication failures per address and per claimed client id."""

    def __init__(self, attempts: int, window_s: int) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item: RateLimitItem = RateLimitItemPerSecond(attempts, window_s)

    def _keys(self, address: str, client_id: str | None) -> list[tuple[str, str]]:
        keys = [("address", address)]
        if client_id is not None:
            keys.append(("client", client_id))
        return keys

    def retry_after(self, address: str, client_id: str | None = None) -> int | None:
        """Seconds until the address and client id may try again, or None if they may now."""
        waits = []
        for kind, value in self._keys(address, client_id):
            if not self._limiter.test(self._item, kind, value):
                reset = self._limiter.get_window_stats(self._item, kind, value).reset_time
                waits.append(max(1, math.ceil(reset - time.time())))
        return max(waits) if waits else None

    def failed(self, address: str, client_id: str | None = None) -> None:
        """Count one failed attempt against the address and the claimed client id."""
        for kind, value in self._keys(address, client_id):
            self._limiter.hit(self._item, kind, value)
