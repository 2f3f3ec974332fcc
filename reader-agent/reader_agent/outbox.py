"""The durable outbox: every signed observation is a SQLite row before it is published, and
stays one until the API has committed it: its end-to-end acknowledgement's `through` covers
the row (`reader_agent.delivery`). A broker's PUBACK releases nothing: a broker that crashes
before saving its queue would otherwise lose rows already deleted here. Rows left at start
are sent again.

Durability. WAL with `synchronous=FULL`: each commit is fsynced before it returns. NORMAL would
survive kill -9 but not a power cut, which can roll back the last commits; a sequence number
already published could then be handed out again to a different observation. FULL costs about a
millisecond per commit here, so the agent commits one batch of observations per loop turn.

Sequence numbers. `meta.next_seq` is updated in the same transaction as the rows, so a sequence
number is durable exactly when its observation is; nothing is published before its commit.

Bound and policy. At most `max_rows` rows (each at most MAX_RECORD_BYTES). When full, new
observations are refused: `free_rows()` says how many fit, the agent counts the rest as
`refused_outbox_full`, logs it, and reports it in every health message. We refuse the newest
rather than evict the oldest because the oldest are evidence already promised to the API;
nothing is dropped without a count. At `alarm_fraction` (default 80 %) `alarm` turns on.

Release. `release_through(n)` deletes every row up to n and records n as `acked_through`
(meta), so a restarted agent starts re-sending above it. A missing number the API asks for
that is no longer here is described by `lost_reason` (quarantined, released, or never here)
for the signed "lost" statement the agent sends instead (`ledger.core.lost`).

Speed. Deleting acknowledged rows commits with `synchronous=NORMAL` (no fsync of its own):
a delete lost to a power cut only re-publishes a row the API already has, and it ingests by
(device, seq) idempotently; the next FULL commit fsyncs the WAL with the delete in it anyway.
Rows appended in this run are also kept in a bounded in-memory tail (MAX_FRESH_ROWS), so
publishing them does not read back what was just written.

Corruption. Rows from a previous run are checked before replay; a row that is not a canonical
envelope whose payload carries its own sequence number moves to `quarantine` (counted, kept
for an engineer) instead of being published or deleted.
"""

from __future__ import annotations

import collections
import itertools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from ledger.core.encoding import MAX_RECORD_BYTES
from ledger.core.envelope import Envelope
from ledger.core.errors import LedgerError
from reader_agent.errors import OutboxError, OutboxFull

OUTBOX_FORMAT: Final = 1
"""`PRAGMA user_version` of the outbox file; a file with another version is refused."""

MAX_REPLAY_BATCH: Final = 1000
"""Rows fetched per `pending()` call, bounding memory during a large replay."""

MAX_FRESH_ROWS: Final = 4096
"""Unpublished rows of this run kept in memory (about 2 MB at most: the agent's memory bar is
60 MB); past that, during an outage, rows are read back from the file as on a replay."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, envelope BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (seq INTEGER PRIMARY KEY, envelope BLOB, reason TEXT);
"""


