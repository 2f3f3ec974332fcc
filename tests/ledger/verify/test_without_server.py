"""The auditor's commands on a machine without the `server` extra: `proof`, `verify --offline`
and `epcis` run on the bare install (no extra at all), `report` with the `audit` extra, and
`--help` still lists them, when the other extras' libraries cannot be imported."""

from __future__ import annotations

import json
from pathlib import Path

from ledger.core.merkle import EMPTY_ROOT
from tests.fixtures.without_extras import run_without
from tests.ledger.verify.audit_support import (
    ASSETS,
    VERSION_1_UNPINNED,
    Story,
    sound_but_version_1,
    write_trust,
)

SERVER_ONLY = ("fastapi", "starlette", "sqlmodel", "sqlalchemy", "alembic", "uvicorn",
               "psycopg", "pydantic_settings", "prometheus_client", "httpx", "paho", "serial")
"""Top-level modules only the `server` (or `agent`) extra installs."""
AUDIT_ONLY = ("web3", "eth_tester", "eth_account", "eth_utils", "eth_abi", "hexbytes",
              "websockets", "jinja2", "weasyprint", "nacl")
"""Top-level modules the `audit` extra adds to a bare install."""
BARE = SERVER_ONLY + AUDIT_ONLY



def without(blocked: tuple[str, ...], *args: str) -> tuple[int, str]:
    done = run_without(blocked, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    output, _, last = done.stdout.rstrip("\n").rpartition("\n")
    result = json.loads(last)
    assert result["leaked"] == []
    return result["code"], output


def test_proof_and_help_run_on_a_bare_install() -> None:
    root = EMPTY_ROOT.hex()
    code, out = without(BARE, "proof", "consistency", "--size1", "0", "--size2", "0",
                               "--root1", root, "--root2", root, "--path", "")
    assert code == 0 and json.loads(out)["verdict"] == "valid"
    done = run_without(BARE, "--help")
    assert done.returncode == 0, done.stderr[-2000:]
    for command in ("proof", "verify", "report", "epcis"):
        assert command in done.stdout


def test_verify_report_and_epcis_run_without_the_server_extra(bundle: bytes, story: Story,
                                                               tmp_path: Path) -> None:
    """verify --offline and epcis on a bare install; report with the audit extra."""
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(bundle)
    trust = write_trust(tmp_path, story, required=False)
    code, out = without(BARE, "verify", str(path), "--offline", "--json", "--trust", trust)
    assert sound_but_version_1(code, json.loads(out))
    code, out = without(BARE, "verify", str(path), "--offline", "--json", "--no-state")
    assert code == 4 and json.loads(out)["verdict"] == "unpinned"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(bundle.replace(b'"check_out"', b'"check_in"', 1))
    code, out = without(BARE, "verify", str(tampered), "--offline", "--json", "--trust", trust)
    assert code == 1 and json.loads(out)["verdict"] == "invalid"
    html = tmp_path / "report.html"
    code, out = without(SERVER_ONLY, "report", str(path), "--asset", ASSETS[1], "--offline",
                               "--html", str(html), "--trust", trust)
    assert code == 4 and out.startswith("UNPINNED") and VERSION_1_UNPINNED in out, out
    assert ASSETS[1] in html.read_text()
    code, out = without(BARE, "epcis", str(path))
    assert code == 0 and json.loads(out)["epcisBody"]["eventList"]
