"""A witness runs on the bare install: no server extra, no auditor's extra. `kitledger witness
keygen` and every `ledger.witness` module work when those libraries cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BLOCKED = ("fastapi", "starlette", "sqlmodel", "sqlalchemy", "alembic", "uvicorn", "psycopg",
           "pydantic", "pydantic_settings", "prometheus_client", "httpx", "paho", "serial",
           "web3", "eth_tester", "eth_account", "eth_utils", "eth_abi", "hexbytes",
           "websockets", "jinja2", "reportlab", "nacl", "api")

RUNNER = """
import importlib, importlib.abc, json, sys
BLOCKED = {blocked!r}
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
for module in ("ledger.witness.commands", "ledger.witness.keys", "ledger.witness.state",
               "ledger.witness.service", "ledger.witness.server", "ledger.witness.client",
               "ledger.core.note"):
    importlib.import_module(module)
from ledger.cli import main
code = main(sys.argv[1:])
leaked = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
sys.stdout.write("\\n" + json.dumps({{"code": code, "leaked": leaked}}) + "\\n")
"""


def test_witness_needs_no_extra(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", RUNNER.format(blocked=BLOCKED), "witness",
                           "keygen", "--name", "w.example/1", "--out", str(tmp_path / "k")],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    vkey, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert json.loads(last) == {"code": 0, "leaked": []}
    assert vkey.strip().startswith("w.example/1+")
