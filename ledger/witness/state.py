"""The witness's memory: the last checkpoint it cosigned for each log, in SQLite.

One row per origin. An update is a compare-and-swap inside one `BEGIN IMMEDIATE` transaction:
the row is re-read under the write lock and replaced only if it still holds the size the
request claims, so two concurrent requests can never roll a log back (c2sp.org/tlog-witness).
Refused checkpoints that carried a valid log signature but do not extend the cosigned one are
kept too, as evidence of a fork, a bounded number per log. Sizes are stored as decimal text: a
C2SP tree size is a uint64, wider than SQLite's integers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from ledger.core.merkle import EMPTY_ROOT

MAX_EVIDENCE_PER_LOG: Final = 1_000
"""Refused checkpoints kept per log; only the log's key can produce them, so this bounds what a
misbehaving log costs the witness, not what an anonymous client can."""

LOCK_TIMEOUT_S: Final = 5.0

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS latest (
    origin TEXT PRIMARY KEY,
    size TEXT NOT NULL,
    root BLOB NOT NULL,
    note BLOB NOT NULL,
    updated INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    note BLOB NOT NULL,
    reason TEXT NOT NULL,
    at INTEGER NOT NULL
);
"""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest checkpoint this witness cosigned for a log (size 0, empty root if none)."""

    size: int
    root: bytes
    note: bytes


NONE_YET: Final = Latest(0, EMPTY_ROOT, b"")


class WitnessState:
    """The SQLite file at `path`, opened per operation (safe across threads and processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")  # a cosignature is only sent once this is on disk
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            db.close()

    @staticmethod
    def _read(db: sqlite3.Connection, origin: str) -> Latest:
        row = db.execute("SELECT size, root, note FROM latest WHERE origin = ?",
                         (origin,)).fetchone()
        return NONE_YET if row is None else Latest(int(row[0]), bytes(row[1]), bytes(row[2]))

    def latest(self, origin: str) -> Latest:
        db = self._connect()
        try:
            return self._read(db, origin)
        finally:
            db.close()

    def compare_and_swap(self, origin: str, decide: Callable[[Latest], T],
                         new: Callable[[T], Latest | None]) -> T:
        """Under the write lock: `decide(current)` (which may raise to refuse), then store
        `new(decision)` if it is not None. Returns the decision."""
        with self._transaction() as db:
            decision = decide(self._read(db, origin))
            replacement = new(decision)
            if replacement is not None:
                db.execute(
                    "INSERT INTO latest (origin, size, root, note, updated) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT(origin) DO UPDATE SET size = excluded.size,"
                    " root = excluded.root, note = excluded.note, updated = excluded.updated",
                    (origin, str(replacement.size), replacement.root, replacement.note,
                     int(time.time())))
            return decision

    def keep_evidence(self, origin: str, note: bytes, reason: str) -> None:
        """Remember a validly signed checkpoint that was refused, and why."""
        with self._transaction() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM evidence WHERE origin = ?",
                                  (origin,)).fetchone()
            if count < MAX_EVIDENCE_PER_LOG:
                db.execute("INSERT INTO evidence (origin, note, reason, at) VALUES (?, ?, ?, ?)",
                           (origin, note, reason[:500], int(time.time())))

    def evidence(self, origin: str) -> list[tuple[bytes, str]]:
        db = self._connect()
        try:
            rows = db.execute("SELECT note, reason FROM evidence WHERE origin = ? ORDER BY id",
                              (origin,)).fetchall()
        finally:
            db.close()
        return [(bytes(n), str(r)) for n, r in rows]
