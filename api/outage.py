"""Logging an outage once: a line when failures start, one when they end, few in between.

A database that is down fails every batch, scan and settle of every thread, several times a
second: logged one by one (with tracebacks) a 155 s outage wrote 1,514 error lines, and the
one line that mattered (when it started, why) drowned. An `Outage` logs the first failure of a
run (the reason, a traceback only at debug level), then at most one "still failing" line per
`REPEAT_S`, and when something succeeds again one line with how long it lasted. `DATABASE` is
the process's one tracker of the database, shared by every thread that uses it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Final

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

log = logging.getLogger("kitledger.outage")

REPEAT_S: Final = 60.0
"""At most one "still failing" line per this many seconds of an outage."""

MAX_REASON_CHARS: Final = 200
"""A reason is the error's type and the first line of its message, cut to this length."""


def reason_of(exc: BaseException) -> str:
    """`exc`'s type and the first line of its message: what an operator needs, no traceback
    (a database error's message names the server, never a password)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"[:MAX_REASON_CHARS] if first else type(exc).__name__


def unavailable_cause(exc: BaseException) -> BaseException | None:
    """The error in `exc`'s chain (itself, or one it was raised from or during) saying the
    database could not be reached or dropped the connection; None if there is none."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError) or (
                isinstance(current, DBAPIError) and current.connection_invalidated):
            return current
        current = current.__cause__ or current.__context__
    return None


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database is away rather than refusing what was asked of it."""
    return unavailable_cause(exc) is not None


class Outage:
    """One thing that can be down (`what`): `failed(exc, doing)` on each failure, `ok()` on
    each success; thread-safe."""

    def __init__(self, what: str, logger: logging.Logger = log, *, down: str = "unavailable",
                 up: str = "available again", traceback: bool = False) -> None:
        """`down`/`up`: how the lines say it failed and recovered; `traceback`: the first
        line carries the traceback at every level (failures that are bugs, not outages)."""
        self.what = what
        self._log = logger
        self._down, self._up, self._traceback = down, up, traceback
        self._lock = threading.Lock()
        self.since: float | None = None
        """When the current outage started (monotonic); None: no outage."""
        self.failures = 0
        """Failures in the current outage."""
        self._last_line = 0.0

    def failed(self, exc: BaseException, doing: str) -> None:
        """`doing` failed with `exc`: the first failure of an outage is logged as a warning
        (a traceback only at debug level), later ones at most once per `REPEAT_S`."""
        now = time.monotonic()
        reason = reason_of(unavailable_cause(exc) or exc)
        with self._lock:
            self.failures += 1
            if self.since is None:
                self.since = self._last_line = now
                line = f"{self.what} {self._down} ({doing}): {reason}"
            elif now - self._last_line >= REPEAT_S:
                self._last_line = now
                line = (f"{self.what} still {self._down} after {now - self.since:.0f} s "
                        f"({self.failures} failures; {doing}): {reason}")
            else:
                return
        first = self.failures == 1
        trace = (self._traceback and first) or self._log.isEnabledFor(logging.DEBUG)
        self._log.warning(line, exc_info=exc if trace else None)

    def ok(self) -> None:
        """Something succeeded: an outage in progress has ended."""
        if self.since is None:  # the common case, without the lock
            return
        with self._lock:
            if self.since is None:
                return
            lasted, failures = time.monotonic() - self.since, self.failures
            self.since, self.failures = None, 0
        self._log.warning("%s %s after %.1f s (%d failures)", self.what, self._up, lasted,
                          failures)


DATABASE = Outage("database")
"""The database, as every thread of this process sees it."""
