"""A witness runs on the bare install: no server extra, no auditor's extra. `kitledger witness
keygen` and every `ledger.witness` module work when those libraries cannot be imported."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fixtures.without_extras import run_without

BLOCKED = ("fastapi", "starlette", "sqlmodel", "sqlalchemy", "alembic", "uvicorn", "psycopg",
           "pydantic", "pydantic_settings", "prometheus_client", "httpx", "paho", "serial",
           "web3", "eth_tester", "eth_account", "eth_utils", "eth_abi", "hexbytes",
           "websockets", "jinja2", "weasyprint", "nacl", "api")

PRELOAD = ("ledger.witness.commands", "ledger.witness.keys", "ledger.witness.state",
           "ledger.witness.service", "ledger.witness.server", "ledger.witness.client",
           "ledger.core.note")


def test_witness_needs_no_extra(tmp_path: Path) -> None:
    done = run_without(BLOCKED, "witness", "keygen", "--name", "w.example/1",
                       "--out", str(tmp_path / "k"), preload=PRELOAD)
    assert done.returncode == 0, done.stderr[-2000:]
    vkey, _, last = done.stdout.rstrip("\n").rpartition("\n")
    assert json.loads(last) == {"code": 0, "leaked": []}
    assert vkey.strip().startswith("w.example/1+")
