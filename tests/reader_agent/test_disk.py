"""The agent on a disk that fills up or turns read-only: real tmpfs and ext4 filesystems.

What is attacked: an outbox that cannot open on a full disk (SQLite's `-shm` needs room), an
acknowledgement that dies with `database or disk is full`, a disk that fills with no warning,
reads taken until SQLite fails, a filesystem remounted read-only under the running agent.
What must hold: a warning before the floor, new reads refused and counted at the floor, no
traceback and no exit, no committed row lost, and reads taken again once space returns.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.disk import CHECK_AFTER_BYTES, CHECK_INTERVAL_S, DiskState, DiskWatch
from reader_agent.errors import ConfigError, OutboxDiskFull, OutboxReadOnly
from reader_agent.identity import load_key
from reader_agent.outage import REMIND_S, Outage
from reader_agent.outbox import WRITE_RETRY_S, Outbox
from reader_agent.pipeline import ReadPipeline
from reader_agent.signer import ObservationSigner

from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.reader_agent.agent_support import (
    Subscriber,
    epc,
    read,
    settings,
    verified_events,
)
from tests.reader_agent.disk_support import (
    FeedSource,
    ext4_image,
    fail_ext4,
    fill,
    free_bytes,
    tmpfs,
    unmount,
)

MB = 1024 * 1024
KEY = Ed25519PrivateKey.generate()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from tmpfs(tmp_path / "disk", 8 * MB)


@pytest.fixture
def ext4_disk(tmp_path: Path) -> Iterator[Path]:
    yield from ext4_image(tmp_path / "ext4", tmp_path / "ext4.img", 16 * MB)


def signed_rows(first_seq: int, count: int) -> list[tuple[int, bytes]]:
    pipeline = ReadPipeline(settings(min_reads=1), "boot")
    found = pipeline.feed_many([read(first_seq + i, float(i)) for i in range(count)])
    return ObservationSigner("desk-1", KEY).sign(found, first_seq)


def rows_in(path: Path) -> list[int]:
    with sqlite3.connect(path) as db:
        seqs = [seq for (seq,) in db.execute("SELECT seq FROM outbox ORDER BY seq")]
    db.close()
    return seqs


# -- the outbox alone -----------------------------------------------------------------------

def test_outbox_opens_on_a_full_disk_publishes_and_writes_again_when_space_returns(
        small_disk: Path) -> None:
    path, clock = small_disk / "outbox.db", Clock()
    box = Outbox(path, max_rows=10_000)
    box.append(signed_rows(0, 200))
    box.close()
    filler = fill(small_disk)
    assert free_bytes(small_disk) == 0
    # Before: SQLITE_IOERR_SHMSIZE, the agent exited with status 4 at every start.
    box = Outbox(path, max_rows=10_000, clock=clock)
    assert box.depth == 200 and box.next_seq == 200
    assert [seq for seq, _ in box.pending(-1, 1000)] == list(range(200))
    with pytest.raises(OutboxDiskFull, match="database or disk is full"):
        box.append(signed_rows(200, 5))
    assert box.next_seq == 200 and box.disk_errors == 1
    box.release_through(49)  # kept, not a traceback
    assert box.acks_deferred == 50 and box.depth == 200 and box.acked_through == 49
    filler.unlink()
    box.release_through(50)
    assert box.acks_deferred == 51, "retried before WRITE_RETRY_S"
    clock.now += WRITE_RETRY_S
    box.retry_release()
    assert box.fault is None and box.acks_deferred == 0 and box.depth == 149
    box.append(signed_rows(200, 5))
    box.close()
    assert rows_in(path) == list(range(51, 205))


def test_acknowledging_on_a_disk_that_filled_is_kept_for_later_not_a_traceback(
        small_disk: Path) -> None:
    # The finding: the running agent's acknowledge died with sqlite3.OperationalError.
    path, clock = small_disk / "outbox.db", Clock()
    Outbox(path, max_rows=10_000).close()
    box = Outbox(path, max_rows=10_000, clock=clock)
    box.append(signed_rows(0, 100))
    filler = fill(small_disk)
    box.release_through(49)  # the WAL has no room for the deletes
    assert isinstance(box.fault, OutboxDiskFull) and box.acks_deferred == 50
    assert box.depth == 100
    with pytest.raises(OutboxDiskFull):  # refused without touching the disk until the retry
        box.append(signed_rows(100, 1))
    assert box.disk_errors == 1
    filler.unlink()
    clock.now += WRITE_RETRY_S
    box.release_through(59)
    assert box.fault is None and box.depth == 40
    box.close()
    assert rows_in(path) == list(range(60, 100))


def test_outbox_on_a_read_only_filesystem_opens_read_only_then_writes_once_remounted(
        small_disk: Path) -> None:
    path, clock = small_disk / "outbox.db", Clock()
    box = Outbox(path, max_rows=10_000)
    box.append(signed_rows(0, 30))
    box.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    box = Outbox(path, max_rows=10_000, clock=clock)  # before: "unable to open database file"
    assert not box.writable and isinstance(box.fault, OutboxReadOnly)
    assert [seq for seq, _ in box.pending(-1)] == list(range(30))
    with pytest.raises(OutboxReadOnly):
        box.append(signed_rows(30, 1))
    box.release_through(9)
    assert box.acks_deferred == 10
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    clock.now += WRITE_RETRY_S
    box.append(signed_rows(30, 2))
    assert box.writable and box.fault is None and box.acks_deferred == 10
    box.retry_release()
    box.close()
    assert rows_in(path) == list(range(10, 32))


# -- the running agent ----------------------------------------------------------------------

def disk_config(write_config: Callable[..., Path], outbox_dir: Path, **values: Any) -> Path:
    config = write_config(**values)
    text = config.read_text().replace(
        'path = "outbox.db"',
        f'path = "{outbox_dir / "outbox.db"}"\ndisk_warn_mb = 4\ndisk_floor_mb = 2')
    config.write_text(text)
    return config


def last_health(sub: Subscriber) -> dict[str, Any]:
    payloads = sub.payloads("/health")
    return json.loads(payloads[-1]) if payloads else {}


def loud_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info and r.levelno > logging.DEBUG]


def test_agent_warns_refuses_counts_and_recovers_as_its_disk_fills_and_empties(
        small_disk: Path, mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="reader_agent")
    sub = subscriber_factory(mosquitto.port, ack=True)
    source = FeedSource()
    agent = ReaderAgent(load_config(disk_config(write_config, small_disk,
                                                mqtt_port=mosquitto.port)), source=source)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        fill(small_disk, leave=3 * MB, name="logs")  # under the warning, above the floor
        assert wait_for(lambda: last_health(sub).get("disk_state") == "low", 20)
        source.feed(range(20))
        assert wait_for(lambda: len(sub.envelopes()) == 20, 30)

        filler = fill(small_disk, leave=MB)  # under the floor: refuse before SQLite fails
        assert wait_for(lambda: last_health(sub).get("disk_state") == "full", 20)
        source.feed(range(100, 130))
        assert wait_for(lambda: agent.refused_disk == 30, 20), agent.health(0.0)
        health = last_health(sub)
        assert health["disk_free_bytes"] <= MB and health["disk_floor_bytes"] == 2 * MB
        assert wait_for(lambda: last_health(sub).get("refused_disk") == 30, 10)

        filler.unlink()
        (small_disk / "logs").unlink()
        assert wait_for(lambda: last_health(sub).get("disk_state") == "ok", 20)
        source.feed(range(200, 210))
        assert wait_for(lambda: len(sub.envelopes()) == 30, 30)
        assert wait_for(lambda: last_health(sub).get("outbox_depth") == 0, 20)
        assert thread.is_alive()
    finally:
        agent.stopping.set()
        thread.join(15)
    key = load_key(agent.config.key_file).public_key()
    # Contiguous: nothing refused took a sequence number.
    assert sorted(verified_events(sub.envelopes(), key)) == list(range(30))
    assert agent.refused_outbox_full == 0 and agent.observations == 30
    disk_lines = [(r.levelname, r.getMessage()) for r in caplog.records
                  if r.name == "reader_agent.disk" and r.levelno >= logging.WARNING]
    # One line per change: low, full, (low again while the test deletes its two files), ok.
    assert disk_lines[0][0] == "WARNING" and "low" in disk_lines[0][1], disk_lines
    assert disk_lines[1][0] == "ERROR" and "full" in disk_lines[1][1], disk_lines
    assert "recovered after" in disk_lines[-1][1] and len(disk_lines) <= 4, disk_lines
    assert loud_tracebacks(caplog) == []


def spawn(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reader_agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def feed_lines(fifo: Path, tags: range, agent: subprocess.Popen[bytes]) -> None:
    """Write reads into the pipe the agent's replay reads, once it has opened its end."""
    def opened() -> int | None:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:  # ENXIO: no reader yet
            assert exc.errno == errno.ENXIO and agent.poll() is None, "the agent exited"
            return None
    fds: list[int] = []

    def writer() -> bool:
        fd = opened()
        if fd is not None:
            fds.append(fd)
        return bool(fds)

    assert wait_for(writer, 30)
    os.set_blocking(fds[0], True)
    with os.fdopen(fds[0], "w") as handle:
        handle.write("".join(f"{epc(n).hex()} 1 -40\n" for n in tags))


