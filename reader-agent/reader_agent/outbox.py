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

Disk faults. An agent must be able to start on a full disk and publish its backlog. SQLite
creates and grows a `-shm` file (the WAL index) when it opens a WAL database, which fails on a
full disk (SQLITE_IOERR_SHMSIZE); the outbox then holds the file in EXCLUSIVE locking mode,
which keeps that index in the process's memory (and locks out other readers until the agent
stops). Opening writes nothing to a file that already has its format; on a read-only
filesystem the file is opened read-only (`writable` False) and reopened for writing once the
filesystem allows it. Every SQLite error of a read or write after opening becomes a typed
`OutboxDiskError` (full, read-only, I/O) held in `fault`, counted in `disk_errors` and logged
once per outage, never a traceback: an append that fails raises it (the agent refuses and
counts those observations); a release that fails is remembered (one number: how far) and
retried; a read that fails returns no rows this turn. While a fault lasts, writes
are retried at most every WRITE_RETRY_S. Room for the WAL is kept by refusing reads before the
disk is full (`reader_agent.disk`).

Corruption. Rows from a previous run are checked before replay; a row that is not a canonical
envelope whose payload carries its own sequence number moves to `quarantine` (counted, kept
for an engineer) instead of being published or deleted.
"""

from __future__ import annotations

import collections
import errno
import itertools
import logging
import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from ledger.core.encoding import MAX_RECORD_BYTES
from ledger.core.envelope import Envelope
from ledger.core.errors import LedgerError
from reader_agent.errors import (
    OutboxDiskError,
    OutboxDiskFull,
    OutboxError,
    OutboxFull,
    OutboxIOError,
    OutboxReadOnly,
)
from reader_agent.outage import Outage

OUTBOX_FORMAT: Final = 1
"""`PRAGMA user_version` of the outbox file; a file with another version is refused."""

MAX_REPLAY_BATCH: Final = 1000
"""Rows fetched per `pending()` call, bounding memory during a large replay."""

MAX_FRESH_ROWS: Final = 4096
"""Unpublished rows of this run kept in memory (about 2 MB at most: the agent's memory bar is
60 MB); past that, during an outage, rows are read back from the file as on a replay."""

WRITE_RETRY_S: Final = 2.0
"""While writes fail, the next attempt waits this long (observations arriving meanwhile are
refused without touching the disk); a write that succeeds ends the fault at once."""

_SQLITE_FULL: Final = 13
_SQLITE_READONLY: Final = 8
_SQLITE_DISK_CODES: Final = frozenset({10, 14})
"""SQLITE_IOERR, SQLITE_CANTOPEN: the storage failed under the file (or has no room for it)."""

PROBE_NAME: Final = ".outbox-write-probe"
"""Empty file created and removed next to the outbox to tell a read-only filesystem apart
from a full or failing one, after a write failed."""

log = logging.getLogger("reader_agent.outbox")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, envelope BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (seq INTEGER PRIMARY KEY, envelope BLOB, reason TEXT);
"""


