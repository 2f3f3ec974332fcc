"""Anchoring that notices: a real anvil node killed and restarted empty, or restored from an
older state; a contract address without code; settings that cannot work (neither an admin key
nor a contract, a log key that is not the bound one, a relative key directory). Each time the
service must say so, once, in the log, in `/readyz`, in `/metrics` and in an alert; mark the
anchors the chain no longer holds as lost (kept as history, never shown as anchored); and anchor
again only where the operator says (a new `anchor_contract`), never on a contract it deployed
on its own.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from web3.types import RPCEndpoint, Wei

from api.anchor_status import ANCHORING_ALERT
from api.anchoring import CHAIN_CHECK_S, AnchoringService
from api.app import create_app
from api.auth import create_api_client
from api.config import Settings, load_settings
from api.db import make_engine
from api.metrics import watch_anchoring
from api.migrate import upgrade
from api.models import Alert, AnchorContract, AnchorHistory, AssetClass, Scope
from api.models.assets import AssetCreate
from api.models.custody import LogCheckpoint
from api.registry import create_asset
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import ContractRevert
from ledger.chain.provider import connect
from ledger.core.bundle_parse import parse_bundle
from tests.api.api_support import register_reader
from tests.ledger.chain.anvil_node import AnvilNode

SECRET = "y" * 40


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(made)
    yield made
    made.dispose()


@pytest.fixture
def node(tmp_path: Path) -> Iterator[AnvilNode]:
    """A node of this test's own: tests here kill it, empty it and restore it."""
    started = AnvilNode(tmp_path / "anvil", block_time=0.2)
    started.state.parent.mkdir()
    started.start()
    yield started
    started.stop()


class Clock:
    """Wall time pushed past the service's chain check on every step."""

    def __init__(self) -> None:
        self.now = time.time()

    def tick(self) -> float:
        self.now += CHAIN_CHECK_S
        return self.now


def _add_assets(engine: Engine, *ids: str) -> None:
    """Each registration is one leaf of the north log."""
    with Session(engine) as session:
        if session.get(AssetClass, ("north", "radio")) is None:
            session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
            session.flush()
        for asset_id in ids:
            number = int(asset_id.removeprefix("R-"))
            create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
                id=asset_id, class_id="radio", epc_hex=f"E280116060000205{number:08X}",
                home_site_id="north-store"))
        session.commit()


def _world(engine: Engine) -> None:
    register_reader(engine)
    _add_assets(engine, "R-1")


def _admin(node: AnvilNode, tmp_path: Path) -> tuple[LocalAccount, Path]:
    admin: LocalAccount = Account.create()
    _fund(node, admin.address)
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin.key.hex())
    key_file.chmod(0o600)
    return admin, key_file


def _fund(node: AnvilNode, address: str) -> None:
    connect(node.url).provider.make_request(
        RPCEndpoint("anvil_setBalance"), [address, hex(10**21)])


def _settings(tmp_path: Path, node: AnvilNode, key_file: Path, **extra: Any) -> Settings:
    return load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys",
                         anchor_chain_url=node.url, anchor_admin_key_file=key_file,
                         anchor_interval_s=1, **extra)


def _embedded(tmp_path: Path) -> Settings:
    return load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys",
                         anchor_interval_s=1)


def _until(service: AnchoringService, clock: Clock, done: Callable[[], bool],
           rounds: int = 300) -> None:
    for _ in range(rounds):
        service.step(clock.tick())
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("the anchoring service never got there")


def _anchoring(settings: Settings, engine: Engine, clock: Clock) -> AnchoringService:
    """A started service that has anchored the north log's first leaf."""
    service = AnchoringService(settings, engine)
    service.start(clock.now)
    _until(service, clock, _anchored(engine, 1))
    return service


def _checkpoint(engine: Engine, nth: int) -> LogCheckpoint | None:
    """The north log's `nth` checkpoint (1: the first), by size: the log also holds the
    registry's records, so sizes themselves depend on how the world was registered."""
    with Session(engine) as session:
        return session.exec(select(LogCheckpoint).where(LogCheckpoint.agency_id == "north")
                            .order_by(col(LogCheckpoint.tree_size))
                            .offset(nth - 1)).first()


