"""The SQLite log writers' turn: an advisory file lock handed over faster than SQLite's own."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from api.db.engine import SQLITE_BUSY_TIMEOUT_MS

WRITER_LOCK_POLL_S: Final = 0.0005
"""How often a waiting writer retries the lock file: half a millisecond of added latency at
worst, against SQLite's own busy handler, which sleeps up to 100 ms between tries."""


class WriterLockTimeout(OperationalError):
    """Another writer held the SQLite writer lock for longer than the busy timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"writer lock not free after {seconds:.0f} s", None, Exception())


class SqliteWriterLock:
    """The log writers' turn on one SQLite file, taken before SQLite's own write lock.

    Several ingest processes share the file. Left to SQLite, a writer that finds the database
    locked sleeps in its busy handler for up to 100 ms between tries, however soon the lock is
    freed: two workers then spend much of their time asleep, and a reader's answer waits
    behind the sleep. An advisory `flock` on `<database>.writer-lock`, polled every
    `WRITER_LOCK_POLL_S`, hands the turn over within half a millisecond. Re-entrant within a
    thread (a nested session of the same thread must not wait for itself); one per process and
    file (a forked child starts with a fresh one, never a copy of its parent's state). Only
    a courtesy between writers: SQLite's own lock still guards the data, so a writer that
    does not take this one (an older process, a deleted lock file) is slower, never unsafe.
    """

    def __init__(self, path: Path, timeout_s: float) -> None:
        self.path = path
        self._timeout_s = timeout_s
        self._mutex = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self) -> None:
        if not self._mutex.acquire(timeout=self._timeout_s):
            raise WriterLockTimeout(self._timeout_s)
        try:
            if self._depth == 0:
                self._lock_file()
        except BaseException:
            self._mutex.release()
            raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # closing the only descriptor releases the flock
        finally:
            self._mutex.release()

    def _lock_file(self) -> None:
        # Opened per turn, not kept: a process that touches many database files (the tests)
        # must not hold a descriptor for each.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self._timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WriterLockTimeout(self._timeout_s) from None
                time.sleep(WRITER_LOCK_POLL_S)


_writer_locks: dict[tuple[int, str], SqliteWriterLock] = {}
_writer_locks_mutex = threading.Lock()


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Hold `engine`'s SQLite writer lock (nothing on PostgreSQL) for a short write made
    outside the log, so it queues with the log writers instead of sleeping on SQLite's."""
    lock = sqlite_writer_lock(engine)
    if lock is None:
        yield
        return
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def sqlite_writer_lock(engine: Engine) -> SqliteWriterLock | None:
    """The writer lock for `engine`'s SQLite file; None for PostgreSQL (whose row lock queues
    waiters without sleeping) and for in-memory SQLite (one process only)."""
    if engine.dialect.name != "sqlite":
        return None
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    path = Path(database).resolve()
    key = (os.getpid(), str(path))
    with _writer_locks_mutex:
        lock = _writer_locks.get(key)
        if lock is None:
            lock = SqliteWriterLock(path.with_name(path.name + ".writer-lock"),
                                    SQLITE_BUSY_TIMEOUT_MS / 1000)
            _writer_locks[key] = lock
        return lock
