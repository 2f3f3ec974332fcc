"""Applying the schema: Alembic migrations under `api/alembic`, run programmatically.

`kitledger migrate` calls `upgrade`, then `backfill` (the registry rows older than their log
records get them: `api.registry_log.backfill_registry`); tests call them too, so the schema the
tests exercise is the one the migrations build, never `metadata.create_all`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from api.errors import MigrationError

SCRIPT_LOCATION: Final = Path(__file__).parent / "alembic"


MAX_REASON_CHARS: Final = 300
"""Database error text kept in a `MigrationError`: the first lines say what went wrong."""


def _migration_error(exc: SQLAlchemyError) -> MigrationError:
    reason = str(exc.args[0])[:MAX_REASON_CHARS] if exc.args else ""
    return MigrationError(f"database error: {type(exc).__name__}: {reason}")


def alembic_config(engine: Engine) -> Config:
    """An Alembic config pointing at our scripts and at `engine`'s database."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # `%` is Alembic's interpolation character; escape it in passwords and URLs.
    url = engine.url.render_as_string(hide_password=False).replace("%", "%%")
    config.set_main_option("sqlalchemy.url", url)
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database behind `engine` to `revision` (default: the newest).

    On SQLite, foreign keys are not enforced while the migrations run, and every one is checked
    before they commit: SQLite changes a key by rebuilding the table, and a rebuilt table that
    other tables point at would otherwise fail on its rows' own children (SQLite's documented
    procedure for schema changes; it must be switched outside a transaction).
    """
    config = alembic_config(engine)
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect() as connection:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()  # ends SQLAlchemy's autobegun transaction; no SQL
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    command.upgrade(config, revision)
                    if sqlite:
                        _check_foreign_keys(connection)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
    except SQLAlchemyError as exc:
        raise _migration_error(exc) from None


def _check_foreign_keys(connection: Connection) -> None:
    """Refuse (roll back) a SQLite migration that left a row pointing at nothing."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise MigrationError(f"migration left {len(broken)} rows pointing at nothing "
                             f"(in {', '.join(tables)}): rolled back")


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None if it has never been migrated."""
    # Asked by every `/readyz`: alembic's "Context impl …" lines would fill the log.
    quiet = logging.getLogger("alembic.runtime.migration")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise _migration_error(exc) from None
    finally:
        quiet.setLevel(level)


def head_revision(engine: Engine) -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def backfill(engine: Engine) -> int:
    """Log the registry records of rows that have none yet (idempotent); how many appended."""
    from sqlmodel import Session

    from api.db import utcnow
    from api.registry_log import backfill_registry

    try:
        with Session(engine) as session:
            appended = backfill_registry(session, utcnow())
            session.commit()
        return appended
    except SQLAlchemyError as exc:
        raise _migration_error(exc) from None