def _anchored(engine: Engine, nth: int) -> Callable[[], bool]:
    def check() -> bool:
        row = _checkpoint(engine, nth)
        return row is not None and row.tx_hash is not None
    return check


def _history(engine: Engine) -> list[AnchorHistory]:
    with Session(engine) as session:
        return list(session.exec(select(AnchorHistory).order_by(col(AnchorHistory.id))))


def _open_alerts(engine: Engine) -> list[Alert]:
    with Session(engine) as session:
        return list(session.exec(select(Alert).where(
            Alert.kind == ANCHORING_ALERT, Alert.resolved_at == None)))  # noqa: E711


METRICS_KEY = "metrics-" + "m" * 32


def _client(engine: Engine, tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    with Session(engine) as session:
        _, key = create_api_client(session, agency_id="north", name="auditor",
                                   scopes=[Scope.AUDIT_READ], server_secret=SECRET,
                                   now=datetime.now(UTC))
        session.commit()
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys",
                             metrics_key=METRICS_KEY)
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False,
                        headers={"Authorization": f"Bearer {METRICS_KEY}"})  # for /metrics
    watch_anchoring(engine)  # as `serve` does for each HTTP worker
    return client, {"Authorization": f"Bearer {key}"}


def _state_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "kitledger.anchoring" and text in r.getMessage()]


def test_a_chain_restarted_empty_is_noticed_marked_lost_and_only_anchored_again_where_told(
    engine: Engine, node: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kitledger.anchoring")
    _world(engine)
    admin, key_file = _admin(node, tmp_path)
    settings = _settings(tmp_path, node, key_file)  # no anchor_contract: deployed once
    clock = Clock()
    service = _anchoring(settings, engine, clock)
    first = _checkpoint(engine, 1)
    assert first is not None and first.contract is not None
    client, auth = _client(engine, tmp_path)
    assert client.get("/readyz").status_code == 200

    node.stop()  # the node comes back with nothing: no blocks, no contract
    node.state.unlink()
    node.start()
    _fund(node, admin.address)
    for _ in range(3):
        service.step(clock.tick())

    # Noticed once, with the reason; the anchor is history, marked lost, never shown anchored.
    assert len(_state_lines(caplog, "contract_missing")) == 1
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "contract_missing" in ready.json()["detail"] and first.contract in ready.json()["detail"]
    row = _checkpoint(engine, 1)
    assert row is not None and row.tx_hash is None and row.contract is None
    (lost,) = _history(engine)
    assert (lost.status, lost.tree_size, lost.tx_hash, lost.contract) == (
        "lost", row.tree_size, first.tx_hash, first.contract)
    answer = client.get("/v1/checkpoints", headers=auth).json()
    assert answer["tree_size"] == row.tree_size and answer["anchor"] is None
    bundle = client.get("/v1/audit/bundles", params={"asset": "R-1"}, headers=auth)
    assert bundle.status_code == 200, bundle.text
    assert [c.anchor for c in parse_bundle(bundle.content).checkpoints] == [None]
    metrics = client.get("/metrics").text
    assert 'kitledger_anchoring_state{agency="north",state="contract_missing"} 1.0' in metrics
    assert 'kitledger_anchoring_state{agency="north",state="ok"} 0.0' in metrics
    (alert,) = _open_alerts(engine)
    assert alert.agency_id == "north" and "contract_missing" in alert.detail
    assert service.pending is not None and service.pending.count(
        service.agencies["north"].anchorer.chain_log_id, "lost") == 1
    assert not service.pending.unfinished(service.agencies["north"].anchorer.chain_log_id)
    service.close()

    # A restart with the same settings deploys nothing: the remembered contract is still gone.
    again = AnchoringService(settings, engine)
    again.start(clock.tick())
    again.step(clock.tick())
    again.close()
    assert again.consortium is not None and again.consortium.address == first.contract
    assert client.get("/readyz").status_code == 503
    with Session(engine) as session:
        assert len(session.exec(select(AnchorContract)).all()) == 1

    # The operator deploys a new contract and configures it: anchored there, history kept.
    w3 = connect(node.url)
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": admin.address, "value": Wei(1)})
    _bump_nonce(w3, admin)  # the same account's first deployment would reuse the old address
    fresh = CustodyAnchorClient.deploy(w3, admin).address
    assert fresh.lower() != first.contract.lower()
    moved = AnchoringService(_settings(tmp_path, node, key_file, anchor_contract=fresh), engine)
    moved.start(clock.tick())
    _until(moved, clock, _anchored(engine, 1))
    moved.close()
    row = _checkpoint(engine, 1)
    assert row is not None and row.contract == fresh
    assert [(h.status, h.contract) for h in _history(engine)] == [("lost", first.contract)]
    assert client.get("/readyz").status_code == 200
    assert _open_alerts(engine) == []
    assert client.get("/v1/checkpoints", headers=auth).json()["anchor"]["contract"] == fresh


def _bump_nonce(w3: Any, account: LocalAccount) -> None:
    tx = {"to": account.address, "value": 0, "gas": 21_000, "gasPrice": int(w3.eth.gas_price),
          "nonce": w3.eth.get_transaction_count(account.address), "chainId": w3.eth.chain_id}
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction))


