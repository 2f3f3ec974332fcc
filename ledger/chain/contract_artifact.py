"""The committed CustodyAnchor artifact (ABI + bytecode) and decoding of its custom errors.

The artifact is compiled from `contracts/src/CustodyAnchor.sol` by `contracts/build.js` and
shipped inside the package, so installing kitledger needs no Node; a test recompiles it and
fails when it is stale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from ledger.chain.errors import ArtifactError, ContractRevert

CONTRACT_NAME: Final = "CustodyAnchor"

MAX_REVERT_DATA_BYTES: Final = 4 + 32 * 16
"""The longest custom error has four static words; anything far larger is not ours and is not
worth decoding (a hostile node could otherwise hand us megabytes)."""


@dataclass(frozen=True, slots=True)
class ContractArtifact:
    """What deploying and calling the contract needs."""

    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    evm_version: str


@cache
def load_artifact() -> ContractArtifact:
    """The CustodyAnchor artifact shipped with the package."""
    path = resources.files("ledger.chain") / "artifacts" / f"{CONTRACT_NAME}.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return ContractArtifact(
            abi=list(raw["abi"]),
            bytecode=str(raw["bytecode"]),
            deployed_bytecode=str(raw["deployedBytecode"]),
            compiler_version=str(raw["compiler"]["version"]),
            evm_version=str(raw["settings"]["evmVersion"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"cannot load the {CONTRACT_NAME} artifact: {exc}") from None


@dataclass(frozen=True, slots=True)
class _ErrorShape:
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]


@cache
def _error_table() -> dict[bytes, _ErrorShape]:
    table: dict[bytes, _ErrorShape] = {}
    for item in load_artifact().abi:
        if item.get("type") != "error":
            continue
        types = tuple(str(i["type"]) for i in item["inputs"])
        selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
        names = tuple(str(i["name"]) for i in item["inputs"])
        table[selector] = _ErrorShape(str(item["name"]), names, types)
    return table


def decode_revert(data: bytes) -> ContractRevert:
    """The typed error for revert `data` (selector + ABI-encoded arguments)."""
    if len(data) > MAX_REVERT_DATA_BYTES:
        return ContractRevert("UnknownRevert", {"length": len(data)})
    shape = _error_table().get(bytes(data[:4]))
    if shape is None:
        return ContractRevert("UnknownRevert", {"data": bytes(data)})
    try:
        values = abi_decode(list(shape.types), bytes(data[4:]), strict=True)
    except (DecodingError, ValueError):
        return ContractRevert("UnknownRevert", {"data": bytes(data)})
    shown = [
        to_checksum_address(v) if t == "address" else v
        for t, v in zip(shape.types, values, strict=True)
    ]
    return ContractRevert(shape.name, dict(zip(shape.names, shown, strict=True)))