class Outbox:
    """One reader's outbox file. Used from one thread (the agent's loop)."""

    def __init__(self, path: Path, max_rows: int, alarm_fraction: float = 0.8,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.max_rows = max_rows
        self.alarm_rows = int(max_rows * alarm_fraction)
        self.clock = clock
        self.quarantined = 0
        self.disk_errors = 0
        self.fault: OutboxDiskError | None = None
        self._retry_at = 0.0
        self._deferred_through = -1  # a release the disk refused, retried later
        self.outage = Outage(log, f"outbox {path}")
        self._fresh: collections.deque[tuple[int, bytes]] = collections.deque(
            maxlen=MAX_FRESH_ROWS)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot create the outbox directory {path.parent}: "
                              f"{exc.strerror}") from None
        self._open()

    def _open(self) -> None:
        path = self.path
        try:
            self._db, self.writable = _connect(path)
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version not in (0, OUTBOX_FORMAT):
                raise OutboxError(f"outbox {path} has format {version}, expected {OUTBOX_FORMAT}")
            if version == 0:  # a new file; an existing one is opened without writing (full disk)
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
        if not self.writable:
            self._failed(OutboxReadOnly(f"outbox {path} is on a read-only filesystem; "
                                        "opened read-only"))

    def _reopen_writable(self) -> bool:
        """After starting on a read-only filesystem: try to open the file for writing again."""
        if not os.access(self.path.parent, os.W_OK) or _read_only_fs(self.path.parent):
            return False
        old = self._db
        try:
            self._open()
        except OutboxError as exc:
            self._failed(_disk_error_of(exc))
            self._db, self.writable = old, False
            return False
        old.close()
        self._fresh.clear()
        return self.writable

    @property
    def alarm(self) -> bool:
        return self.depth >= self.alarm_rows

    def free_rows(self) -> int:
        return max(0, self.max_rows - self.depth)

    # disk faults ----------------------------------------------------------------------------
    def _failed(self, error: OutboxDiskError, exc: BaseException | None = None) -> OutboxDiskError:
        """Count and log (once per outage) a failed read or write; the next try waits."""
        self.fault = error
        self.disk_errors += 1
        self._retry_at = self.clock() + WRITE_RETRY_S
        self.outage.fail(str(error), exc=exc)
        return error

    def _may_write(self) -> OutboxDiskError | None:
        """The current fault while it is too soon to try again, else None (go ahead)."""
        if self.fault is None:
            return None
        if self.clock() < self._retry_at:
            return self.fault
        if not self.writable and not self._reopen_writable():
            self._retry_at = self.clock() + WRITE_RETRY_S
            return self.fault
        return None

    def _wrote(self) -> None:
        if self.fault is not None:
            self.fault = None
            self.outage.recover(f"{self.depth} rows in the outbox")

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
        fault = self._may_write()
        if fault is not None:
            raise fault
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT INTO outbox (seq, envelope) VALUES (?, ?)", rows)
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('next_seq', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (last + 1,))
        except sqlite3.DatabaseError as exc:
            raise self._failed(_classify(exc, "cannot write outbox", self.path), exc) from None
        self.next_seq = last + 1
        self.depth += len(rows)
        self._fresh.extend(rows)
        self._wrote()

    def pending(self, after_seq: int, limit: int = MAX_REPLAY_BATCH) -> list[tuple[int, bytes]]:
        """Rows with seq > `after_seq`, oldest first; rows of a previous run are checked first."""
        limit = min(limit, MAX_REPLAY_BATCH)
        fresh = self._fresh
        while fresh and fresh[0][0] <= after_seq:  # handed out already: never asked again
            fresh.popleft()
        if fresh and fresh[0][0] == after_seq + 1:
            # Contiguous rows of this run, none acknowledged yet (only published rows are).
            return list(itertools.islice(fresh, limit))
        try:
            rows = self._db.execute(
                "SELECT seq, envelope FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        except sqlite3.DatabaseError as exc:  # nothing to publish this turn; tried again next
            self._failed(_classify(exc, "cannot read outbox", self.path), exc)
            return []
        good: list[tuple[int, bytes]] = []
        for seq, envelope in rows:
            reason = self._check(seq, envelope) if seq < self.replay_below else None
            if reason is None:
                good.append((seq, envelope))
            elif not self._quarantine(seq, envelope, reason):
                break  # rows after it wait until the bad row is moved aside
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

    def _quarantine(self, seq: int, envelope: object, reason: str) -> bool:
        """Move a bad row aside; False if the disk refused (the row stays, unpublished)."""
        if self._may_write() is not None:
            return False
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT OR REPLACE INTO quarantine (seq, envelope, reason) VALUES (?, ?, ?)",
                    (seq, envelope, reason))
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
        except sqlite3.DatabaseError as exc:
            self._failed(_classify(exc, f"cannot quarantine row {seq}", self.path), exc)
            return False
        self.depth -= 1
        self.quarantined += 1
        self._wrote()
        return True

    def release_through(self, through: int) -> int:
        """Delete every row up to `through` (the API has committed them) and remember
        `through` as `acked_through`, in one transaction; return how many rows went.

        On a full or failing disk the release waits (`acks_deferred` says how far): the rows
        stay, are not published again meanwhile (`acked_through` moves at once in memory),
        and the delete is retried with the next release or `retry_release`."""
        if self._deferred_through < 0 and through <= self.acked_through:
            return 0
        through = max(through, self._deferred_through)
        self.acked_through = max(self.acked_through, through)
        if self._may_write() is not None:
            self._deferred_through = through
            return 0
        try:
            self._db.execute("PRAGMA synchronous=NORMAL")  # why: see "Speed" above
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    cursor = self._db.execute("DELETE FROM outbox WHERE seq <= ?", (through,))
                    self._db.execute(
                        "INSERT INTO meta (key, value) VALUES ('acked_through', ?) "
                        "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (through,))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as exc:
            self._deferred_through = through
            self._failed(_classify(exc, "cannot delete acknowledged rows", self.path), exc)
            return 0
        self._deferred_through = -1
        self.depth -= cursor.rowcount
        self._wrote()
        return int(cursor.rowcount)

    def retry_release(self) -> int:
        """Retry a release the disk refused, once it may be written again."""
        return self.release_through(self._deferred_through) if self._deferred_through >= 0 else 0

    @property
    def acks_deferred(self) -> int:
        """Acknowledged rows whose delete waits for the disk (an estimate: the span waiting)."""
        if self._deferred_through < 0:
            return 0
        return self._db_count_through(self._deferred_through)

    def _db_count_through(self, through: int) -> int:
        try:
            return int(self._db.execute("SELECT count(*) FROM outbox WHERE seq <= ?",
                                        (through,)).fetchone()[0])
        except sqlite3.DatabaseError:
            return 0

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
        try:
            self._db.close()  # checkpoints the WAL into the file; on a full disk it stays
        except sqlite3.DatabaseError as exc:
            log.warning("outbox %s: closing left the WAL in place (%s); it is replayed at the "
                        "next start", self.path, exc)


def _read_only_fs(directory: Path) -> bool:
    """Whether the filesystem refuses writes as read-only. statvfs says so for a read-only
    mount, but not for ext4 after an error (`errors=remount-ro` sets its own flag), so a
    failed write is followed by creating an empty probe file, which needs no free space."""
    try:
        if os.statvfs(directory).f_flag & os.ST_RDONLY:
            return True
        probe = directory / PROBE_NAME
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT, 0o600))
        probe.unlink()
    except OSError as exc:
        return exc.errno == errno.EROFS
    return False


