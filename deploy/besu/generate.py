"""Generate a 4-validator Besu QBFT network for kitledger: free gas, node and account
permissioning, and the CustodyAnchor contract present from the genesis block.

    .venv/bin/python deploy/besu/generate.py --out deploy/besu/network [--chain-id 1337]

Every key is generated here, at run time, into `--out` (files mode 0600); nothing secret is ever
committed (keep `deploy/besu/network/` out of git). The output holds, per validator, `key` (the
node key), `config.toml`; and for the network `genesis.json`, `permissions_config.toml`,
`accounts.json` (public addresses only) and `admin.key` (the consortium admin's account key).
The contract is placed in the genesis `alloc` at a fixed address with the consortium admin
already holding the admin role, so no deployment transaction is needed.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Final

import rlp  # type: ignore[import-untyped]
from eth_keys.datatypes import PrivateKey
from eth_utils.crypto import keccak

from ledger.chain.contract_artifact import load_artifact

VALIDATORS: Final = 4
CONTRACT_ADDRESS: Final = "0x000000000000000000000000000000000000c0de"
"""Where the genesis places CustodyAnchor; fixed so every agency's configuration can name it."""
ADMIN_ROLE_SLOT: Final = 0
"""Storage slot of OpenZeppelin AccessControl's `_roles` mapping (first declared variable)."""
P2P_PORT: Final = 30303
RPC_PORT: Final = 8545


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _word(value: int | bytes) -> bytes:
    return value.to_bytes(32, "big") if isinstance(value, int) else value.rjust(32, b"\x00")


def admin_role_storage(admin: bytes) -> dict[str, str]:
    """Storage making `admin` hold DEFAULT_ADMIN_ROLE: _roles[0x00].hasRole[admin] = true."""
    role_data = keccak(_word(0) + _word(ADMIN_ROLE_SLOT))
    slot = keccak(_word(admin) + role_data)
    return {"0x" + slot.hex(): "0x" + _word(1).hex()}


def qbft_extra_data(validators: list[bytes]) -> str:
    """RLP([32-byte vanity, validators, no vote, round 0, no seals]), as Besu expects."""
    return "0x" + bytes(rlp.encode([b"\x00" * 32, validators, [], 0, []])).hex()


def genesis(chain_id: int, validators: list[bytes], admin: bytes) -> dict[str, Any]:
    artifact = load_artifact()
    return {
        "config": {
            "chainId": chain_id,
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
        "extraData": qbft_extra_data(validators),
        "alloc": {
            CONTRACT_ADDRESS: {
                "balance": "0x0",
                "code": artifact.deployed_bytecode,
                "storage": admin_role_storage(admin),
            },
        },
    }


def node_config(index: int, out: Path, enodes: list[str]) -> str:
    bootnodes = ",".join(f'"{e}"' for i, e in enumerate(enodes) if i != index)
    return f"""\
data-path="{out}/node{index + 1}/data"
node-private-key-file="{out}/node{index + 1}/key"
genesis-file="{out}/genesis.json"
p2p-port={P2P_PORT + index}
bootnodes=[{bootnodes}]
rpc-http-enabled=true
rpc-http-host="127.0.0.1"
rpc-http-port={RPC_PORT + index}
rpc-http-api=["ETH","NET","QBFT","PERM","TXPOOL","WEB3"]
host-allowlist=["localhost","127.0.0.1"]
min-gas-price=0
permissions-nodes-config-file-enabled=true
permissions-accounts-config-file-enabled=true
permissions-nodes-config-file="{out}/permissions_config.toml"
permissions-accounts-config-file="{out}/permissions_config.toml"
"""


def generate(out: Path, chain_id: int, host: str = "127.0.0.1") -> dict[str, Any]:
    """Write the network into `out`; return its public description (also in accounts.json)."""
    out.mkdir(parents=True, exist_ok=True)
    node_keys = [PrivateKey(os.urandom(32)) for _ in range(VALIDATORS)]
    admin_key = PrivateKey(os.urandom(32))
    enodes = [
        f"enode://{k.public_key.to_bytes().hex()}@{host}:{P2P_PORT + i}"
        for i, k in enumerate(node_keys)
    ]
    validators = [k.public_key.to_canonical_address() for k in node_keys]
    admin = admin_key.public_key.to_canonical_address()
    for i, key in enumerate(node_keys):
        node_dir = out / f"node{i + 1}"
        node_dir.mkdir(exist_ok=True)
        _write_secret(node_dir / "key", "0x" + key.to_bytes().hex())
        (node_dir / "config.toml").write_text(node_config(i, out, enodes))
    _write_secret(out / "admin.key", "0x" + admin_key.to_bytes().hex())
    (out / "genesis.json").write_text(
        json.dumps(genesis(chain_id, validators, admin), indent=2) + "\n"
    )
    # Validators and the admin may transact; agencies' anchorer accounts are added on joining.
    allowed = [admin_key.public_key.to_checksum_address()] + [
        k.public_key.to_checksum_address() for k in node_keys
    ]
    (out / "permissions_config.toml").write_text(
        f"accounts-allowlist={json.dumps(allowed)}\nnodes-allowlist={json.dumps(enodes)}\n"
    )
    description = {
        "chainId": chain_id,
        "contract": CONTRACT_ADDRESS,
        "admin": admin_key.public_key.to_checksum_address(),
        "validators": ["0x" + v.hex() for v in validators],
        "enodes": enodes,
    }
    (out / "accounts.json").write_text(json.dumps(description, indent=2) + "\n")
    return description


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "network")
    parser.add_argument("--chain-id", type=int, default=1337)
    parser.add_argument("--host", default="127.0.0.1", help="address other nodes dial")
    args = parser.parse_args()
    description = generate(args.out.resolve(), args.chain_id, args.host)
    print(json.dumps(description, indent=2))


if __name__ == "__main__":
    main()
