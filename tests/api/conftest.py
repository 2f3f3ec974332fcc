"""Fixtures for the API tests: migrated databases on SQLite and PostgreSQL, and a registry.

`engine` is parametrized over both backends, so every test that takes it runs twice. The schema
always comes from the Alembic migrations (never `create_all`), so the tests exercise exactly
what `kitledger migrate` builds.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from api.config import load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.migrate import upgrade
from tests.api.api_support import RegisteredReader, register_reader
from tests.fixtures.postgres import postgres_database

__all__ = ["postgres_database"]

@pytest.fixture(scope="module")
def _migrated_postgres(postgres_database: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=postgres_database))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated, empty database on each backend."""
    if request.param == "sqlite":
        sqlite = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
        upgrade(sqlite)
        yield sqlite
        sqlite.dispose()
        return
    pg: Engine = request.getfixturevalue("_migrated_postgres")
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with pg.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    yield pg


@pytest.fixture
def reader(engine: Engine) -> RegisteredReader:
    return register_reader(engine)


@pytest.fixture
def pipeline(engine: Engine) -> IngestPipeline:
    return IngestPipeline(engine, load_settings(database_url="sqlite://"))


@pytest.fixture(autouse=True)
def _answers_keys_in_tmp_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                              tmp_path: Path) -> None:
    """An ingest worker signs each answer with an agency key it makes in `log_key_dir`
    (default: ./kitledger-keys, `api.ingest.answer_signing`): a test module that runs one
    keeps them in its own tmp_path, not the working directory."""
    if hasattr(request.module, "IngestWorker"):
        monkeypatch.setenv("KITLEDGER_LOG_KEY_DIR", str(tmp_path / "answers-keys"))
