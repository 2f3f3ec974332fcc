"""Generate a Besu QBFT network for kitledger from its operators' public keys: free gas, node and
account permissioning, and the CustodyAnchor contract present from the genesis block.

    .venv/bin/python deploy/besu/generate.py network.toml --out deploy/besu/network

This script never makes a private key. Each validator's operator makes the node key on its own
host (`besu --data-path=data public-key export --to=node.pub`) and sends the public key; the
consortium admin makes its account key on its own machine and sends the address. The input file
(TOML, no secrets) names them:

    chain_id = 1337
    admin = "0x…"                       # the consortium admin's address
    [[validators]]
    name = "north"                      # folder name: lowercase letters, digits, "-"
    host = "10.0.1.10"                  # the IP address the other nodes dial
    public_key = "0x…"                  # 64 bytes, as `besu public-key export` writes it
    address = "0x…"                     # optional: checked against the public key
    p2p_port = 30303                    # optional
    [[accounts]]                        # optional: more accounts allowed to transact
    address = "0x…"                     # e.g. an agency's anchorer account

The output, all public: `genesis.json` (QBFT `extraData` naming the validators in the given
order, `zeroBaseFee`, CustodyAnchor in `alloc` at `CONTRACT_ADDRESS` with the admin holding its
admin role), `permissions_config.toml` (Besu's local `nodes-allowlist` and
`accounts-allowlist`), `network.json` (what was generated, for the agencies' settings), and one
folder per validator holding `config.toml` and copies of the two shared files. Every path in a
`config.toml` is relative to its folder: copy the folder to the node and run
`besu --config-file=config.toml` inside it; the node key is Besu's default, `data/key`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import rlp  # type: ignore[import-untyped]
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.contract_artifact import load_artifact

CONTRACT_ADDRESS: Final = "0x000000000000000000000000000000000000c0de"
"""Where the genesis places CustodyAnchor; fixed so every agency's configuration can name it."""
ADMIN_ROLE_SLOT: Final = 0
"""Storage slot of OpenZeppelin AccessControl's `_roles` mapping (first declared variable)."""
P2P_PORT: Final = 30303
RPC_PORT: Final = 8545
MAX_INPUT_BYTES: Final = 64 * 1024
"""A network of `MAX_VALIDATORS` nodes and a few hundred accounts fits easily."""
MAX_VALIDATORS: Final = 64
MAX_ACCOUNTS: Final = 1024
SHARED_FILES: Final = ("genesis.json", "permissions_config.toml")

SECP256K1_P: Final = 2**256 - 2**32 - 977
"""The field prime of secp256k1, whose curve is y² = x³ + 7."""

_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_PUBLIC_KEY = re.compile(r"(0x)?[0-9a-fA-F]{128}")


class NetworkInputError(ValueError):
    """The network description is unusable; the message names the entry and the field."""


@dataclass(frozen=True, slots=True)
class Validator:
    name: str
    host: str
    public_key: bytes
    p2p_port: int

    @property
    def address(self) -> bytes:
        return keccak(self.public_key)[-20:]

    @property
    def enode(self) -> str:
        return f"enode://{self.public_key.hex()}@{self.host}:{self.p2p_port}"


@dataclass(frozen=True, slots=True)
class Network:
    chain_id: int
    admin: str
    validators: tuple[Validator, ...]
    accounts: tuple[str, ...]


def _word(value: int | bytes) -> bytes:
    return value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\x00")


def admin_role_storage(admin: bytes) -> dict[str, str]:
    """Storage making `admin` hold DEFAULT_ADMIN_ROLE: _roles[0x00].hasRole[admin] = true."""
    role_data = keccak(_word(0) + _word(ADMIN_ROLE_SLOT))
    slot = keccak(_word(admin) + role_data)
    return {"0x" + slot.hex(): "0x" + _word(1).hex()}


def qbft_extra_data(validators: list[bytes]) -> str:
    """RLP([32-byte vanity, validators, no vote, round 0, no seals]): Besu's QBFT genesis form
    (the vote an empty list, the round the integer 0, i.e. the empty string)."""
    return "0x" + bytes(rlp.encode([b"\x00" * 32, validators, [], 0, []])).hex()