def test_agent_started_on_a_full_disk_runs_publishes_its_backlog_and_recovers(
        small_disk: Path, mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber], tmp_path: Path) -> None:
    # First run, broker away: 40 observations stay in the outbox.
    capture = tmp_path / "reads.txt"
    capture.write_text("".join(f"{epc(n).hex()} 1 -40\n" for n in range(40)))
    config = disk_config(write_config, small_disk, mqtt_port=1)
    agent = spawn(config)
    assert wait_for(lambda: rows_count(small_disk / "outbox.db") == 40, 30)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(20) == 0
    # Second run on a full disk, reads from a pipe the test writes into.
    capture.unlink()
    os.mkfifo(capture)
    config = disk_config(write_config, small_disk, mqtt_port=mosquitto.port,
                         settings="rate = 2000\nrepeat = true")  # reopens the pipe after EOF
    filler = fill(small_disk)
    sub = subscriber_factory(mosquitto.port, ack=True)
    agent = spawn(config)
    try:
        feed_lines(capture, range(100, 125), agent)
        assert wait_for(lambda: len(sub.envelopes()) == 40, 30)  # the backlog goes out
        assert wait_for(lambda: last_health(sub).get("refused_disk") == 25, 30), last_health(sub)
        health = last_health(sub)
        assert health["disk_state"] == "full" and health["disk_free_bytes"] == 0
        assert health["outbox_depth"] == 40  # acknowledged, but the deletes wait for room
        assert agent.poll() is None
        filler.unlink()
        assert wait_for(lambda: last_health(sub).get("disk_state") == "ok", 20)
        assert wait_for(lambda: last_health(sub).get("outbox_depth") == 0, 20), last_health(sub)
        feed_lines(capture, range(200, 210), agent)
        assert wait_for(lambda: len(sub.envelopes()) == 50, 30)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(10)
    assert agent.stderr is not None
    log = agent.stderr.read().decode()
    assert "Traceback" not in log and "outbox disk" in log and "recovered after" in log, log
    events = verified_events(sub.envelopes(), load_key(tmp_path / "keys" / "reader.key")
                             .public_key())
    assert sorted(events) == list(range(50))


