"""The database layer, split by concern; the names most modules need are re-exported here.

- `api.db.types`: column types every table shares (`BigInt`, `UTCDateTime`, `Bytes`).
- `api.db.sql`: statement builders for batches of ids (`among`, `pairs_in`, `ByIds`,
  `array_of`).
- `api.db.engine`: engines from settings, SQLite's pragmas, and the service's clock
  (`utcnow`).
- `api.db.writer_lock`: the SQLite log writers' turn (`SqliteWriterLock`, `writer_turn`).
- `api.db.tables`: the Core `Table` of a table model (`table`), for bulk SQL.
"""

from api.db.engine import SQLITE_BUSY_TIMEOUT_MS, engine_for_url, make_engine, utcnow
from api.db.sql import ByIds, among, array_of, pairs_in
from api.db.tables import table
from api.db.types import BigInt, Bytes, UTCDateTime
from api.db.writer_lock import (
    WRITER_LOCK_POLL_S,
    SqliteWriterLock,
    WriterLockTimeout,
    sqlite_writer_lock,
    writer_turn,
)

__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS", "WRITER_LOCK_POLL_S", "BigInt", "ByIds", "Bytes",
    "SqliteWriterLock", "UTCDateTime", "WriterLockTimeout", "among", "array_of",
    "engine_for_url", "make_engine", "pairs_in", "sqlite_writer_lock", "table", "utcnow",
    "writer_turn",
]