def test_a_contract_redeployed_at_the_same_address_on_a_replaced_chain_is_not_adopted(
    engine: Engine, node: AnvilNode, tmp_path: Path
) -> None:
    _world(engine)
    admin, key_file = _admin(node, tmp_path)
    w3 = connect(node.url)
    contract = CustodyAnchorClient.deploy(w3, admin).address  # the admin's first transaction
    settings = _settings(tmp_path, node, key_file, anchor_contract=contract)
    clock = Clock()
    service = _anchoring(settings, engine, clock)
    service.close()
    node.stop()
    node.state.unlink()
    node.start()
    _fund(node, admin.address)
    assert CustodyAnchorClient.deploy(connect(node.url), admin).address == contract
    restarted = AnchoringService(settings, engine)
    restarted.start(clock.tick())
    for _ in range(3):
        restarted.step(clock.tick())
    restarted.close()
    client, _ = _client(engine, tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "chain_replaced" in ready.json()["detail"]
    assert [h.status for h in _history(engine)] == ["lost"]
    row = _checkpoint(engine, 1)
    assert row is not None and row.tx_hash is None
    # Nothing was done on the look-alike contract: the log was not even registered there.
    with pytest.raises(ContractRevert, match="UnknownLog"):
        CustodyAnchorClient(connect(node.url), contract, admin).latest_checkpoint(
            service.agencies["north"].anchorer.chain_log_id)


def test_a_chain_restored_from_an_older_state_loses_the_newer_anchor_which_is_sent_again(
    engine: Engine, node: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kitledger.anchoring")
    _world(engine)
    _, key_file = _admin(node, tmp_path)
    settings = _settings(tmp_path, node, key_file)
    clock = Clock()
    service = _anchoring(settings, engine, clock)
    node.stop()  # a backup of the chain with the first anchor only
    older = tmp_path / "older-state.json"
    shutil.copy(node.state, older)
    node.start()
    _add_assets(engine, "R-2")
    _until(service, clock, _anchored(engine, 2))
    before = _checkpoint(engine, 2)
    assert before is not None and before.block_hash is not None

    node.stop()
    shutil.copy(older, node.state)  # restored from the backup: the second anchor is gone
    node.start()
    _until(service, clock, lambda: bool(_history(engine)) and _anchored(engine, 2)())
    service.close()

    (lost,) = _history(engine)
    assert (lost.status, lost.tree_size, lost.block_hash) == (
        "lost", before.tree_size, before.block_hash)
    after = _checkpoint(engine, 2)
    assert after is not None and after.block_number is not None
    # The same signed transaction, mined again: what the database says is what the chain has.
    assert after.tx_hash == before.tx_hash
    chain = CustodyAnchorClient(connect(node.url), str(after.contract), Account.create())
    # (anvil may mine it into an identical block: same parent, transaction and second)
    assert chain.block_hash(after.block_number) == after.block_hash
    assert len(_state_lines(caplog, "marked lost")) == 1
    assert len(_state_lines(caplog, "recovered after")) >= 1
    client, _ = _client(engine, tmp_path)
    assert client.get("/readyz").status_code == 200


def test_a_node_outage_is_logged_once_and_its_end_with_how_long_it_lasted(
    engine: Engine, node: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kitledger.anchoring")
    _world(engine)
    _, key_file = _admin(node, tmp_path)
    clock = Clock()
    service = _anchoring(_settings(tmp_path, node, key_file), engine, clock)
    node.stop()
    caplog.clear()
    _add_assets(engine, "R-2")
    for _ in range(6):
        service.step(clock.tick())
    (warning,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "unavailable: node request failed" in warning.getMessage()
    assert all(r.exc_info is None for r in caplog.records if r.levelno > logging.DEBUG)
    client, _ = _client(engine, tmp_path)
    assert client.get("/readyz").status_code == 200  # an outage is retried, not an operator's
    assert 'state="unavailable"} 1.0' in client.get("/metrics").text
    node.start()
    _until(service, clock, _anchored(engine, 2))
    service.step(clock.tick())
    service.close()
    (recovered,) = _state_lines(caplog, "recovered after")
    assert "was unavailable" in recovered


def test_a_contract_address_without_code_is_refused_at_start(
    engine: Engine, node: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _world(engine)
    _, key_file = _admin(node, tmp_path)
    nowhere = Account.create().address
    service = AnchoringService(_settings(tmp_path, node, key_file, anchor_contract=nowhere),
                               engine)
    clock = Clock()
    service.start(clock.now)
    service.step(clock.tick())
    service.close()
    client, _ = _client(engine, tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "contract_missing" in ready.json()["detail"] and nowhere in ready.json()["detail"]
    row = _checkpoint(engine, 1)
    assert row is None or row.tx_hash is None


def test_a_node_without_an_admin_key_or_a_contract_is_not_ready_with_the_reason(
    engine: Engine, node: AnvilNode, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _world(engine)
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "k",
                             anchor_chain_url=node.url)
    service = AnchoringService(settings, engine)
    service.start()  # says why, in one line, and keeps saying it instead of dying
    service.step()
    service.close()
    (line,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "set anchor_contract" in line.getMessage() and line.exc_info is None
    client, _ = _client(engine, tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "misconfigured" in ready.json()["detail"]
    assert "never deploys" in ready.json()["detail"]


def test_a_key_directory_without_the_bound_log_key_makes_no_key_and_is_not_ready(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _world(engine)
    clock = Clock()
    first = _embedded(tmp_path)
    _anchoring(first, engine, clock).close()
    elsewhere = tmp_path / "elsewhere"  # the same relative setting read from another folder
    moved = AnchoringService(first.model_copy(update={"log_key_dir": elsewhere}), engine)
    moved.start(clock.tick())
    moved.step(clock.tick())
    moved.close()
    assert not (elsewhere / "north.log.key").exists()
    client, _ = _client(engine, tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert "agency north: misconfigured" in ready.json()["detail"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "north" in errors[0] and str(elsewhere) in errors[0]


def test_relative_key_paths_follow_the_config_file_not_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "etc" / "kitledger.toml"
    config.parent.mkdir()
    config.write_text('log_key_dir = "keys"\nanchor_admin_key_file = "admin.key"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(config).log_key_dir == config.parent / "keys"
    assert load_settings(config).anchor_admin_key_file == config.parent / "admin.key"
    monkeypatch.setenv("KITLEDGER_CONFIG", str(config))
    monkeypatch.chdir(config.parent.parent)
    assert load_settings().log_key_dir == config.parent / "keys"
    monkeypatch.delenv("KITLEDGER_CONFIG")
    from api.errors import ConfigError

    with pytest.raises(ConfigError, match="log_key_dir must be an absolute path"):
        load_settings(environment="production", secret_key=SECRET, log_key_dir="keys")
    assert load_settings(log_key_dir="keys").log_key_dir == tmp_path / "keys"


def test_the_embedded_chain_reports_ok_and_the_state_gauge(
    engine: Engine, tmp_path: Path
) -> None:
    _world(engine)
    clock = Clock()
    _anchoring(_embedded(tmp_path), engine, clock).close()
    client, _ = _client(engine, tmp_path)
    assert client.get("/readyz").status_code == 200
    metrics = client.get("/metrics").text
    assert 'kitledger_anchoring_state{agency="north",state="ok"} 1.0' in metrics
    assert 'kitledger_anchoring_service_state{state="ok"} 1.0' in metrics