class Outbox:
    """One reader's outbox file. Used from one thread (the agent's loop)."""

    def __init__(self, path: Path, max_rows: int, alarm_fraction: float = 0.8) -> None:
        self.max_rows = max_rows
        self.alarm_rows = int(max_rows * alarm_fraction)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, OUTBOX_FORMAT):
                raise OutboxError(f"outbox {path} has format {version}, expected {OUTBOX_FORMAT}")
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version = {OUTBOX_FORMAT}")
            stored = self._db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
            highest = self._db.execute("SELECT max(seq) FROM outbox").fetchone()[0]
            self.depth: int = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {path}: {exc}") from None
        # max(seq)+1 as well, in case meta was lost: a sequence number is never handed out twice.
        after_rows = 0 if highest is None else highest + 1
        self.next_seq: int = max(stored[0] if stored else 0, after_rows)
        self.replay_below = self.next_seq  # rows below this came from a previous run
        acked = self._db.execute("SELECT value FROM meta WHERE key='acked_through'").fetchone()
        self.acked_through: int = -1 if acked is None else min(acked[0], self.next_seq - 1)
        self.quarantined = 0
        self._fresh: collections.deque[tuple[int, bytes]] = collections.deque(
            maxlen=MAX_FRESH_ROWS)

    @property
    def alarm(self) -> bool:
        return self.depth >= self.alarm_rows

    def free_rows(self) -> int:
        return max(0, self.max_rows - self.depth)

    def append(self, rows: Sequence[tuple[int, bytes]]) -> None:
        """Store signed envelopes (seq, bytes) in one fsynced transaction.

        Sequence numbers must continue `next_seq` without a gap; the batch must fit.
        """
        if not rows:
            return
        if len(rows) > self.free_rows():
            raise OutboxFull(f"outbox holds {self.depth} of {self.max_rows} rows")
        for offset, (seq, envelope) in enumerate(rows):
            if seq != self.next_seq + offset:
                raise OutboxError(f"sequence {seq} does not continue {self.next_seq + offset}")
            if len(envelope) > MAX_RECORD_BYTES:
                raise OutboxError(f"envelope {seq} is larger than {MAX_RECORD_BYTES} bytes")
        last = rows[-1][0]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO outbox (seq, envelope) VALUES (?, ?)", rows)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (last + 1,))
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot write outbox: {exc}") from None
        self.next_seq = last + 1
        self.depth += len(rows)
        self._fresh.extend(rows)

    def pending(self, after_seq: int, limit: int = MAX_REPLAY_BATCH) -> list[tuple[int, bytes]]:
        """Rows with seq > `after_seq`, oldest first; rows of a previous run are checked first."""
        limit = min(limit, MAX_REPLAY_BATCH)
        fresh = self._fresh
        while fresh and fresh[0][0] <= after_seq:  # handed out already: never asked again
            fresh.popleft()
        if fresh and fresh[0][0] == after_seq + 1:
            # Contiguous rows of this run, none acknowledged yet (only published rows are).
            return list(itertools.islice(fresh, limit))
        rows = self._db.execute(
            "SELECT seq, envelope FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        good: list[tuple[int, bytes]] = []
        for seq, envelope in rows:
            reason = self._check(seq, envelope) if seq < self.replay_below else None
            if reason is None:
                good.append((seq, envelope))
            else:
                self._quarantine(seq, envelope, reason)
        return good

    @staticmethod
    def _check(seq: int, envelope: object) -> str | None:
        if not isinstance(envelope, bytes):
            return f"envelope stored as {type(envelope).__name__}, not bytes"
        try:
            payload = Envelope.from_bytes(envelope).payload
        except LedgerError as exc:
            return f"not a canonical envelope: {type(exc).__name__}"
        if payload.get("seq") != seq:
            return "payload seq differs from row seq"
        return None

    def _quarantine(self, seq: int, envelope: object, reason: str) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR REPLACE INTO quarantine (seq, envelope, reason) VALUES (?, ?, ?)",
                (seq, envelope, reason))
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        self.depth -= 1
        self.quarantined += 1

    def release_through(self, through: int) -> int:
        """Delete every row up to `through` (the API has committed them) and remember
        `through` as `acked_through`, in one transaction; return how many rows went."""
        if through <= self.acked_through:
            return 0
        self._db.execute("PRAGMA synchronous=NORMAL")  # why: see "Speed" above
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (through,))
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('acked_through', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (through,))
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot release outbox rows: {exc}") from None
        finally:
            self._db.execute("PRAGMA synchronous=FULL")
        self.acked_through = through
        self.depth -= cursor.rowcount
        return int(cursor.rowcount)

    def rows_between(self, first: int, last: int,
                     limit: int = MAX_REPLAY_BATCH) -> list[tuple[int, bytes]]:
        """The rows held with `first` <= seq <= `last`, oldest first (at most `limit`): what
        the API asked for again. Rows of a previous run are checked first, as in `pending`."""
        rows = self._db.execute(
            "SELECT seq, envelope FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq LIMIT ?",
            (first, last, min(limit, MAX_REPLAY_BATCH)),
        ).fetchall()
        good: list[tuple[int, bytes]] = []
        for seq, envelope in rows:
            reason = self._check(seq, envelope) if seq < self.replay_below else None
            if reason is None:
                good.append((seq, envelope))
            else:
                self._quarantine(seq, envelope, reason)
        return good

    def lost_reason(self, first: int, last: int) -> str:
        """Why the numbers `first`..`last`, none of them held, are not here any more."""
        quarantined = self._db.execute(
            "SELECT count(*) FROM quarantine WHERE seq BETWEEN ? AND ?", (first, last),
        ).fetchone()[0]
        if quarantined:
            return "outbox quarantine"
        if last <= self.acked_through:
            return f"released: acknowledged through {self.acked_through}"
        return "not in outbox"

    def close(self) -> None:
        self._db.close()
