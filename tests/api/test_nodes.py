"""Two `kitledger serve` nodes on one PostgreSQL database and one Mosquitto, as real processes:
a node stopped under load hands its share over (every read answered once, none lost), and each
singleton role (anchorer, webhook dispatcher, scans) has exactly one holder, taken over when
its holder is killed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import IngestedObservation
from api.roles import Role
from tests.api.api_support import stored
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode, SteadyLoad, desk_readers
from tests.fixtures.polling import wait_for
from tests.fixtures.postgres import postgres_database

__all__ = ["postgres_database"]

ELECTED = {Role.ANCHORER.value, Role.WEBHOOKS.value, Role.OVERDUE_SCAN.value,
           Role.HELD_SCAN.value, Role.READER_HEALTH.value}
"""The roles two plain nodes hold between them (the cosigner runs only with witnesses)."""

READERS = 6


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A broker that logs every packet, so the test sees each node's SUBSCRIBE arrive."""
    data = tmp_path / "mosquitto"
    data.mkdir()
    broker = MosquittoBroker(data)
    broker.config_path.write_text(broker.config_path.read_text() + "log_type all\n")
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture(scope="module")
def migrated(postgres_database: str) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=postgres_database))
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def database(migrated: Engine) -> Engine:
    """The module's fresh database, emptied for each test."""
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with migrated.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return migrated


@pytest.fixture
def nodes(database: Engine, postgres_database: str, broker: MosquittoBroker,
          tmp_path: Path) -> Iterator[list[ServeNode]]:
    started = [ServeNode(name, database_url=postgres_database, mqtt_url=broker.url,
                         data_dir=tmp_path) for name in ("node-a", "node-b")]
    try:
        for node in started:
            node.start()
        for node in started:
            assert _wait_subscribed(broker, node), node.log()[-3000:]
        yield started
    finally:
        for node in started:
            node.kill()


def _wait_subscribed(broker: MosquittoBroker, node: ServeNode) -> bool:
    return wait_for(lambda: f"SUBSCRIBE from {node.client_id}" in broker.log(), timeout=60)


def test_a_node_stopped_under_load_hands_its_share_over(
    database: Engine, broker: MosquittoBroker, nodes: list[ServeNode],
) -> None:
    leaving, staying = nodes
    load = SteadyLoad(desk_readers(database, READERS), broker.port)
    load.start()
    try:
        # Both nodes are answering before one leaves.
        assert wait_for(lambda: load.sent() > 40 and len(load.unanswered()) < READERS)
        assert leaving.terminate() == 0, leaving.log()[-3000:]
        sent_at_exit = load.sent()
        assert wait_for(lambda: load.sent() > sent_at_exit + 20)  # the other node goes on
    finally:
        load.stop()
    try:
        assert wait_for(lambda: not load.unanswered(), timeout=30), load.unanswered()
        assert wait_for(lambda: stored(database, IngestedObservation) == load.sent())
        assert load.answered_twice() == {}
    finally:
        load.close()
    assert "Traceback" not in leaving.log(), leaving.log()[-3000:]
    assert staying.process is not None and staying.process.poll() is None


def _checkpoints(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM log_checkpoint")).scalar_one())


def _holders(nodes: list[ServeNode]) -> dict[str, list[str]]:
    """Role -> the nodes whose /readyz says they hold it."""
    holders: dict[str, list[str]] = {}
    for node in nodes:
        for role in node.roles():
            holders.setdefault(role, []).append(node.name)
    return holders


def test_each_role_has_one_holder_and_is_taken_over_when_it_is_killed(
    database: Engine, nodes: list[ServeNode],
) -> None:
    desk_readers(database, 1)  # a registration: north's log has a leaf for the anchorer to sign
    shared: list[dict[str, list[str]]] = []

    def all_held_once() -> bool:
        holders = _holders(nodes)
        shared.extend([holders] if any(len(n) > 1 for n in holders.values()) else [])
        return set(holders) == ELECTED

    assert wait_for(all_held_once, timeout=60), _holders(nodes)
    assert wait_for(lambda: _checkpoints(database) > 0, timeout=60)  # the one anchorer signs
    victim_name = _holders(nodes)[Role.ANCHORER.value][0]
    victim = next(n for n in nodes if n.name == victim_name)
    survivor = next(n for n in nodes if n is not victim)
    victim.kill()
    # Within a bound (a deadline for a broken take-over, not a speed check).
    assert wait_for(lambda: survivor.roles() == ELECTED, timeout=60), survivor.roles()
    assert shared == []
    gauges = dict(re.findall(r'kitledger_role_held\{role="([^"]+)"\} ([\d.]+)',
                             survivor.metrics()))
    assert {role for role, value in gauges.items() if float(value) == 1.0} == ELECTED
    assert gauges[Role.COSIGNER.value] == "0.0"
    assert "this process now holds role anchorer" in survivor.log()
    for node in nodes:  # two anchorers raced to record the same checkpoint before
        assert "anchoring round failed" not in node.log(), node.log()[-3000:]
