"""Column types every table shares: 64-bit ids, UTC datetimes and raw bytes on both databases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

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
