"""Badge sessions at a desk: a staff badge opens one, kit read while it is open belongs to it.

A session closes when idle for `timeout_s` or when a badge arrives while it is open: the same
badge closes it (the "tap out"), another badge closes it and opens its own. Session ids are
`{prefix}-{n}`; the agent makes the prefix unique per boot so ids never repeat across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_SESSION_PREFIX_CHARS: Final = 96
"""Leaves room for `-{n}` inside the record format's 128-character id limit."""


@dataclass(slots=True)
class BadgeSession:
    """The open session: its id, the badge that opened it, where, and when it was last used."""

    session_id: str
    badge: bytes
    antenna: int
    zone: str
    last_activity: float


class BadgeSessions:
    """At most one open session per reader (one reader serves one desk)."""

    def __init__(self, prefix: str, timeout_s: float) -> None:
        if not 0 < len(prefix) <= MAX_SESSION_PREFIX_CHARS or not prefix.isprintable():
            raise ValueError(f"session prefix must be 1-{MAX_SESSION_PREFIX_CHARS} characters")
        self._prefix = prefix
        self._timeout = timeout_s
        self._counter = 0
        self.current: BadgeSession | None = None

    def active(self, now: float) -> BadgeSession | None:
        """The open session, unless it has timed out (then call `expire`)."""
        session = self.current
        if session is None or now - session.last_activity > self._timeout:
            return None
        return session

    def expire(self, now: float) -> BadgeSession | None:
        """Close and return the session if it has been idle too long."""
        session = self.current
        if session is not None and now - session.last_activity > self._timeout:
            self.current = None
            return session
        return None

    def badge_arrived(
        self, badge: bytes, antenna: int, zone: str, now: float
    ) -> tuple[BadgeSession | None, BadgeSession | None]:
        """A badge arrived: returns (closed session or None, opened session or None)."""
        closed = self.current
        self.current = None
        if closed is not None and closed.badge == badge:
            return closed, None
        self._counter += 1
        opened = BadgeSession(f"{self._prefix}-{self._counter}", badge, antenna, zone, now)
        self.current = opened
        return closed, opened
