"""`kitledger migrate`: applies the migrations, idempotently, with a JSON verdict and exit code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api import commands
from api.config import load_settings
from api.db import make_engine
from api.migrate import head_revision
from ledger.cli import VerdictParser, run_command


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, object]]:
    parser = VerdictParser(prog="kitledger")
    commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    code = run_command(args)
    return code, json.loads(capsys.readouterr().out)


def test_migrate_builds_then_leaves_the_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'kl.db'}"
    head = head_revision(make_engine(load_settings(database_url=url)))
    assert _run(capsys, "migrate", "--database-url", url, "--revision", "0001") == (
        0, {"verdict": "ok", "from": None, "to": "0001", "registry_records": 0}
    )
    assert _run(capsys, "migrate", "--database-url", url) == (
        0, {"verdict": "ok", "from": "0001", "to": head, "registry_records": 0}
    )
    assert _run(capsys, "migrate", "--database-url", url)[1]["from"] == head


def test_migrate_reads_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "kitledger.toml"
    config.write_text(f'database_url = "sqlite:///{tmp_path / "from-file.db"}"\n')
    code, verdict = _run(capsys, "migrate", "--config", str(config))
    assert code == 0 and verdict["from"] is None and verdict["to"] is not None
    assert (tmp_path / "from-file.db").exists()


def test_migrate_refuses_bad_settings_and_unreachable_databases(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, verdict = _run(capsys, "migrate", "--database-url", "mysql://db/x")
    assert (code, verdict["verdict"]) == (2, "unusable")
    code, verdict = _run(
        capsys, "migrate", "--database-url", "postgresql://postgres@127.0.0.1:1/none"
    )
    assert (code, verdict["verdict"]) == (3, "failed")  # a needed service unreachable


def test_api_client_bootstraps_an_agency_and_a_working_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sqlmodel import Session

    from api.auth import authenticate

    url = f"sqlite:///{tmp_path / 'kl.db'}"
    assert _run(capsys, "migrate", "--database-url", url)[0] == 0
    code, verdict = _run(capsys, "api-client", "create", "--database-url", url, "--agency", "north",
                         "--scopes", "admin,assets:read")
    assert code == 0 and verdict["scopes"] == ["admin", "assets:read"]
    engine = make_engine(load_settings(database_url=url))
    with Session(engine) as session:
        caller = authenticate(session, str(verdict["key"]), "changeme")
        assert caller is not None and caller.agency_id == "north"
        assert authenticate(session, str(verdict["key"]) + "x", "changeme") is None
    assert _run(capsys, "api-client", "create", "--database-url", url, "--agency", "north",
                "--scopes", "root")[0] == 2
