"""The Besu network generator: what can be checked without Besu is checked here — keys made at
run time and private, QBFT extra data naming the 4 validators, permissioning lists, and the
genesis booting a real node (anvil --init) with the contract present and its admin in place."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import rlp
from eth_account import Account

from ledger.chain.client import CustodyAnchorClient, FeePolicy
from ledger.chain.contract_artifact import load_artifact
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import connect
from tests.ledger.chain.anvil_node import AnvilNode
from tests.paths import REPO_ROOT

REPO = REPO_ROOT
GENERATOR = REPO / "deploy" / "besu" / "generate.py"


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("besu") / "network"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(out), "--chain-id", "4242"],
                   check=True, capture_output=True, timeout=60)
    return out


def test_keys_are_fresh_and_private(network: Path, tmp_path: Path) -> None:
    keys = [network / f"node{i}" / "key" for i in range(1, 5)] + [network / "admin.key"]
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    texts = {k.read_text() for k in keys}
    assert len(texts) == 5  # all distinct
    again = tmp_path / "again"
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(again)], check=True,
                   capture_output=True, timeout=60)
    assert (again / "admin.key").read_text() not in texts  # generated, never a fixed key
    public = (network / "accounts.json").read_text() + (network / "genesis.json").read_text()
    assert not any(t.strip()[2:] in public for t in texts)  # no private key leaks


def test_genesis_names_the_validators_and_frees_gas(network: Path) -> None:
    genesis = json.loads((network / "genesis.json").read_text())
    described = json.loads((network / "accounts.json").read_text())
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    assert vanity == b"\x00" * 32 and vote == [] and round_ == b"" and seals == []
    assert ["0x" + v.hex() for v in validators] == described["validators"]
    assert len(validators) == 4
    config = genesis["config"]
    assert config["chainId"] == 4242 and config["zeroBaseFee"] is True and "qbft" in config
    perms = (network / "permissions_config.toml").read_text()
    for enode in described["enodes"]:
        assert enode in perms
    assert described["admin"] in perms
    for i in range(1, 5):
        node = (network / f"node{i}" / "config.toml").read_text()
        assert "min-gas-price=0" in node and "permissions-nodes-config-file-enabled=true" in node
        assert node.count("enode://") == 3  # boots from the three others


def test_genesis_boots_a_node_with_the_contract_and_admin(network: Path, tmp_path: Path) -> None:
    described = json.loads((network / "accounts.json").read_text())
    node = AnvilNode(tmp_path, chain_id=4242,
                     extra=["--init", str(network / "genesis.json"), "--gas-price", "0"])
    node.start()
    try:
        w3 = connect(node.url, expected_chain_id=4242)
        code = w3.eth.get_code(w3.to_checksum_address(described["contract"]))
        assert "0x" + bytes(code).hex() == load_artifact().deployed_bytecode
        admin = Account.from_key((network / "admin.key").read_text().strip())
        free = FeePolicy(gas_price=0)
        consortium = CustodyAnchorClient(w3, described["contract"], admin, free)
        anchorer = CustodyAnchorClient(w3, described["contract"], Account.create(), free)
        log_id, agency_id = os.urandom(32), os.urandom(32)
        consortium.register_log(log_id, agency_id)  # the admin role came with the genesis
        consortium.grant_anchorer(agency_id, anchorer.account.address)
        sent = anchorer.anchor(SqlitePendingAnchorStore(tmp_path / "p.sqlite"), log_id, 1,
                               os.urandom(32), b"{}", 0.0)
        anchorer.wait_for_receipt(sent.tx_hash)
        assert anchorer.latest_checkpoint(log_id).tree_size == 1
        assert w3.eth.get_balance(admin.address) == 0  # free gas: nobody needs ether
    finally:
        node.stop()
