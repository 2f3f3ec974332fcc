"""The Besu network generator, checked against Besu's documented formats without Besu: the QBFT
`extraData` of Besu's own QBFT genesis example, the local permissioning file's two allowlists,
configs whose paths are all relative, enodes on each operator's host, no private key made or
written; bad network files refused by name; and the genesis booting a real node
(`anvil --init`) where the admin, acting only through offline-signed orders, enrols an agency
that then anchors under free gas."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import rlp
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_keys.datatypes import PrivateKey

from ledger.chain.admin_orders import TxTerms, read_order, sign_order, submit_order
from ledger.chain.client import CustodyAnchorClient, FeePolicy
from ledger.chain.contract_artifact import load_artifact
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import connect
from ledger.core.checkpoint import chain_log_id
from tests.ledger.chain.anvil_node import AnvilNode
from tests.paths import REPO_ROOT

GENERATOR = REPO_ROOT / "deploy" / "besu" / "generate.py"
sys.path.insert(0, str(GENERATOR.parent))
import generate  # type: ignore[import-not-found]  # noqa: E402

BESU_DOCS_QBFT_VALIDATORS = [
    "64a702e6263b7297a96638cac6ae65e6541f4169", "3923390ad55e90c237593b3b0e401f3b08a03185",
    "aefdb9a738c9f433e5b6b212a6d62f6370c2f692", "c7eeb9a4e00ce683cf93039b212648e01c6c6b78",
]
BESU_DOCS_QBFT_EXTRA_DATA = (
    "0xf87aa00000000000000000000000000000000000000000000000000000000000000000f8549464a702e626"
    "3b7297a96638cac6ae65e6541f4169943923390ad55e90c237593b3b0e401f3b08a0318594aefdb9a738c9f4"
    "33e5b6b212a6d62f6370c2f69294c7eeb9a4e00ce683cf93039b212648e01c6c6b78c080c0")
"""The `extraData` of the QBFT genesis example in Besu's documentation, for its 4 validators."""

HOSTS = ["10.0.1.10", "10.0.2.10", "10.0.3.10", "10.0.4.10"]
NAMES = ["north", "south", "east", "west"]


class Operators:
    """Four validator operators and the consortium admin, each with a key of their own that
    only the test (standing in for their machines) ever holds."""

    def __init__(self) -> None:
        self.node_keys = [PrivateKey(os.urandom(32)) for _ in NAMES]
        self.admin: LocalAccount = Account.create()

    def network_toml(self, chain_id: int = 4242, **changes: Any) -> str:
        lines = [f"chain_id = {chain_id}", f'admin = "{self.admin.address}"']
        for name, host, key in zip(NAMES, HOSTS, self.node_keys, strict=True):
            lines += ["[[validators]]", f'name = "{name}"', f'host = "{host}"',
                      f'public_key = "0x{key.public_key.to_bytes().hex()}"']
            if name == "north":
                lines.append(f'address = "{key.public_key.to_checksum_address()}"')
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def operators() -> Operators:
    return Operators()


