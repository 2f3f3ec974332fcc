"""One log line when something breaks, one when it is back: the agent's outage log lines.

A reader unplugged overnight, a broker away, a full disk: the agent retries every few seconds,
and a line per retry buries the one line an engineer needs in thousands of identical ones.
An `Outage` logs the start of an outage with its cause, a new cause once per outage, a
reminder now and then while it lasts (REMIND_S), and its end with how long it lasted and how
many failures it saw. Retries in between go to DEBUG, and so do tracebacks: a person acts on
the cause, a developer reads the traceback.

Not thread-safe: each outage belongs to one thread (the driver's, or the agent's loop).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

REMIND_S: Final = 600.0
"""While an outage lasts, its cause is repeated at most this often, so a log read from its end
still says what is wrong without a line per retry."""

MAX_CAUSES: Final = 16
"""Distinct causes remembered per outage (each logged once); past this a cause that keeps
changing (a counter in its text) only shows in the reminders."""


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 12 s`, `2 h 05 min`: how long an outage lasted, for a person."""
    whole = int(seconds)
    if whole < 60:
        return f"{max(whole, 0)} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class Outage:
    """The state of one thing that can fail and recover, and the lines it logs."""

    def __init__(self, logger: logging.Logger, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.what, self.clock = logger, what, clock
        self.since: float | None = None
        self.failures = 0
        self.cause: str | None = None
        self._causes: set[str] = set()
        self._said_at = 0.0

    @property
    def active(self) -> bool:
        return self.since is not None

    def fail(self, cause: str, level: int = logging.ERROR,
             exc: BaseException | None = None) -> None:
        """Record one failure; logs at `level` only when the outage starts, its cause is new,
        or REMIND_S passed since the last line."""
        now = self.clock()
        self.failures += 1
        self.cause = cause
        if self.since is None:
            self.since, self.failures, self._causes = now, 1, {cause}
            self._say(level, "%s: %s", self.what, cause)
        elif cause not in self._causes and len(self._causes) < MAX_CAUSES:
            self._causes.add(cause)
            self._say(level, "%s: now %s", self.what, cause)
        elif now - self._said_at >= REMIND_S:
            self._say(level, "%s: still failing after %s (%d failures): %s", self.what,
                      format_duration(now - self.since), self.failures, cause)
        else:
            self.log.debug("%s: %s (failure %d)", self.what, cause, self.failures)
        if exc is not None:
            self.log.debug("%s: traceback of the failure", self.what, exc_info=exc)

    def recover(self, detail: str = "") -> float | None:
        """End the outage, if there is one: log its length; returns it (seconds) or None."""
        if self.since is None:
            return None
        lasted = self.clock() - self.since
        self.log.warning("%s: recovered after %s (%d failures)%s", self.what,
                         format_duration(lasted), self.failures, f"; {detail}" if detail else "")
        self.since, self.cause, self.failures, self._causes = None, None, 0, set()
        return lasted

    def _say(self, level: int, message: str, *args: object) -> None:
        self._said_at = self.clock()
        self.log.log(level, message, *args)