def _address(value: object, where: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value) or int(value, 16) == 0:
        raise NetworkInputError(f"{where} must be a non-zero 0x-prefixed 20-byte address")
    return to_checksum_address(value)


def _validator(entry: object, index: int) -> Validator:
    where = f"validators[{index}]"
    if not isinstance(entry, dict):
        raise NetworkInputError(f"{where} must be a table")
    unknown = set(entry) - {"name", "host", "public_key", "address", "p2p_port"}
    if unknown:
        raise NetworkInputError(f"{where} has unknown fields: {', '.join(sorted(unknown))}")
    name, host, text = entry.get("name"), entry.get("host"), entry.get("public_key")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise NetworkInputError(f"{where}.name must be 1-32 lowercase letters, digits or '-'")
    try:
        ip = ipaddress.ip_address(host if isinstance(host, str) else "")
    except ValueError:
        raise NetworkInputError(f"{where}.host must be an IP address (Besu's allowlist "
                                "matches enodes by IP)") from None
    if ip.is_unspecified or ip.is_multicast:
        raise NetworkInputError(f"{where}.host {ip} is not an address other nodes can dial")
    if not isinstance(text, str) or not _PUBLIC_KEY.fullmatch(text):
        raise NetworkInputError(f"{where}.public_key must be 64 bytes of hex (the node's "
                                "public key, never its private key)")
    public_key = bytes.fromhex(text.removeprefix("0x"))
    if not _on_curve(public_key):
        raise NetworkInputError(f"{where}.public_key is not a secp256k1 point")
    port = entry.get("p2p_port", P2P_PORT)
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise NetworkInputError(f"{where}.p2p_port must be a port number")
    validator = Validator(name, ip.compressed if ip.version == 4 else f"[{ip.compressed}]",
                          public_key, port)
    if "address" in entry and _address(entry["address"], f"{where}.address") != \
            to_checksum_address(validator.address):
        raise NetworkInputError(f"{where}.address does not belong to its public_key")
    return validator


def _on_curve(public_key: bytes) -> bool:
    x, y = int.from_bytes(public_key[:32], "big"), int.from_bytes(public_key[32:], "big")
    return x < SECP256K1_P and y < SECP256K1_P and (y * y - x * x * x - 7) % SECP256K1_P == 0


def parse_network(body: bytes) -> Network:
    """The checked network description; `NetworkInputError` names what is wrong."""
    if len(body) > MAX_INPUT_BYTES:
        raise NetworkInputError(f"network file larger than {MAX_INPUT_BYTES} bytes")
    try:
        raw = tomllib.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise NetworkInputError(f"not a TOML network file: {exc}") from None
    unknown = set(raw) - {"chain_id", "admin", "validators", "accounts"}
    if unknown:
        raise NetworkInputError(f"unknown fields: {', '.join(sorted(unknown))}")
    chain_id = raw.get("chain_id")
    if not isinstance(chain_id, int) or isinstance(chain_id, bool) or not 1 <= chain_id < 2**53:
        raise NetworkInputError("chain_id must be a positive integer")
    entries = raw.get("validators")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_VALIDATORS:
        raise NetworkInputError(f"validators must list 1 to {MAX_VALIDATORS} nodes")
    validators = tuple(_validator(e, i) for i, e in enumerate(entries))
    for field in ("name", "public_key", "enode"):
        values = [getattr(v, field) for v in validators]
        if len(set(values)) != len(values):
            raise NetworkInputError(f"two validators have the same {field}")
    extra = raw.get("accounts", [])
    if not isinstance(extra, list) or len(extra) > MAX_ACCOUNTS:
        raise NetworkInputError(f"accounts must list at most {MAX_ACCOUNTS} entries")
    accounts = []
    for i, entry in enumerate(extra):
        if not isinstance(entry, dict) or set(entry) != {"address"}:
            raise NetworkInputError(f"accounts[{i}] must be a table with only an address")
        accounts.append(_address(entry["address"], f"accounts[{i}].address"))
    return Network(chain_id, _address(raw.get("admin"), "admin"), validators, tuple(accounts))