@pytest.fixture(scope="module")
def network(operators: Operators, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("besu")
    (folder / "network.toml").write_text(operators.network_toml())
    subprocess.run([sys.executable, str(GENERATOR), str(folder / "network.toml"), "--out",
                    str(folder / "out")], check=True, capture_output=True, timeout=60,
                   cwd=folder)
    return folder / "out"


def test_qbft_extra_data_matches_besus_documented_example() -> None:
    encoded = generate.qbft_extra_data([bytes.fromhex(v) for v in BESU_DOCS_QBFT_VALIDATORS])
    assert encoded == BESU_DOCS_QBFT_EXTRA_DATA
    vanity, validators, vote, round_, seals = rlp.decode(bytes.fromhex(encoded[2:]))
    assert vanity == b"\x00" * 32 and vote == [] and round_ == b"" and seals == []
    assert [v.hex() for v in validators] == BESU_DOCS_QBFT_VALIDATORS


def test_genesis_names_the_operators_validators_and_frees_gas(
    network: Path, operators: Operators
) -> None:
    genesis = json.loads((network / "genesis.json").read_text())
    _, validators, _, _, _ = rlp.decode(bytes.fromhex(genesis["extraData"][2:]))
    assert list(validators) == [k.public_key.to_canonical_address()
                                       for k in operators.node_keys]
    config = genesis["config"]
    assert config["chainId"] == 4242 and config["zeroBaseFee"] is True and "qbft" in config
    described = json.loads((network / "network.json").read_text())
    assert described["admin"] == operators.admin.address and described["faultTolerance"] == 1


def test_permissioning_follows_besus_local_file_format(network: Path,
                                                        operators: Operators) -> None:
    perms = tomllib.loads((network / "permissions_config.toml").read_text())
    assert set(perms) == {"accounts-allowlist", "nodes-allowlist"}
    enodes = [f"enode://{k.public_key.to_bytes().hex()}@{host}:30303"
              for k, host in zip(operators.node_keys, HOSTS, strict=True)]
    assert perms["nodes-allowlist"] == enodes
    assert perms["accounts-allowlist"][0] == operators.admin.address
    assert perms["accounts-allowlist"][1:] == [k.public_key.to_checksum_address()
                                               for k in operators.node_keys]


def test_each_node_folder_is_self_contained_with_relative_paths(network: Path) -> None:
    for name, host in zip(NAMES, HOSTS, strict=True):
        folder = network / name
        config = tomllib.loads((folder / "config.toml").read_text())
        paths = [config[k] for k in ("data-path", "genesis-file",
                                     "permissions-nodes-config-file",
                                     "permissions-accounts-config-file")]
        assert all(not p.startswith("/") and ".." not in p for p in paths)
        assert all((folder / p).exists() for p in paths[1:])
        assert str(network) not in (folder / "config.toml").read_text()
        assert config["p2p-host"] == host and config["min-gas-price"] == 0
        assert len(config["bootnodes"]) == 3 and not any(host in b for b in config["bootnodes"])
        assert config["permissions-nodes-config-file-enabled"] is True
        assert "node-private-key-file" not in config  # Besu's own data/key, made on the node


def test_no_private_key_is_made_or_written(network: Path, operators: Operators) -> None:
    written = b"".join(p.read_bytes() for p in network.rglob("*") if p.is_file())
    for key in operators.node_keys:
        assert key.to_bytes().hex().encode() not in written
    assert operators.admin.key.hex()[2:].encode() not in written
    assert not [p for p in network.rglob("*") if "key" in p.name]
    assert "urandom" not in GENERATOR.read_text() and "PrivateKey" not in GENERATOR.read_text()


@pytest.mark.parametrize(("edit", "reason"), [
    (lambda t: t.replace('host = "10.0.2.10"', 'host = "south.example"'), "must be an IP"),
    (lambda t: t.replace('host = "10.0.2.10"', 'host = "0.0.0.0"'), "can dial"),
    (lambda t: t.replace('name = "east"', 'name = "../east"'), "name must be"),
    (lambda t: t.replace('name = "east"', 'name = "north"'), "same name"),
    (lambda t: t.replace("public_key = \"0x", "public_key = \"0xff", 1), "64 bytes of hex"),
    (lambda t: t.replace("chain_id = 4242", "chain_id = 0"), "chain_id"),
    (lambda t: t.replace("chain_id = 4242", 'chain_id = 4242\nextra = "x"'), "unknown fields"),
    (lambda t: t + '[[accounts]]\naddress = "0x00"\n', "20-byte address"),
    (lambda t: t + "[[validators]]\n" * 70, "1 to 64"),
    (lambda t: t + "junk = [", "not a TOML"),
    (lambda t: t + "# " + "x" * 70_000 + "\n", "larger than"),
])
def test_bad_network_files_are_refused_by_name(operators: Operators, tmp_path: Path,
                                               edit: Any, reason: str) -> None:
    path = tmp_path / "network.toml"
    path.write_text(edit(operators.network_toml()))
    done = subprocess.run([sys.executable, str(GENERATOR), str(path), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and reason in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_validator_address_that_is_not_its_keys_is_refused(operators: Operators) -> None:
    text = operators.network_toml().replace(
        operators.node_keys[0].public_key.to_checksum_address(), "0x" + "12" * 20)
    with pytest.raises(generate.NetworkInputError, match="does not belong"):
        generate.parse_network(text.encode())
    point = "0x" + "01" * 64  # 64 bytes that are not a point on the curve
    bad = operators.network_toml().replace(
        "0x" + operators.node_keys[1].public_key.to_bytes().hex(), point)
    with pytest.raises(generate.NetworkInputError, match="not a secp256k1 point"):
        generate.parse_network(bad.encode())


def test_the_genesis_boots_and_the_admin_enrols_an_agency_by_offline_orders(
    network: Path, operators: Operators, tmp_path: Path
) -> None:
    described = json.loads((network / "network.json").read_text())
    node = AnvilNode(tmp_path, chain_id=4242,
                     extra=["--init", str(network / "genesis.json"), "--gas-price", "0"])
    node.start()
    try:
        w3 = connect(node.url, expected_chain_id=4242)
        code = w3.eth.get_code(w3.to_checksum_address(described["contract"]))
        assert "0x" + bytes(code).hex() == load_artifact().deployed_bytecode
        anchorer = CustodyAnchorClient(w3, described["contract"], Account.create(),
                                       FeePolicy(gas_price=0))
        log = os.urandom(16).hex()
        order = sign_order("enroll", {"agency": "north", "log": log,
                                      "account": anchorer.account.address},
                           described["contract"], operators.admin.key,
                           TxTerms(chain_id=4242, nonce=0, gas_price=0))
        submit_order(w3, read_order(order.to_json().encode()))  # the genesis made it admin
        sent = anchorer.anchor(SqlitePendingAnchorStore(tmp_path / "p.sqlite"),
                               chain_log_id(log), 1, os.urandom(32), b"{}", 0.0)
        anchorer.wait_for_receipt(sent.tx_hash)
        assert anchorer.latest_checkpoint(chain_log_id(log)).tree_size == 1
        assert w3.eth.get_balance(operators.admin.address) == 0  # free gas: nobody needs ether
    finally:
        node.stop()
