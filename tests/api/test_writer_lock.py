"""The SQLite writer lock: log writers in several processes take turns on a lock file instead
of sleeping in SQLite's busy handler. Real processes, a real SQLite file."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from api.config import load_settings
from api.db import WriterLockTimeout, make_engine, sqlite_writer_lock, writer_turn
from api.logstore import claim_log_writer
from api.migrate import upgrade


def _engine(path: Path) -> Engine:
    return make_engine(load_settings(database_url=f"sqlite:///{path}"))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kit.db"
    engine = _engine(path)
    upgrade(engine)
    engine.dispose()
    return path


def _hold(path: str, holding: Any, release: Any) -> None:
    """In another process: take a log writer's turn and keep it until told to let go."""
    engine = _engine(Path(path))
    with Session(engine) as session:
        claim_log_writer(session, datetime.now(UTC))
        holding.set()
        release.wait(30)
        session.commit()
    engine.dispose()


def _other_process_holding(db: Path) -> tuple[Any, Any, Any]:
    context = multiprocessing.get_context("spawn")
    holding, release = context.Event(), context.Event()
    process = context.Process(target=_hold, args=(str(db), holding, release))
    process.start()
    assert holding.wait(60), "the holding process never took its turn"
    return process, holding, release


def test_a_writer_waits_for_another_process_then_goes(db: Path) -> None:
    process, _, release = _other_process_holding(db)
    engine = _engine(db)
    order: list[str] = []

    def write() -> None:
        with Session(engine) as session:
            claim_log_writer(session, datetime.now(UTC))
            order.append("second writer in")
            session.commit()

    writer = threading.Thread(target=write)
    writer.start()
    writer.join(0.3)
    assert writer.is_alive() and order == []  # still queued behind the other process
    order.append("first writer out")
    release.set()
    writer.join(30)
    process.join(30)
    assert order == ["first writer out", "second writer in"]
    assert (db.parent / "kit.db.writer-lock").exists()
    engine.dispose()


def test_a_writer_held_too_long_is_a_retryable_error(db: Path) -> None:
    process, _, release = _other_process_holding(db)
    engine = _engine(db)
    lock = sqlite_writer_lock(engine)
    assert lock is not None
    impatient = type(lock)(lock.path, timeout_s=0.05)
    with pytest.raises(WriterLockTimeout, match="not free after"):
        impatient.acquire()
    release.set()
    process.join(30)
    impatient.acquire()  # free again once the holder has gone
    impatient.release()
    engine.dispose()


def test_nested_sessions_of_one_thread_do_not_wait_for_themselves(db: Path) -> None:
    engine = _engine(db)
    done = threading.Event()

    def nested() -> None:
        with Session(engine) as outer:
            claim_log_writer(outer, datetime.now(UTC))
            with writer_turn(engine):
                pass
            outer.commit()
        done.set()

    thread = threading.Thread(target=nested, daemon=True)
    thread.start()
    thread.join(20)
    assert done.is_set(), "a thread deadlocked on its own writer lock"
    engine.dispose()


def test_the_turn_ends_with_the_transaction_commit_or_rollback(db: Path) -> None:
    engine = _engine(db)
    with Session(engine) as session:
        claim_log_writer(session, datetime.now(UTC))
        session.rollback()
    with Session(engine) as session:
        claim_log_writer(session, datetime.now(UTC))
        session.commit()
    # Another thread (a new owner of the in-process lock) gets its turn at once.
    got = threading.Event()

    def other() -> None:
        with writer_turn(engine):
            got.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(20)
    assert got.is_set()
    engine.dispose()


def test_a_failed_transaction_gives_the_turn_back(db: Path) -> None:
    engine = _engine(db)
    with pytest.raises(Exception, match="no such table"), Session(engine) as session:
        claim_log_writer(session, datetime.now(UTC))
        session.execute(text("SELECT * FROM no_such_table"))
    process, _, release = _other_process_holding(db)  # would hang if the turn were kept
    release.set()
    process.join(30)
    assert process.exitcode == 0
    engine.dispose()


def test_no_lock_file_where_none_is_needed(tmp_path: Path) -> None:
    memory = make_engine(load_settings(database_url="sqlite://"))
    assert sqlite_writer_lock(memory) is None
    with writer_turn(memory):
        pass
    assert list(tmp_path.iterdir()) == []


def _turn_then_write(path: str, holding: Any, wrote: Any) -> None:
    """In another process: take the file lock, then wait for SQLite's lock to write."""
    engine = _engine(Path(path))
    with writer_turn(engine), engine.begin() as conn:
        holding.set()
        conn.execute(text("UPDATE log_state SET updated_at = updated_at"))
        wrote.set()
    engine.dispose()


def test_a_transaction_that_has_written_does_not_wait_for_the_file_lock(db: Path) -> None:
    # We hold SQLite's lock (a write), the other process holds the file lock and waits for
    # SQLite's: if our claim waited for the file lock, each would wait on the other.
    engine = _engine(db)
    with Session(engine) as session:
        claim_log_writer(session, datetime.now(UTC))  # the log_state row exists
        session.commit()
    context = multiprocessing.get_context("spawn")
    holding, wrote = context.Event(), context.Event()
    with Session(engine) as session:
        session.execute(text("UPDATE log_state SET updated_at = updated_at"))
        process = context.Process(target=_turn_then_write, args=(str(db), holding, wrote))
        process.start()
        assert holding.wait(60)
        claimed = threading.Event()

        def claim() -> None:
            claim_log_writer(session, datetime.now(UTC))
            claimed.set()

        thread = threading.Thread(target=claim, daemon=True)
        thread.start()
        thread.join(5)
        assert claimed.is_set(), "a writer waited for the file lock while holding SQLite's"
        assert not wrote.is_set()  # the other writer still waits for us
        session.commit()
    assert wrote.wait(30)
    process.join(30)
    assert process.exitcode == 0
    engine.dispose()
