"""The committed CustodyAnchor artifact is exactly what the pinned npm compiler makes of the
sources; the compiler set-up is pinned. `make test` installs node_modules, so a missing
compiler fails here rather than skipping."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from ledger.chain.contract_artifact import decode_revert, load_artifact
from tests.paths import REPO_ROOT

REPO = REPO_ROOT
CONTRACTS = REPO / "contracts"
ARTIFACT = REPO / "ledger" / "chain" / "artifacts" / "CustodyAnchor.json"


def test_committed_artifact_matches_a_fresh_compile(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required to recompile the contract"
    assert (CONTRACTS / "node_modules" / "solc").is_dir(), (
        "contracts/node_modules is missing: run `cd contracts && npm ci` (make test does)"
    )
    fresh = tmp_path / "CustodyAnchor.json"
    subprocess.run(
        [node, str(CONTRACTS / "build.js"), "--out", str(fresh)], check=True, timeout=120
    )
    assert fresh.read_bytes() == ARTIFACT.read_bytes(), (
        "ledger/chain/artifacts/CustodyAnchor.json is stale: run `node contracts/build.js`"
    )


def test_compiler_and_libraries_are_pinned() -> None:
    package = json.loads((CONTRACTS / "package.json").read_text())
    lock = json.loads((CONTRACTS / "package-lock.json").read_text())
    for name in ("solc", "@openzeppelin/contracts", "@foundry-rs/anvil"):
        version = package["devDependencies"][name]
        assert version[0].isdigit(), f"{name} must be pinned exactly, found {version!r}"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    artifact = load_artifact()
    assert artifact.compiler_version.startswith(package["devDependencies"]["solc"] + "+")
    # py-evm's newest VM is Prague; solc's default (osaka) would not run on the embedded chain.
    assert artifact.evm_version == "prague"


def test_every_custom_error_in_the_source_is_in_the_abi() -> None:
    source = (CONTRACTS / "src" / "CustodyAnchor.sol").read_text()
    declared = {line.split()[1].split("(")[0] for line in source.splitlines()
                if line.strip().startswith("error ")}
    in_abi = {item["name"] for item in load_artifact().abi if item["type"] == "error"}
    assert declared and declared <= in_abi


def test_hostile_revert_data_decodes_to_unknown() -> None:
    assert decode_revert(b"").error_name == "UnknownRevert"
    assert decode_revert(b"\xde\xad\xbe\xef" + b"\x00" * 32).error_name == "UnknownRevert"
    assert decode_revert(b"\x00" * 100_000).arguments == {"length": 100_000}
    # A real selector with truncated arguments is not trusted either.
    selector = bytes.fromhex("15c43d95")  # TreeSizeNotIncreasing(bytes32,uint64,uint64)
    assert decode_revert(selector + b"\x00" * 40).error_name == "UnknownRevert"
    words = b"\x01" * 32 + (5).to_bytes(32, "big") + (3).to_bytes(32, "big")
    full = decode_revert(selector + words)
    assert full.error_name == "TreeSizeNotIncreasing"
    assert full.arguments == {"logId": b"\x01" * 32, "latest": 5, "given": 3}