def rows_count(path: Path) -> int:
    try:
        return len(rows_in(path))
    except sqlite3.Error:  # not created yet, or held by the agent
        return -1


def test_agent_on_a_card_the_kernel_turns_read_only_refuses_keeps_rows_and_runs_on(
        ext4_disk: Path, mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture,
        tmp_path: Path) -> None:
    caplog.set_level(logging.DEBUG, logger="reader_agent")
    sub = subscriber_factory(mosquitto.port, ack=True)
    source = FeedSource()
    agent = ReaderAgent(load_config(disk_config(write_config, ext4_disk,
                                                mqtt_port=mosquitto.port)), source=source)
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        source.feed(range(10))
        assert wait_for(lambda: len(sub.envelopes()) == 10, 30)
        mosquitto.stop()
        source.feed(range(100, 110))  # stored, not yet acknowledged
        assert wait_for(lambda: agent.observations == 20, 20)
        fail_ext4(ext4_disk)  # statvfs does not show this: the next write finds out
        source.feed(range(200, 205))
        assert wait_for(lambda: agent.refused_disk == 5, 20), agent.health(0.0)
        assert agent.disk_state() == "read_only"
        assert isinstance(agent.outbox.fault, OutboxReadOnly)
        mosquitto.start()  # the stored rows go out; their deletes cannot commit
        assert wait_for(lambda: len(set(sub.envelopes())) == 20, 30)
        assert wait_for(lambda: agent.outbox.acks_deferred == 10, 20), agent.health(0.0)
        assert wait_for(lambda: last_health(sub).get("disk_state") == "read_only", 20)
        health = agent.health(0.0)
        assert health["outbox_disk_errors"] >= 1 and health["outbox_depth"] == 10
        assert thread.is_alive()
    finally:
        agent.stopping.set()
        thread.join(15)
    assert not thread.is_alive()
    assert loud_tracebacks(caplog) == []
    unmount(ext4_disk)  # after an fsck an engineer mounts it again: the rows are there
    subprocess.run(["e2fsck", "-fy", str(tmp_path / "ext4.img")], capture_output=True,
                   check=False)
    subprocess.run(["mount", "-o", "loop", str(tmp_path / "ext4.img"), str(ext4_disk)],
                   check=True)
    # Rows the API had not acknowledged are all there. Released rows may come back too: a
    # release commits without an fsync of its own, and re-sending those is harmless.
    assert set(range(10, 20)) <= set(rows_in(ext4_disk / "outbox.db"))


