"""Readiness across processes: a real `kitledger serve` whose ingest worker (a child process)
cannot reach, then reaches, then loses a real Mosquitto. `/readyz`, answered by an HTTP worker
(another process), must say so with the reason; `/metrics` must show the same condition; the
log must say it in one line, and not once per retry."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, text
from web3.types import RPCEndpoint

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from ledger.chain.provider import connect
from tests.api.api_support import register_reader
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.processes import children
from tests.ledger.chain.anvil_node import AnvilNode


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


def _wait_ready(node: ServeNode, timeout: float = 60) -> None:
    assert wait_for(lambda: _readyz(node).status_code == 200, timeout=timeout), _readyz(
        node).text


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
        assert wait_for(lambda: "unreachable" in _readyz(node).text, timeout=60), _readyz(
            node).text
        answer = _readyz(node)
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert f"127.0.0.1:{broker.port}" in detail and "refused" in detail.lower()
        assert 'kitledger_ready_condition{condition="broker"} 0.0' in node.metrics()
        assert 'kitledger_ready_condition{condition="database"} 1.0' in node.metrics()
        assert wait_for(lambda: "not subscribed to the broker" in node.log(), timeout=30)
        # The broker comes: ready, every condition holds.
        broker.start()
        _wait_ready(node)
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


DYNAMIC_SECURITY = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")
REFUSE_SUBSCRIPTIONS = json.dumps({
    "defaultACLAccess": {"publishClientSend": True, "publishClientReceive": True,
                         "subscribe": False, "unsubscribe": True},
    "clients": [], "groups": [], "roles": [],
})
"""Mosquitto's dynamic security plugin, refusing every subscription: connections succeed,
SUBACKs say "Not authorized" (its `acl_file` grants every subscription and filters
messages instead, so it cannot show this)."""


@pytest.mark.skipif(not DYNAMIC_SECURITY.exists(), reason="Mosquitto's dynamic security "
                    "plugin is not installed (Debian: mosquitto 2.0)")
def test_a_broker_that_refuses_the_subscription_is_not_ready_though_connected(
    tmp_path: Path, database: str
) -> None:
    data = tmp_path / "acl-broker"
    data.mkdir()
    rules = data / "dynamic-security.json"
    rules.write_text(REFUSE_SUBSCRIPTIONS)
    port = free_port()
    broker = MosquittoBroker(data, port, listeners=(
        f"listener {port} 127.0.0.1\nallow_anonymous true\n"
        f"plugin {DYNAMIC_SECURITY}\nplugin_opt_config_file {rules}\n"))
    broker.start()
    node = ServeNode("ready-c", database_url=database, mqtt_url=broker.url, data_dir=tmp_path)
    node.start()
    try:
        assert wait_for(lambda: "refused" in _readyz(node).text, timeout=60), _readyz(node).text
        detail = _readyz(node).json()["detail"]
        assert "broker: ingest worker 0: refused:" in detail and "Not authorized" in detail
        assert 'kitledger_ready_condition{condition="broker"} 0.0' in node.metrics()
    finally:
        node.terminate()
        broker.stop()
    refused = [line for line in node.log().splitlines()
               if "refused the events subscription" in line]
    assert refused and all('"level": "error"' in line for line in refused)


def test_a_stopped_node_leaves_no_broker_rows_behind(
    tmp_path: Path, database: str, broker: MosquittoBroker
) -> None:
    broker.start()
    node = ServeNode("ready-b", database_url=database, mqtt_url=broker.url, data_dir=tmp_path)
    node.start()
    try:
        _wait_ready(node)
    finally:
        assert node.terminate() == 0
    engine = make_engine(load_settings(database_url=database))
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM broker_status")).scalar() == 0
    engine.dispose()


def test_serve_deploys_its_contract_once_and_uses_it_again_on_the_next_start(
    tmp_path: Path, database: str, mosquitto: MosquittoBroker, anvil: AnvilNode
) -> None:
    """Without `anchor_contract`, the first `serve` on a node deploys the contract and the
    database remembers it; the next `serve` (a new process, a new node id) anchors there."""
    admin: LocalAccount = Account.create()
    connect(anvil.url).provider.make_request(
        RPCEndpoint("anvil_setBalance"), [admin.address, hex(10**21)])
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin.key.hex())
    key_file.chmod(0o600)
    env = {"KITLEDGER_ANCHOR_CHAIN_URL": anvil.url,
           "KITLEDGER_ANCHOR_ADMIN_KEY_FILE": str(key_file)}
    engine = make_engine(load_settings(database_url=database))
    contracts: list[str] = []
    for run in ("first", "second"):
        with engine.begin() as conn:  # what the run before said is not this run's word
            conn.execute(text("DELETE FROM anchoring_status"))
        node = ServeNode(f"contract-{run}", database_url=database, mqtt_url=mosquitto.url,
                         data_dir=tmp_path, env=env)
        node.start()
        try:
            _wait_ready(node, timeout=60)
            assert wait_for(lambda: _service_contract(engine) is not None, timeout=60)
        finally:
            assert node.terminate() == 0
        contracts.append(str(_service_contract(engine)))
        deployed = "deployed CustodyAnchor contract" in node.log()
        assert deployed == (run == "first"), node.log()[-2000:]
    assert contracts[0] == contracts[1]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM anchor_contract")).scalar() == 1
    engine.dispose()


def _service_contract(engine: Engine) -> str | None:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT contract FROM anchoring_status WHERE agency_id = ''"
                                  " AND state = 'ok'")).scalar()
    return None if found is None else str(found)


def test_anchoring_that_cannot_work_reaches_readyz_from_its_own_process(
    tmp_path: Path, database: str, mosquitto: MosquittoBroker, anvil: AnvilNode
) -> None:
    """The anchoring process, not the HTTP workers, finds these; `/readyz` must say them."""
    engine = make_engine(load_settings(database_url=database))
    register_reader(engine)  # north's log gets its first leaf, and so a key to bind
    engine.dispose()
    # A chain node named, with neither a contract nor an admin key to deploy one: the process
    # used to die and /readyz said 200.
    keyless = ServeNode("anchor-keyless", database_url=database, mqtt_url=mosquitto.url,
                        data_dir=tmp_path, env={"KITLEDGER_ANCHOR_CHAIN_URL": anvil.url})
    _assert_not_ready_for(keyless, "anchoring: service: misconfigured", "anchor_contract")
    # Signing binds north's log to a key in keys/; a node looking in another folder must
    # neither make a new key nor sign, and must say where it looked.
    signer = ServeNode("anchor-signer", database_url=database, mqtt_url=mosquitto.url,
                       data_dir=tmp_path)
    signer.start()
    try:
        _wait_ready(signer)
        assert wait_for(lambda: (tmp_path / "keys" / "north.log.key").exists(), timeout=60)
    finally:
        assert signer.terminate() == 0
    elsewhere = tmp_path / "elsewhere"
    moved = ServeNode("anchor-moved", database_url=database, mqtt_url=mosquitto.url,
                      data_dir=tmp_path, env={"KITLEDGER_LOG_KEY_DIR": str(elsewhere)})
    _assert_not_ready_for(moved, "anchoring: agency north: misconfigured", str(elsewhere))
    assert not (elsewhere / "north.log.key").exists()


def _assert_not_ready_for(node: ServeNode, *words: str) -> None:
    node.start()
    try:
        # Whichever comes first, the worker's subscription or anchoring's verdict: wait for both.
        assert wait_for(lambda: 'condition="broker"} 1.0' in node.metrics(), timeout=60)
        assert wait_for(lambda: words[0] in _readyz(node).text, timeout=60), _readyz(node).text
        answer = _readyz(node)
        assert answer.status_code == 503 and all(w in answer.json()["detail"] for w in words)
        assert "broker" not in answer.json()["detail"]
        assert 'kitledger_ready_condition{condition="anchoring"} 0.0' in node.metrics()
    finally:
        assert node.terminate() == 0
    assert "Traceback" not in node.log()


def test_an_ingest_worker_killed_makes_its_node_not_ready_at_once(
    tmp_path: Path, database: str, mosquitto: MosquittoBroker
) -> None:
    node = ServeNode("ready-d", database_url=database, mqtt_url=mosquitto.url,
                     data_dir=tmp_path)
    node.start()
    try:
        _wait_ready(node)
        assert node.process is not None
        # The ingest worker is the child of serve with children of its own (its verifier).
        (worker,) = [pid for pid in children(node.process.pid) if children(pid)]
        os.kill(worker, signal.SIGKILL)
        assert wait_for(lambda: "stopped" in _readyz(node).text, timeout=10), _readyz(node).text
        assert _readyz(node).json()["detail"] == (
            "broker: ingest worker 0: stopped: its process exited with code -9")
    finally:
        assert node.terminate() == 0
    (line,) = [line for line in node.log().splitlines() if "exited with code" in line]
    assert '"level": "error"' in line and "ingest-0 process exited with code -9" in line