def _connect(path: Path) -> tuple[sqlite3.Connection, bool]:
    """The outbox connection and whether it may write (see "Disk faults" above): normal
    locking; EXCLUSIVE locking (no `-shm` file) where that fails; read-only where the
    filesystem is. Rows still in a WAL left by a crash show once the file is writable again."""
    try:
        return _connect_writable(path, exclusive=False), True
    except sqlite3.DatabaseError as exc:
        if not path.is_file():
            raise
        first = exc
    if _read_only_fs(path.parent):  # SQLite cannot lock the file there: immutable, read-only
        uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
        return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False), False
    if getattr(first, "sqlite_errorcode", 0) & 0xFF not in _SQLITE_DISK_CODES | {_SQLITE_FULL}:
        raise first  # e.g. not a database: no other way of opening it would help
    log.warning("outbox %s: %s on opening; holding it exclusively (no -shm file)", path, first)
    return _connect_writable(path, exclusive=True), True


def _connect_writable(path: Path, exclusive: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if exclusive:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
        if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise sqlite3.OperationalError("cannot switch the outbox to WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # maps the WAL index now
    except BaseException:
        db.close()
        raise
    return db


def _classify(exc: sqlite3.DatabaseError, doing: str, path: Path) -> OutboxDiskError:
    """The typed error for a failed SQLite call: what failed, where, and SQLite's words."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    message = f"{doing} {path}: {exc}"
    if code == _SQLITE_READONLY or _read_only_fs(path.parent):
        return OutboxReadOnly(message)
    if code == _SQLITE_FULL:
        return OutboxDiskFull(message)
    return OutboxIOError(message)  # I/O errors, and whatever else the file does (corruption)


def _disk_error_of(error: OutboxError) -> OutboxDiskError:
    return error if isinstance(error, OutboxDiskError) else OutboxIOError(str(error))
