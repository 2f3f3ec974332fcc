"""Building engines from settings (never at import time), and the service's one clock.

One code path for SQLite (the one-machine default, in WAL mode so ingest writes and API reads
do not block each other) and PostgreSQL through psycopg 3.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine, event
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import create_engine

from api.config import Settings

SQLITE_BUSY_TIMEOUT_MS: Final = 10_000
"""Several ingest workers and the API share one SQLite file; wait for the writer lock rather
than failing a batch that would commit a few milliseconds later."""


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
