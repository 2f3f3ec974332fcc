"""The dependency direction: the reader agent never pulls in the API or the chain client.

A Raspberry Pi installs only the `agent` extra, so an import of `api`, `ledger.chain`, web3 or
FastAPI from `reader_agent` would break it in the field. Checked two ways: statically over every
module's imports, and by importing every module in a fresh interpreter and looking at
`sys.modules`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
AGENT = ROOT / "reader-agent" / "reader_agent"
FORBIDDEN = ("api", "ledger.chain", "web3", "eth_tester", "fastapi", "sqlmodel", "sqlalchemy")


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def test_agent_sources_import_nothing_forbidden() -> None:
    offenders = []
    files = sorted(AGENT.rglob("*.py"))
    assert files, "reader_agent has no modules?"
    for path in files:
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if _forbidden(n)]
    assert offenders == []


def test_importing_every_agent_module_loads_nothing_forbidden() -> None:
    script = """
import importlib, json, pkgutil, sys
import reader_agent
for info in pkgutil.walk_packages(reader_agent.__path__, "reader_agent."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print(json.dumps(sorted(sys.modules)))
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout)
    assert "reader_agent" in loaded
    assert [m for m in loaded if _forbidden(m)] == []


def test_checker_would_catch_a_violation() -> None:
    assert _forbidden("ledger.chain.client")
    assert _forbidden("web3")
    assert not _forbidden("ledger.core.envelope")
    assert not _forbidden("apiary")
