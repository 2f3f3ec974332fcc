"""Readiness across processes: a real `kitledger serve` whose ingest worker (a child process)
cannot reach, then reaches, then loses a real Mosquitto. `/readyz`, answered by an HTTP worker
(another process), must say so with the reason; `/metrics` must show the same condition; the
log must say it in one line, and not once per retry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker on a port of its own, not started: the test starts it when it wants."""
    data = tmp_path / "mosquitto"
    data.mkdir()
    made = MosquittoBroker(data, free_port())
    yield made
    made.stop()


def _readyz(node: ServeNode) -> httpx.Response:
    return httpx.get(f"http://127.0.0.1:{node.port}/readyz", timeout=10)


def _not_ready_for_the_broker(node: ServeNode) -> bool:
    answer = _readyz(node)
    return answer.status_code == 503 and "broker: ingest worker 0" in answer.json()["detail"]


def test_serve_is_not_ready_until_subscribed_and_says_why_when_the_broker_goes(
    tmp_path: Path, database: str, broker: MosquittoBroker
) -> None:
    node = ServeNode("ready-a", database_url=database, mqtt_url=broker.url, data_dir=tmp_path)
    node.start()
    try:
        # No broker at all: not ready, with the reason, and the gauge says which condition.
        assert wait_for(lambda: "unreachable" in _readyz(node).text, timeout=30), _readyz(
            node).text
        answer = _readyz(node)
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert f"127.0.0.1:{broker.port}" in detail and "refused" in detail.lower()
        assert 'kitledger_ready_condition{condition="broker"} 0.0' in node.metrics()
        assert 'kitledger_ready_condition{condition="database"} 1.0' in node.metrics()
        assert wait_for(lambda: "not subscribed to the broker" in node.log(), timeout=15)
        # The broker comes: ready, every condition holds.
        broker.start()
        assert wait_for(lambda: _readyz(node).status_code == 200, timeout=30), _readyz(node).text
        assert _readyz(node).json()["node"] == "ready-a"
        assert 'kitledger_ready_condition{condition="broker"} 1.0' in node.metrics()
        assert "subscribed to the broker again" in node.log()
        # The broker goes: not ready again, within the client's first retries.
        broker.stop()
        assert wait_for(lambda: _not_ready_for_the_broker(node), timeout=30), _readyz(node).text
    finally:
        node.terminate()
    # One error line when it started without a broker and one when it lost it: not a line
    # per retry (paho retries every 1-30 s).
    errors = [line for line in node.log().splitlines() if "not subscribed to the broker" in line]
    assert 1 <= len(errors) <= 3, errors
    assert "Traceback" not in node.log()


def test_a_stopped_node_leaves_no_broker_rows_behind(
    tmp_path: Path, database: str, broker: MosquittoBroker
) -> None:
    broker.start()
    node = ServeNode("ready-b", database_url=database, mqtt_url=broker.url, data_dir=tmp_path)
    node.start()
    try:
        assert wait_for(lambda: _readyz(node).status_code == 200, timeout=30), _readyz(node).text
    finally:
        assert node.terminate() == 0
    engine = make_engine(load_settings(database_url=database))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM broker_status")).scalar() == 0
    engine.dispose()
