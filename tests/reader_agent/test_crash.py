"""kill -9 the agent process mid-stream and restart it: no observation lost, no seq reused."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from reader_agent.identity import load_key

from tests.fixtures.mosquitto import MosquittoBroker
from tests.reader_agent.agent_support import Subscriber, verified_events, wait_for, write_capture

BASE = "kitledger/v1/testforce/stores/desk-1"


def spawn(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "reader_agent", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def last_health(sub: Subscriber) -> dict[str, object]:
    payloads = sub.payloads("/health")
    return json.loads(payloads[-1]) if payloads else {}


def test_kill_9_mid_stream_then_restart_loses_and_reuses_nothing(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber]) -> None:
    write_capture(tmp_path / "reads.txt", 2000)
    config = write_config(mqtt_port=mosquitto.port, settings="rate = 1000")
    sub = subscriber_factory(mosquitto.port, ack=True)
    assert wait_for(lambda: sub.client.is_connected(), 10)
    agent = spawn(config)
    try:
        assert wait_for(lambda: len(sub.envelopes()) >= 300, 60)
        agent.send_signal(signal.SIGKILL)
        agent.wait(10)
        # The broker publishes the Last Will when the dead agent's socket closes.
        assert wait_for(lambda: sub.payloads("/status")[-1:] == [b"offline"], 15)
        with sqlite3.connect(tmp_path / "outbox.db") as db:
            committed = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        assert 300 <= committed < 2000  # it really died mid-stream
        agent = spawn(config)  # replays the outbox, then the capture from its start
        assert wait_for(lambda: last_health(sub).get("reads_total") == 2000
                        and last_health(sub).get("outbox_depth") == 0, 60)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(20) == 0
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGKILL)
            agent.wait(10)
    with sqlite3.connect(tmp_path / "outbox.db") as db:
        next_seq = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()[0]
        left = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
    assert left == 0 and next_seq == committed + 2000
    key = load_key(tmp_path / "keys" / "reader.key")
    events = verified_events(sub.envelopes(), key.public_key())
    assert sorted(events) == list(range(next_seq))
    assert sub.payloads("/status")[-1] == b"offline"
