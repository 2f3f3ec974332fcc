"""The durable outbox: ordering, sequence numbers across restarts, bound, alarm, corruption."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.errors import OutboxError, OutboxFull
from reader_agent.outbox import MAX_FRESH_ROWS, Outbox
from reader_agent.pipeline import ReadPipeline
from reader_agent.signer import ObservationSigner

from ledger.core.envelope import Envelope, verify_envelope
from tests.reader_agent.agent_support import ListSource, read, settings, wait_for

KEY = Ed25519PrivateKey.generate()


def signed_rows(first_seq: int, count: int) -> list[tuple[int, bytes]]:
    pipeline = ReadPipeline(settings(min_reads=1), "boot")
    found = pipeline.feed_many([read(first_seq + i, float(i)) for i in range(count)])
    return ObservationSigner("desk-1", KEY).sign(found, first_seq)


def test_rows_come_back_in_order_and_verify(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=1000)
    box.append(signed_rows(0, 5))
    rows = box.pending(-1)
    assert [seq for seq, _ in rows] == [0, 1, 2, 3, 4]
    payload = verify_envelope(Envelope.from_bytes(rows[2][1]), KEY.public_key())
    assert payload["seq"] == 2 and payload["device"] == "desk-1"
    assert [seq for seq, _ in box.pending(2)] == [3, 4]


def test_sequence_numbers_survive_restarts_even_when_all_rows_were_acknowledged(
        tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=1000)
    box.append(signed_rows(0, 3))
    box.release_through(2)
    assert box.depth == 0
    box.close()
    reopened = Outbox(tmp_path / "o.db", max_rows=1000)
    assert reopened.next_seq == 3 and reopened.depth == 0
    with pytest.raises(OutboxError, match="does not continue"):
        reopened.append(signed_rows(0, 1))  # reusing a number is refused


def test_unacknowledged_rows_are_replayed_after_reopening(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=1000)
    box.append(signed_rows(0, 4))
    box.release_through(1)
    box.close()
    reopened = Outbox(tmp_path / "o.db", max_rows=1000)
    assert reopened.acked_through == 1
    assert [seq for seq, _ in reopened.pending(reopened.acked_through)] == [2, 3]
    assert reopened.depth == 2


def test_full_outbox_refuses_and_alarm_fires_before(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", max_rows=100, alarm_fraction=0.8)
    box.append(signed_rows(0, 79))
    assert not box.alarm
    box.append(signed_rows(79, 1))
    assert box.alarm and box.free_rows() == 20
    with pytest.raises(OutboxFull):
        box.append(signed_rows(80, 21))
    assert box.depth == 80 and box.next_seq == 80  # nothing half-written


def test_corrupted_rows_are_quarantined_not_published(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path, max_rows=1000)
    box.append(signed_rows(0, 5))
    box.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE outbox SET envelope = x'00ff' WHERE seq = 1")
        db.execute("UPDATE outbox SET envelope = 'text, not bytes' WHERE seq = 2")
        other = signed_rows(9, 1)[0][1]  # a valid envelope carrying seq 9
        db.execute("UPDATE outbox SET envelope = ? WHERE seq = 3", (other,))
    reopened = Outbox(path, max_rows=1000)
    assert [seq for seq, _ in reopened.pending(-1)] == [0, 4]
    assert reopened.quarantined == 3 and reopened.depth == 2
    with sqlite3.connect(path) as db:
        reasons = dict(db.execute("SELECT seq, reason FROM quarantine").fetchall())
    assert set(reasons) == {1, 2, 3}
    assert "seq differs" in reasons[3]


@pytest.mark.parametrize("content", [b"not a database at all" * 100,
                                     b"SQLite format 3\x00" + b"\xff" * 200])
def test_a_file_that_is_not_an_outbox_is_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(content)
    with pytest.raises(OutboxError):
        Outbox(path, max_rows=100)


def test_an_outbox_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(OutboxError, match="format 7"):
        Outbox(path, max_rows=100)


def test_pending_from_memory_equals_pending_from_the_file(tmp_path: Path) -> None:
    # More rows than the in-memory tail holds: the oldest come from the file, the rest from
    # memory, and a reader of the file sees exactly the same rows in the same order.
    box = Outbox(tmp_path / "o.db", max_rows=100_000)
    rows = [(seq, f"envelope-{seq}".encode()) for seq in range(MAX_FRESH_ROWS + 500)]
    for first in range(0, len(rows), 700):
        box.append(rows[first:first + 700])
    handed, after = [], -1
    while True:
        batch = box.pending(after, 300)
        if not batch:
            break
        handed += batch
        after = batch[-1][0]
        box.release_through(batch[min(99, len(batch) - 1)][0])  # the API acked some meanwhile
    assert handed == rows
    with sqlite3.connect(tmp_path / "o.db") as db:
        left = db.execute("SELECT seq, envelope FROM outbox ORDER BY seq").fetchall()
    assert left == [row for row in rows if row[0] > box.acked_through]
    assert box.depth == len(left)


def test_full_outbox_in_the_running_agent_refuses_counts_and_keeps_numbers_contiguous(
        write_config: Callable[..., Path]) -> None:
    # No broker (port 1): nothing is acknowledged, so the outbox fills to max_rows = 100.
    agent = ReaderAgent(load_config(write_config(max_rows=100)),
                        source=ListSource(list(range(150))))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        assert wait_for(lambda: agent.pipeline.reads_in == 150, 20)
        assert wait_for(lambda: agent.refused_outbox_full == 50, 20), agent.health(0.0)
        # The 100 it kept are signed on the second core before they are stored: on a loaded
        # machine that finishes a while after the refusal is counted.
        assert wait_for(lambda: agent.outbox.depth == 100, 30), agent.health(0.0)
        health = agent.health(0.0)
    finally:
        agent.stopping.set()
        thread.join(15)
    assert health["outbox_depth"] == 100 and health["outbox_alarm"] is True
    assert health["refused_outbox_full"] == 50 and health["next_seq"] == 100
    reopened = Outbox(agent.config.outbox_path, max_rows=100)
    assert [seq for seq, _ in reopened.pending(-1)] == list(range(100))
