"""Badge sessions at a desk: a staff badge opens one, kit read while it is open belongs to it.

A session closes when idle for `timeout_s` or when a badge arrives while it is open: a badge
already in the session closes it (the "tap out"); another badge within `cosign_window_s` of the
opening joins it as a co-signer (dual sign-off for evidence: both people are in the session the
API sees); another badge later closes it and opens its own. Session ids are `{prefix}-{n}`; the
agent makes the prefix unique per boot so ids never repeat across restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from ledger.core.bounds import MAX_ID_CHARS

MAX_SESSION_PREFIX_CHARS: Final = MAX_ID_CHARS - 32
"""Leaves 32 characters for `-{n}` inside the record format's id limit."""


@dataclass(slots=True)
class BadgeSession:
    """The open session: its id, the badge that opened it, where, and when it was last used."""

    session_id: str
    badge: bytes
    antenna: int
    zone: str
    last_activity: float
    opened_at: float = 0.0
    cosigners: list[bytes] = field(default_factory=list)

    def holds(self, badge: bytes) -> bool:
        return badge == self.badge or badge in self.cosigners


#: A session's badge events: (the badge read, the session it opened, closed or joined).
BadgeEvent = tuple[bytes, BadgeSession]


class BadgeSessions:
    """At most one open session per reader (one reader serves one desk)."""

    def __init__(self, prefix: str, timeout_s: float, cosign_window_s: float = 0.0) -> None:
        if not 0 < len(prefix) <= MAX_SESSION_PREFIX_CHARS or not prefix.isprintable():
            raise ValueError(f"session prefix must be 1-{MAX_SESSION_PREFIX_CHARS} characters")
        self._prefix = prefix
        self._timeout = timeout_s
        self._cosign_window = cosign_window_s
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
    ) -> list[BadgeEvent]:
        """A badge arrived: the badge events to report, in order."""
        current = self.current
        if current is not None and current.holds(badge):
            self.current = None
            return [(badge, current)]  # tap out
        if current is not None and now - current.opened_at <= self._cosign_window:
            current.cosigners.append(badge)
            current.last_activity = now
            return [(badge, current)]  # a second signature joins the open session
        self._counter += 1
        opened = BadgeSession(f"{self._prefix}-{self._counter}", badge, antenna, zone, now, now)
        self.current = opened
        closed: list[BadgeEvent] = [] if current is None else [(current.badge, current)]
        return [*closed, (badge, opened)]
