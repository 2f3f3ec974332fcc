"""Alembic environment: migrations run against `SQLModel.metadata` on SQLite or PostgreSQL.

`api.migrate` passes either an open connection (tests, `kitledger migrate`) or a URL. SQLite
needs batch mode to alter tables. Our column types render as their portable SQLAlchemy
equivalents, so migration files never import application code that may change later.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection, engine_from_config, pool
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import api.models  # noqa: F401 - registers every table on SQLModel.metadata
from api.db import Bytes, UTCDateTime

target_metadata = SQLModel.metadata


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our types as plain SQLAlchemy types in generated migrations."""
    if kind != "type":
        return False
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, Bytes):
        return "sa.LargeBinary()"
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run() -> None:
    connection = context.config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
        return
    engine = engine_from_config(
        context.config.get_section(context.config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        _configure(conn)


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run them online")
run()
