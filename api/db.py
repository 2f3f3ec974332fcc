"""The database engine and the column types every table shares.

One code path for SQLite (the one-machine default, in WAL mode so ingest writes and API reads
do not block each other) and PostgreSQL through psycopg 3. Engines are built on request from
settings, never at import time.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    CursorResult,
    DateTime,
    Engine,
    Enum,
    Executable,
    Integer,
    LargeBinary,
    String,
    TextClause,
    any_,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Mapped, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator
from sqlmodel import create_engine

from api.config import Settings

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
"""Several ingest workers and the API share one SQLite file; wait for the writer lock rather
than failing a batch that would commit a few milliseconds later."""

BigInt = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit integers (sequence numbers, leaf indexes, row ids) on PostgreSQL; on SQLite INTEGER
is already 64-bit, and only the spelling `INTEGER PRIMARY KEY` gets rowid auto-increment."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    SQLite has no time zone type and hands back naive values; PostgreSQL keeps `timestamptz`.
    Naive input is refused (the caller forgot the zone), so no local time ever reaches the log.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is UTC:  # the service's own clock: nothing to convert
            return value
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class _DriverBinary(LargeBinary):
    """`LargeBinary` handing `bytes` to sqlite3 as they are (it stores them as a BLOB): the
    default wrapping of every value in a memoryview (`sqlite3.Binary`) only costs time, and
    ingest writes several per observation. psycopg keeps its wrapper, which selects the binary
    format (plain `bytes` would be escaped as text)."""

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return None
        return super().bind_processor(dialect)  # type: ignore[no-untyped-call]


class Bytes(TypeDecorator[bytes]):
    """Raw bytes (envelopes, hashes): BLOB on SQLite, BYTEA on PostgreSQL; always `bytes` out."""

    impl = _DriverBinary
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        if value is None or type(value) is bytes:
            return value
        return bytes(value)


def _dialect(bind: Connection | Session) -> Dialect:
    return bind.dialect if isinstance(bind, Connection) else bind.get_bind().dialect


def pairs_in(
    first: ColumnElement[Any], second: ColumnElement[Any], pairs: Iterable[tuple[Any, Any]],
    *, also: Mapping[ColumnElement[Any], Any] | None = None, name: str = "k",
    bind: Connection | Session | None = None,
) -> TextClause:
    """`(first, second) IN pairs` (with each `also` column equal to its value), written so
    every backend answers it from an index; `pairs` must not be empty. `bind`: the connection
    or session it runs on (only PostgreSQL is written differently).

    SQLite plans a row-value IN, `(a, b) IN (VALUES ...)`, as a scan of the whole table;
    grouped by `first` and OR'ed, `(a = ? AND b IN (...)) OR ...`, it searches the index once
    per group. Plain SQL text with bound values: built through the expression language, each
    value of an IN list costs a coercion, which dominated a batch. On PostgreSQL the pairs go
    as two arrays, `(a, b) IN (SELECT * FROM unnest(...))`: one statement text whatever the
    pairs, as psycopg parses every new text in Python (see `among`).
    """
    fixed = [(f"{column.key} = :{name}c{n}", f"{name}c{n}", value)
             for n, (column, value) in enumerate((also or {}).items())]
    params: dict[str, Any] = {key: value for _, key, value in fixed}
    prefix = "".join(f"{clause} AND " for clause, _, _ in fixed)
    if bind is not None and (dialect := _dialect(bind)).name == "postgresql":
        wanted = list(pairs)
        params[f"{name}a"] = [a for a, _ in wanted]
        params[f"{name}b"] = [b for _, b in wanted]
        arrays = ", ".join(f"CAST(:{name}{tag} AS {column.type.compile(dialect=dialect)}[])"
                           for tag, column in (("a", first), ("b", second)))
        # Only column names and types go into the text; every value is a bound parameter.
        clause = f"{prefix}({first.key}, {second.key}) IN (SELECT * FROM unnest({arrays}))"  # noqa: S608
        return text(clause).bindparams(**params)
    groups: dict[Any, list[Any]] = defaultdict(list)
    for a, b in pairs:
        groups[a].append(b)
    branches = []
    for g, (a, bs) in enumerate(groups.items()):
        params[f"{name}a{g}"] = a
        names = []
        for j, b in enumerate(bs):
            params[f"{name}b{g}_{j}"] = b
            names.append(f":{name}b{g}_{j}")
        branches.append(
            f"({prefix}{first.key} = :{name}a{g} AND {second.key} IN ({', '.join(names)}))")
    return text(" OR ".join(branches)).bindparams(**params)


def array_of(kind: Any) -> postgresql.ARRAY[Any]:
    """The array type a column's values are bound as on PostgreSQL: text without a length
    (a CAST to VARCHAR(n)[] would silently cut a longer value down to a stored one, where
    storing it into the column refuses it), any other type, enums included, as itself."""
    stored = kind.impl_instance if isinstance(kind, TypeDecorator) else kind  # AutoString &c.
    text_like = stored is None or (isinstance(stored, String) and not isinstance(stored, Enum))
    return postgresql.ARRAY(String() if text_like else kind)


def among(
    column: ColumnElement[Any] | Mapped[Any], values: Iterable[Any],
    bind: Connection | Session | None = None,
) -> ColumnElement[bool]:
    """`column IN values`, the values bound as one parameter, so the statement is the same
    for any values: given a literal list, the expression language coerces every value into
    its own bound parameter, and builds a new statement (and cache key) for each length.

    With `bind` on PostgreSQL: `column = ANY(array)`. An expanding IN is spelled out into a
    new statement text for each number of values, which psycopg parses in Python and
    PostgreSQL plans afresh (a batch's hundreds of EPCs or ids cost PostgreSQL ingest more
    than the rows it wrote); the array is one text every time. SQLite, and a statement built
    without knowing its database, keep the expanding IN, which SQLite's planner answers from
    the index."""
    wanted = list(values)
    kind = getattr(column, "type", None)  # an ORM attribute (`col(Model.field)`) has one too
    if bind is not None and _dialect(bind).name == "postgresql":
        return column == any_(bindparam(None, wanted, type_=array_of(kind)))
    return column.in_(bindparam(None, wanted, expanding=True, type_=kind))


class ByIds:
    """A statement whose condition is `column IN :ids`, built once for each kind of database
    (as `among`: an array on PostgreSQL, an expanding IN elsewhere) and run with the ids.

    `build` makes the statement from that condition. Built once, a batch's look-ups skip the
    expression language, whose building and cache keys cost more than running them."""

    def __init__(
        self, column: ColumnElement[Any], build: Callable[[ColumnElement[bool]], Executable]
    ) -> None:
        self._in = build(column.in_(bindparam("ids", expanding=True)))
        self._any = build(column == any_(bindparam("ids", type_=array_of(column.type))))

    def __call__(
        self, connection: Connection, ids: Iterable[Any]
    ) -> CursorResult[*tuple[Any, ...]]:
        statement = self._any if connection.dialect.name == "postgresql" else self._in
        return connection.execute(statement, {"ids": list(ids)})


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (the only clock the service reads)."""
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, connection_record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL with synchronous=NORMAL survives process crashes; the agent's outbox covers the
        # power-cut window by re-sending anything not acknowledged.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def make_engine(settings: Settings, **engine_args: Any) -> Engine:
    """An engine for `settings.database_url`, with the pragmas SQLite needs."""
    return engine_for_url(settings.sqlalchemy_url, **engine_args)


def engine_for_url(url: str, **engine_args: Any) -> Engine:
    """An engine for a SQLAlchemy `url` (`Settings.sqlalchemy_url`, or another engine's
    `url.render_as_string(hide_password=False)`), with the pragmas SQLite needs."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, **engine_args
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **engine_args)


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