def genesis(network: Network) -> dict[str, Any]:
    artifact = load_artifact()
    return {
        "config": {
            "chainId": network.chain_id,
            "berlinBlock": 0,
            "londonBlock": 0,
            "shanghaiTime": 0,
            "cancunTime": 0,
            "pragueTime": 0,
            # Free gas: no base fee, and nodes run with min-gas-price=0.
            "zeroBaseFee": True,
            "qbft": {"blockperiodseconds": 2, "epochlength": 30000, "requesttimeoutseconds": 4},
        },
        "nonce": "0x0",
        "timestamp": "0x0",
        "gasLimit": "0x1c9c380",
        "difficulty": "0x1",
        "baseFeePerGas": "0x0",
        "mixHash": "0x63746963616c2062797a616e74696e65206661756c7420746f6c6572616e6365",
        "coinbase": "0x" + "00" * 20,
        "extraData": qbft_extra_data([v.address for v in network.validators]),
        "alloc": {
            CONTRACT_ADDRESS: {
                "balance": "0x0",
                "code": artifact.deployed_bytecode,
                "storage": admin_role_storage(bytes.fromhex(network.admin[2:])),
            },
        },
    }


def permissions(network: Network) -> str:
    """Besu's local permissioning file: validators and the admin may transact, plus the
    listed accounts (agencies' anchorers are added as they join)."""
    allowed = [network.admin, *(to_checksum_address(v.address) for v in network.validators),
               *network.accounts]
    enodes = [v.enode for v in network.validators]
    return (f"accounts-allowlist={json.dumps(list(dict.fromkeys(allowed)))}\n"
            f"nodes-allowlist={json.dumps(enodes)}\n")


def node_config(network: Network, index: int) -> str:
    """One validator's Besu configuration; every path relative to its own folder."""
    node = network.validators[index]
    bootnodes = ",".join(f'"{v.enode}"' for i, v in enumerate(network.validators) if i != index)
    return f"""\
data-path="data"
genesis-file="genesis.json"
p2p-host="{node.host.strip("[]")}"
p2p-port={node.p2p_port}
bootnodes=[{bootnodes}]
rpc-http-enabled=true
rpc-http-host="127.0.0.1"
rpc-http-port={RPC_PORT}
rpc-http-api=["ETH","NET","QBFT","PERM","TXPOOL","WEB3"]
host-allowlist=["localhost","127.0.0.1"]
min-gas-price=0
permissions-nodes-config-file-enabled=true
permissions-accounts-config-file-enabled=true
permissions-nodes-config-file="permissions_config.toml"
permissions-accounts-config-file="permissions_config.toml"
"""


def generate(network: Network, out: Path) -> dict[str, Any]:
    """Write the network into `out`; return its public description (also network.json)."""
    out.mkdir(parents=True, exist_ok=True)
    shared = {"genesis.json": json.dumps(genesis(network), indent=2) + "\n",
              "permissions_config.toml": permissions(network)}
    for name, text in shared.items():
        (out / name).write_text(text)
    for index, validator in enumerate(network.validators):
        folder = out / validator.name
        folder.mkdir(exist_ok=True)
        (folder / "config.toml").write_text(node_config(network, index))
        for name, text in shared.items():
            (folder / name).write_text(text)
    description = {
        "chainId": network.chain_id,
        "contract": CONTRACT_ADDRESS,
        "admin": network.admin,
        "validators": {v.name: to_checksum_address(v.address) for v in network.validators},
        "enodes": [v.enode for v in network.validators],
        "faultTolerance": (len(network.validators) - 1) // 3,
    }
    (out / "network.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("network", type=Path, help="the network description (TOML)")
    parser.add_argument("--out", type=Path, default=Path("network"),
                        help="output folder (default ./network)")
    args = parser.parse_args(argv)
    try:
        with args.network.open("rb") as handle:
            network = parse_network(handle.read(MAX_INPUT_BYTES + 1))
    except OSError as exc:
        sys.stderr.write(f"generate.py: cannot read {args.network}: {exc.strerror}\n")
        return 2
    except NetworkInputError as exc:
        sys.stderr.write(f"generate.py: {args.network}: {exc}; fix the network file\n")
        return 2
    print(json.dumps(generate(network, args.out), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
