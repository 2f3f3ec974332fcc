"""`ledger.chain` is the only package that imports web3 (and its eth-* companions)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.paths import REPO_ROOT

REPO = REPO_ROOT
PACKAGES = ["api", "ledger", "demo", "reader-agent/reader_agent", "hardware"]
CHAIN_ONLY = {"web3", "eth_account", "eth_tester", "eth_abi", "eth_utils", "eth_keys", "hexbytes"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
    return roots


def test_only_ledger_chain_imports_web3() -> None:
    offenders = []
    checked = 0
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            if (REPO / "ledger" / "chain") in path.parents:
                continue
            checked += 1
            bad = imported_roots(path) & CHAIN_ONLY
            if bad:
                offenders.append(f"{path.relative_to(REPO)}: {sorted(bad)}")
    assert checked > 0
    assert offenders == []


def test_the_rule_sees_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "bad.py"
    sample.write_text("from web3 import Web3\nimport eth_account.signers\n")
    assert imported_roots(sample) >= {"web3", "eth_account"}
