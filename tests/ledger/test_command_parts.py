"""The `kitledger` dispatcher enumerates the installed parts (entry-point group
`kitledger.commands`) and names none: the installed metadata matches pyproject.toml, a part
that cannot be imported leaves the others running, and `ledger` never reaches into the
server's packages."""

from __future__ import annotations

import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from ledger import cli
from ledger.core.merkle import EMPTY_ROOT
from tests.ledger.import_scan import imported_modules
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
SERVER_PACKAGES = ("api", "demo")


def _declared() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared: dict[str, str] = project["entry-points"][cli.COMMAND_GROUP]
    return declared


def test_installed_parts_are_the_declared_ones() -> None:
    installed = {part.name: part.value for part in cli.command_parts()}
    # A mismatch means the install is older than pyproject.toml: run `make setup`.
    assert installed == _declared()
    assert {"proof", "verify", "server", "demo"} <= set(installed)


def test_every_declared_part_adds_its_subcommands() -> None:
    parser = cli.build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"proof", "verify", "report", "epcis", "migrate", "serve", "api-client", "export",
            "up"} <= set(commands)
    assert "unavailable" not in (parser.epilog or "")  # nothing unavailable in the dev install


def _empty_proof() -> list[str]:
    root = EMPTY_ROOT.hex()
    return ["proof", "consistency", "--size1", "0", "--size2", "0", "--root1", root,
            "--root2", root, "--path", ""]


def test_a_part_that_cannot_import_leaves_the_others_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    broken = EntryPoint("broken", "kitledger_part_not_installed.commands:register",
                        cli.COMMAND_GROUP)
    parts = [broken, *cli.command_parts()]
    monkeypatch.setattr(cli, "command_parts", lambda: parts)
    assert cli.main(_empty_proof()) == cli.EXIT_OK
    assert '"verdict": "valid"' in capsys.readouterr().out
    with pytest.raises(SystemExit) as shown:
        cli.main(["--help"])
    assert shown.value.code == 0
    help_text = capsys.readouterr().out
    assert "unavailable parts" in help_text and "broken:" in help_text
    assert "kitledger_part_not_installed" in help_text
    assert "verify" in help_text


def _imports(path: Path) -> list[str]:
    return imported_modules(path, strings_under=SERVER_PACKAGES)


def _reaches_into_server(path: Path) -> list[str]:
    return [name for name in _imports(path)
            if any(name == p or name.startswith(p + ".") for p in SERVER_PACKAGES)]


def test_ledger_names_no_server_package() -> None:
    files = sorted((ROOT / "ledger").rglob("*.py"))
    assert files
    offenders = [f"{p.relative_to(ROOT)}: {n}" for p in files for n in _reaches_into_server(p)]
    assert offenders == []


def test_server_reach_check_would_catch_one(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text('import importlib\nfrom api.commands import register\n'
                     'importlib.import_module("demo.up")\n')
    assert _reaches_into_server(probe) == ["api.commands", "demo.up"]