# -- the pieces ----------------------------------------------------------------------------

def test_free_space_is_read_at_a_bounded_rate_and_after_a_burst_of_appends(
        small_disk: Path) -> None:
    clock = Clock()
    watch = DiskWatch(small_disk, warn_bytes=4 * MB, floor_bytes=2 * MB, clock=clock)
    assert watch.poll() is DiskState.OK
    filler = fill(small_disk, leave=MB)
    assert watch.poll() is DiskState.OK, "statvfs called again within CHECK_INTERVAL_S"
    assert watch.poll(appended_bytes=CHECK_AFTER_BYTES) is DiskState.FULL  # a burst: at once
    assert watch.refusing and watch.free_bytes is not None and watch.free_bytes <= MB
    filler.unlink()
    fill(small_disk, leave=int(2.1 * MB))  # above the floor, not above floor + HYSTERESIS
    clock.now += CHECK_INTERVAL_S
    assert watch.poll() is DiskState.FULL
    (small_disk / "filler").unlink()
    clock.now += CHECK_INTERVAL_S
    assert watch.poll() is DiskState.OK and not watch.refusing


def test_disk_thresholds_are_validated(write_config: Callable[..., Path]) -> None:
    config = write_config()
    defaults = load_config(config)
    assert (defaults.disk_warn_mb, defaults.disk_floor_mb) == (256, 32)
    text = config.read_text()
    for extra, error in (("disk_warn_mb = 10\ndisk_floor_mb = 10", "below disk_warn_mb"),
                         ("disk_floor_mb = 0", "outside"), ("disk_warn_mb = 1.5", "must be int")):
        config.write_text(text.replace("max_rows =", f"{extra}\nmax_rows ="))
        with pytest.raises(ConfigError, match=error):
            load_config(config)


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="test.outage")
    clock = Clock()
    outage = Outage(logging.getLogger("test.outage"), "reader /dev/rfid0", clock=clock)
    for _ in range(100):
        outage.fail("not ready (port missing)", logging.WARNING, exc=OSError("gone"))
        clock.now += 5
    outage.fail("no frame for 3.0 s", logging.WARNING)
    clock.now += REMIND_S
    outage.fail("no frame for 3.0 s", logging.WARNING)
    assert outage.recover() == 100 * 5 + REMIND_S
    loud = [r.getMessage() for r in caplog.records if r.levelno > logging.DEBUG]
    assert loud == [
        "reader /dev/rfid0: not ready (port missing)",
        "reader /dev/rfid0: now no frame for 3.0 s",
        "reader /dev/rfid0: still failing after 18 min 20 s (102 failures): no frame for 3.0 s",
        "reader /dev/rfid0: recovered after 18 min 20 s (102 failures)",
    ]
    assert not any(r.exc_info for r in caplog.records if r.levelno > logging.DEBUG)
    assert any(r.exc_info for r in caplog.records)  # the traceback is there, at DEBUG
