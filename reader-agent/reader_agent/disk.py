"""Free space on the outbox's filesystem: warn early, refuse new reads before SQLite fails.

The outbox counts rows (`max_rows`), but the card under it is shared with the system's logs,
and SQLite needs room of its own: the WAL grows to about 4 MB between checkpoints, and even a
delete of acknowledged rows writes WAL pages. A disk that fills to the last byte therefore
stops the acknowledgements too, and the backlog can then never drain. So the agent reads the
filesystem's free space (`os.statvfs`, the bytes an unprivileged process may still use) at a
bounded rate (CHECK_INTERVAL_S, or sooner after CHECK_AFTER_BYTES of appends) and keeps a state:

    ok         free space at or above `disk_warn_mb`
    low        below `disk_warn_mb`: a warning, reads are still taken
    full       below `disk_floor_mb`, or a write failed for lack of space: new reads are
               refused (counted as `refused_disk`), while the room left below the floor lets
               the outbox commit deletes and checkpoints, so the backlog keeps draining
    read_only  the filesystem is mounted read-only (the kernel does that to a failing card):
               new reads are refused; publishing what is stored goes on

Each change of state is one log line (`reader_agent.outage`), and the state is in every health
message. A write that fails anyway (inodes, a quota, an I/O error, a writer that filled the
card between two checks) is the outbox's to report and retry (`Outbox.fault`). A state is
left only past its threshold plus HYSTERESIS, so a disk hovering at the floor does not flap.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from reader_agent.outage import Outage

MB: Final = 1024 * 1024

CHECK_INTERVAL_S: Final = 1.0
"""Longest time between two statvfs calls while reads arrive (each costs a few microseconds;
once a second is nothing, and the floor leaves room for far more than a second of writing)."""

CHECK_AFTER_BYTES: Final = 1 * MB
"""Envelope bytes appended since the last statvfs that force a new one, so a burst cannot
write more than this (about 2,000 observations, twice that on disk with the WAL) unseen."""

HYSTERESIS: Final = 0.1
"""Fraction above a threshold that free space must reach to leave `full` or `low`."""

log = logging.getLogger("reader_agent.disk")


class DiskState(enum.StrEnum):
    OK = "ok"
    LOW = "low"
    FULL = "full"
    READ_ONLY = "read_only"


REFUSING: Final = frozenset({DiskState.FULL, DiskState.READ_ONLY})
"""States in which new reads are refused."""


def _advice(state: DiskState, free: int, floor: int) -> str:
    if state is DiskState.READ_ONLY:
        return "filesystem is read-only; new reads are refused (check the card, fsck, restart)"
    if state is DiskState.FULL:
        return (f"{free // MB} MB free, under the {floor // MB} MB floor; new reads are refused "
                "(free space on the card)")
    return f"{free // MB} MB free; reads are refused under {floor // MB} MB (free space soon)"


class DiskWatch:
    """The outbox filesystem's state; `poll()` from the agent's loop before storing."""

    def __init__(self, directory: Path, warn_bytes: int, floor_bytes: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.directory = directory
        self.warn_bytes, self.floor_bytes = warn_bytes, floor_bytes
        self.clock = clock
        self.state = DiskState.OK
        self.free_bytes: int | None = None
        self._checked_at = float("-inf")
        self._written = 0
        self.outage = Outage(log, f"outbox disk {directory}")

    @property
    def refusing(self) -> bool:
        return self.state in REFUSING

    def poll(self, appended_bytes: int = 0) -> DiskState:
        """The current state; calls statvfs only when CHECK_INTERVAL_S or CHECK_AFTER_BYTES
        have passed since the last call that did. `appended_bytes`: written since last poll."""
        self._written += appended_bytes
        now = self.clock()
        if now - self._checked_at >= CHECK_INTERVAL_S or self._written >= CHECK_AFTER_BYTES:
            self._checked_at, self._written = now, 0
            self._update(self._measure())
        return self.state

    def _measure(self) -> tuple[int | None, bool]:
        try:
            stat = os.statvfs(self.directory)
        except OSError as exc:  # the directory vanished or the card is gone: keep the state
            self.outage.fail(f"cannot read free space: {exc.strerror}", logging.WARNING)
            return None, False
        return stat.f_bavail * stat.f_frsize, bool(stat.f_flag & os.ST_RDONLY)

    def _update(self, measured: tuple[int | None, bool]) -> None:
        free, read_only = measured
        if free is None:
            return
        self.free_bytes = free
        if read_only:
            self._set(DiskState.READ_ONLY, _advice(DiskState.READ_ONLY, free, self.floor_bytes))
            return
        state = self._state_for(free)
        self._set(state, _advice(state, free, self.floor_bytes))

    def _state_for(self, free: int) -> DiskState:
        leave = 1.0 + HYSTERESIS
        if free < self.floor_bytes or (self.state is DiskState.FULL
                                       and free < self.floor_bytes * leave):
            return DiskState.FULL
        if free < self.warn_bytes or (self.state in (DiskState.LOW, DiskState.FULL)
                                      and free < self.warn_bytes * leave):
            return DiskState.LOW
        return DiskState.OK

    def _set(self, state: DiskState, detail: str) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        if state is DiskState.OK:
            self.outage.recover(f"{(self.free_bytes or 0) // MB} MB free, reads taken again")
            return
        level = logging.WARNING if state is DiskState.LOW else logging.ERROR
        if previous is not DiskState.OK and _severity(state) < _severity(previous):
            detail = f"{detail}; reads taken again"
        self.outage.fail(f"{state.value}: {detail}", level)


def _severity(state: DiskState) -> int:
    return (DiskState.OK, DiskState.LOW, DiskState.FULL, DiskState.READ_ONLY).index(state)
