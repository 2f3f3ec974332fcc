"""Nothing lost, end to end: the real agent, a real Mosquitto, the real ingest worker.

The agent keeps every outbox row until the API's ack (`through`) covers it, not until the
broker's PUBACK: a broker that dies before saving its queue must not lose observations, and
a killed ingest node must not strand its readers' share of the shared subscription.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from reader_agent.agent import ReaderAgent
from reader_agent.config import AgentConfig, load_config
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import IngestedObservation
from tests.api.api_support import RegisteredReader, register_reader
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.reader_agent.agent_support import AGENT_TOML, ListSource

N = 600
"""Observations: several packed messages, a few in-flight windows."""


def agent_config(tmp_path: Path, reader: RegisteredReader, port: int) -> AgentConfig:
    """The agent's config and key: registered at the API as `reader` (testforce/stores/desk-1)."""
    (tmp_path / "keys").mkdir()
    key_file = tmp_path / "keys" / "reader.key"
    key_file.write_bytes(reader.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                  NoEncryption()))
    key_file.chmod(0o600)
    path = tmp_path / "agent.toml"
    path.write_text(AGENT_TOML.format(protocol="replay", port=tmp_path / "none.txt",
                                      settings="rate = 1", max_rows=100_000, mqtt_port=port))
    config = load_config(path)
    # Small windows: the N rows go out as many messages, several windows' worth.
    return replace(config, mqtt=replace(config.mqtt, inflight_window=100, unacked_max=400))


class PacedSource(ListSource):
    """`ListSource` at about `per_s` reads a second: a stream, not one burst."""

    def __init__(self, tags: list[int], per_s: float) -> None:
        super().__init__(tags)
        self._gap = 1.0 / per_s

    def reads(self) -> Iterator[Any]:
        for read in super().reads():
            time.sleep(self._gap)
            yield read


def stored(engine: Engine) -> tuple[int, set[int]]:
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(IngestedObservation)).one()
        seqs = set(session.exec(select(col(IngestedObservation.seq))).all())
    return count, seqs


@pytest.fixture
def desk(engine: Engine) -> RegisteredReader:
    return register_reader(engine, agency_id="testforce", site_id="stores", reader_id="desk-1")


@pytest.fixture
def lossy_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker that saves its queues only hourly: kill -9 loses everything it held."""
    data = tmp_path / "lossy-mosquitto"
    data.mkdir()
    broker = MosquittoBroker(data, autosave_s=3600)
    broker.start()
    yield broker
    broker.kill()


def test_broker_killed_while_api_away_loses_nothing_and_outbox_empties_only_after(
    engine: Engine, desk: RegisteredReader, lossy_broker: MosquittoBroker, tmp_path: Path,
) -> None:
    settings = load_settings(mqtt_url=lossy_broker.url, ingest_batch_wait_ms=5)
    # The API has been here (its subscription exists at the broker), then went away.
    first = IngestWorker(settings, IngestPipeline(engine, settings), client_id="ingest-e2e")
    first.start()
    assert first.wait_subscribed(10)
    first.stop()
    agent = ReaderAgent(agent_config(tmp_path, desk, lossy_broker.port),
                        source=ListSource(list(range(N))))
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    worker: IngestWorker | None = None
    try:
        # Everything observed, stored in the outbox and handed to the broker, PUBACKed.
        assert wait_for(lambda: agent.outbox.next_seq == N and agent.delivery.sent_up_to >= 0
                        and agent.publisher.inflight == 0, 60)
        lossy_broker.kill()  # its queue, never saved, is gone
        lossy_broker.start()
        assert wait_for(lambda: agent.publisher.connected, 20)
        assert agent.outbox.depth == N  # nothing released without the API's word
        worker = IngestWorker(settings, IngestPipeline(engine, settings), client_id="ingest-e2e")
        worker.start()
        assert worker.wait_subscribed(10)
        assert wait_for(lambda: stored(engine)[0] >= N, 60), (stored(engine)[0], agent.health(0))
        assert wait_for(lambda: agent.outbox.depth == 0, 30), agent.health(0)
    finally:
        agent.stopping.set()
        thread.join(15)
        if worker is not None:
            worker.stop()
    count, seqs = stored(engine)
    assert count == N and seqs == set(range(N))  # all of them, each once
    assert agent.delivery.acked_through == N - 1


def _serve_worker(url: str, database_url: str, name: str) -> subprocess.Popen[bytes]:
    """An ingest worker in a process of its own (so it can be killed -9), node id `name`."""
    code = (
        "import sys, time\n"
        "from api.config import load_settings\n"
        "from api.db import make_engine\n"
        "from api.ingest.pipeline import IngestPipeline\n"
        "from api.ingest.worker import IngestWorker\n"
        "s = load_settings(mqtt_url=sys.argv[1], database_url=sys.argv[2],"
        " ingest_batch_wait_ms=5, node_id=sys.argv[3])\n"
        "w = IngestWorker(s, IngestPipeline(make_engine(s), s))\n"
        "w.start()\n"
        "w.wait_subscribed(10)\n"
        "print('subscribed', flush=True)\n"
        "time.sleep(3600)\n"
    )
    return subprocess.Popen([sys.executable, "-c", code, url, database_url, name],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)


def test_a_killed_ingest_node_strands_no_reader(
    engine: Engine, desk: RegisteredReader, mosquitto: MosquittoBroker, tmp_path: Path,
) -> None:
    """Two ingest nodes share the subscription; one is killed -9 mid-stream. Its share of the
    messages is lost with it at the broker; the agent re-sends what the API did not ack, and
    the survivor stores every observation exactly once."""
    database_url = engine.url.render_as_string(hide_password=False)
    nodes = [_serve_worker(mosquitto.url, database_url, name) for name in ("node-a", "node-b")]
    agent: ReaderAgent | None = None
    thread: threading.Thread | None = None
    try:
        for node in nodes:
            assert node.stdout is not None and node.stdout.readline() == b"subscribed\n"
        tags = list(range(3 * N))
        agent = ReaderAgent(agent_config(tmp_path, desk, mosquitto.port),
                            source=PacedSource(tags, per_s=300))
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        assert wait_for(lambda: stored(engine)[0] >= N // 2, 60)
        os.kill(nodes[0].pid, signal.SIGKILL)
        nodes[0].wait(10)
        running = agent
        assert wait_for(lambda: stored(engine)[0] >= len(tags), 90), running.health(0)
        assert wait_for(lambda: running.outbox.depth == 0, 30), running.health(0)
    finally:
        if agent is not None and thread is not None:
            agent.stopping.set()
            thread.join(15)
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait(10)
    count, seqs = stored(engine)
    assert count == 3 * N and seqs == set(range(3 * N))
