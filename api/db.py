"""The database engine and the column types every table shares.

One code path for SQLite (the one-machine default, in WAL mode so ingest writes and API reads
do not block each other) and PostgreSQL through psycopg 3. Engines are built on request from
settings, never at import time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import BigInteger, DateTime, Engine, Integer, LargeBinary, event
from sqlalchemy.engine import Dialect
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
        if value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Bytes(TypeDecorator[bytes]):
    """Raw bytes (envelopes, hashes): BLOB on SQLite, BYTEA on PostgreSQL; always `bytes` out."""

    impl = LargeBinary
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        return None if value is None else bytes(value)


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
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False}, **engine_args
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **engine_args)
