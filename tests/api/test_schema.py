"""The migrations build exactly the models' schema, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlmodel import Session, SQLModel, select

from api.migrate import current_revision, head_revision, upgrade
from api.models import Agency, IngestedObservation


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, SQLModel.metadata) == []
    assert current_revision(engine) == head_revision(engine) is not None


def test_upgrade_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)


def test_asking_the_revision_writes_no_log_line(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """`/readyz` asks on every call: alembic's "Context impl" lines would fill the log."""
    upgrade(engine)
    caplog.set_level("INFO")
    assert current_revision(engine) == head_revision(engine)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("alembic")] == []


def test_sqlite_runs_in_wal_mode(engine: Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("WAL is a SQLite journal mode")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_times_come_back_timezone_aware_utc(engine: Engine) -> None:
    paris = timezone(timedelta(hours=1))
    moment = datetime(2026, 3, 1, 12, 30, 15, 123000, tzinfo=paris)
    with Session(engine) as session:
        session.add(Agency(id="ag", name="Agency", created_at=moment))
        session.commit()
    with Session(engine) as session:
        stored = session.exec(select(Agency)).one().created_at
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored == moment and stored.hour == 11


def test_naive_times_are_refused(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(Agency(id="ag", name="Agency", created_at=datetime(2026, 3, 1)))
        with pytest.raises(StatementError, match="naive"):
            session.commit()


def _observation(seq: int, envelope: bytes) -> IngestedObservation:
    return IngestedObservation(
        device_id="rdr-1", seq=seq, envelope=envelope, envelope_hash=b"\x01" * 32,
        kind="read", epc_hex="E280", site_id="s", observed_at=datetime.now(UTC),
    )


def test_bytes_round_trip_and_device_seq_is_unique(engine: Engine) -> None:
    blob = bytes(range(256))
    big_seq = 2**53 - 1  # the largest sequence a canonical record can carry
    with Session(engine) as session:
        session.add(_observation(big_seq, blob))
        session.commit()
    with Session(engine) as session:
        row = session.exec(select(IngestedObservation)).one()
        assert (row.seq, row.envelope) == (big_seq, blob)
        assert isinstance(row.envelope, bytes) and row.id is not None
    with Session(engine) as session:
        session.add(_observation(big_seq, b"other"))
        with pytest.raises(IntegrityError):
            session.commit()
