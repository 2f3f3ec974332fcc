"""An agency's server on a real anvil node holding only its own keys (log key, anchorer
account), never the consortium admin's: it anchors once the admin's offline-signed orders are
submitted, is refused with a named reason (state, `/readyz`) before that and after a revocation,
and recovers when the role is granted again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine
from sqlmodel import Session

from api.anchoring import AnchoringService
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models.anchoring import AnchoringStatus
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import connect
from ledger.cli import main
from ledger.core.envelope import key_id
from tests.api.test_anchoring_notices import (
    SECRET,
    Clock,
    _add_assets,
    _anchored,
    _client,
    _fund,
    _until,
    _world,
)
from tests.ledger.chain.anvil_node import AnvilNode


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(made)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def node(anvil: AnvilNode) -> AnvilNode:
    return anvil


def _state(engine: Engine, agency: str = "north") -> AnchoringStatus:
    with Session(engine) as session:
        row = session.get(AnchoringStatus, agency)
        assert row is not None
        return row


def _in_state(engine: Engine, state: str) -> bool:
    with Session(engine) as session:
        row = session.get(AnchoringStatus, "north")
        return row is not None and row.state == state


def _command(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, err
    verdict: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return verdict


class Admin:
    """The consortium admin on its own machine: signs orders offline; a node submits them."""

    def __init__(self, node: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                 ) -> None:
        self.account: LocalAccount = Account.create()
        _fund(node, self.account.address)
        self.contract = CustodyAnchorClient.deploy(connect(node.url), self.account).address
        self.key = tmp_path / "admin-machine" / "admin.key"
        self.key.parent.mkdir()
        self.key.write_text(self.account.key.hex())
        self.key.chmod(0o600)
        self.node, self.capsys, self.orders = node, capsys, 0

    def order(self, action: str, *subject: str) -> None:
        self.orders += 1
        out = self.key.parent / f"order-{self.orders}.json"
        nonce = connect(self.node.url).eth.get_transaction_count(self.account.address)
        # Offline: chain id, nonce and fee given, nothing read from the node by the signer.
        _command(self.capsys, "consortium", action, *subject, "--contract", self.contract,
                 "--key-file", str(self.key), "--out", str(out), "--chain-id",
                 str(self.node.chain_id), "--nonce", str(nonce), "--gas-price", str(10**10))
        assert self.account.key.hex()[2:] not in out.read_text()
        _command(self.capsys, "consortium", "submit", str(out), "--rpc", self.node.url)


def test_an_agency_server_with_only_its_own_keys_anchors_once_enrolled_and_stops_when_revoked(
    engine: Engine, node: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = Admin(node, tmp_path, capsys)
    _world(engine)
    keys = tmp_path / "keys"
    config = tmp_path / "kitledger.toml"
    config.write_text(f'log_key_dir = "{keys}"\n')
    identity = _command(capsys, "anchoring-identity", "--config", str(config),
                        "--agency", "north")
    log_id, account = str(identity["log"]), str(identity["account"])
    published = Ed25519PublicKey.from_public_bytes(bytes.fromhex(str(identity["log_public_key"])))
    assert key_id(published) == log_id  # what auditors pin is the log's own key
    _fund(node, account)  # the consortium's gas policy; a free-gas Besu network needs none
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=keys,
                             anchor_chain_url=node.url, anchor_contract=admin.contract,
                             anchor_interval_s=1)
    assert settings.anchor_admin_key is None and settings.anchor_admin_key_file is None
    service = AnchoringService(settings, engine)
    clock = Clock()
    service.start(clock.now)
    service.step(clock.tick())
    refused = _state(engine)
    assert refused.state == "not_authorised" and "unregistered" in refused.reason
    assert f"register-log --agency north --log {log_id}" in refused.reason
    client, _ = _client(engine, tmp_path)
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "agency north: not_authorised" in ready.json()["detail"]
    assert 'kitledger_anchoring_state{agency="north",state="not_authorised"} 1.0' \
        in client.get("/metrics").text

    admin.order("register-log", "--agency", "north", "--log", log_id)
    _until(service, clock, lambda: "no_role" in _state(engine).reason)
    assert f"grant-anchorer --agency north --account {account}" in _state(engine).reason
    assert not _anchored(engine, 1)()

    admin.order("grant-anchorer", "--agency", "north", "--account", account)
    _until(service, clock, _anchored(engine, 1))
    _until(service, clock, lambda: _in_state(engine, "ok"))
    assert client.get("/readyz").status_code == 200

    admin.order("revoke-anchorer", "--agency", "north", "--account", account)
    _add_assets(engine, "R-2")
    _until(service, clock, lambda: _in_state(engine, "not_authorised"))
    assert "no_role" in _state(engine).reason and "NotAnchorer" in _state(engine).reason
    assert not _anchored(engine, 2)()
    ready = client.get("/readyz")
    assert ready.status_code == 503 and "grant-anchorer --agency north" in ready.json()["detail"]

    admin.order("grant-anchorer", "--agency", "north", "--account", account)
    _until(service, clock, _anchored(engine, 2))
    service.close()


def test_a_log_registered_to_another_agency_is_refused_by_name(
    engine: Engine, node: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = Admin(node, tmp_path, capsys)
    _world(engine)
    keys = tmp_path / "keys"
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=keys,
                             anchor_chain_url=node.url, anchor_contract=admin.contract,
                             anchor_interval_s=1)
    service = AnchoringService(settings, engine)
    clock = Clock()
    service.start(clock.now)
    service.step(clock.tick())
    log_id = _state(engine).reason.split("--log ")[1].split()[0]
    admin.order("register-log", "--agency", "south", "--log", log_id)
    _until(service, clock, lambda: "other_agency" in _state(engine).reason)
    service.close()
