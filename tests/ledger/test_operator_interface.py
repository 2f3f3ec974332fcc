"""One operator interface: every `kitledger` command fails with one line on stderr saying what
failed and what to do, with a documented exit code and no traceback (unless --debug); both
commands answer --version; a read-only command never creates a database; a missing library
is named with its extra; long commands draw progress on a terminal and stay quiet in pipes.
(Ctrl-C on the agent: tests/reader_agent/test_cli.py.)"""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger import cli
from tests.fixtures.without_extras import run_without
from tests.paths import REPO_ROOT

BIN = Path(sys.executable).parent
KITLEDGER = str(BIN / "kitledger")
AGENT = str(BIN / "kitledger-agent")
CORPUS = REPO_ROOT / "tests" / "vectors" / "bundles"
ERROR_LINE = re.compile(r"^kitledger(-agent)? [a-z][a-z -]*: [^;\n]+; [^\n]+$")
"""`kitledger COMMAND: what failed; what to do`, one line."""
SERVER_LIBRARIES = ("pydantic", "pydantic_settings", "fastapi", "sqlmodel", "sqlalchemy",
                    "alembic", "uvicorn", "starlette", "psycopg")


def _kitledger(*args: str, cwd: Path | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("KITLEDGER_")}
    return subprocess.run([KITLEDGER, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd, env={**environment, **(env or {})}, check=False)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 or lines[0].startswith("usage:"), done.stderr
    assert ERROR_LINE.match(lines[-1]), lines[-1]
    return lines[-1]


def test_both_commands_print_their_version() -> None:
    for command in (KITLEDGER, AGENT):
        done = subprocess.run([command, "--version"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0 and re.fullmatch(r"kitledger(-agent)? \d+\.\d+\.\d+\S*\n",
                                                     done.stdout), done


def test_help_documents_the_exit_codes() -> None:
    done = _kitledger("--help")
    assert "exit codes: 0 done; 1 failed" in done.stdout and "130 interrupted" in done.stdout


def test_a_read_only_command_creates_no_database(tmp_path: Path) -> None:
    """Default settings, a folder with no database: export says to migrate, creates
    nothing (it once left an empty ./kitledger.db and failed with 'no such table')."""
    done = _kitledger("export", "--agency", "north", "--asset", "R-1", "--out",
                      str(tmp_path / "out.jsonl"), cwd=tmp_path)
    assert done.returncode == 2
    line = _one_error_line(done)
    assert "no database at kitledger.db" in line and "kitledger migrate" in line
    assert json.loads(done.stdout)["verdict"] == "unusable"
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    for command in (["api-client", "create", "--agency", "north"],):
        done = _kitledger(*command, cwd=tmp_path)
        assert done.returncode == 2 and "kitledger migrate" in _one_error_line(done)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_an_unmigrated_database_is_named_not_queried(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    done = _kitledger("export", "--agency", "north", "--asset", "R-1", "--out",
                      str(tmp_path / "out.jsonl"),
                      "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert done.returncode == 2
    assert "has no kitledger tables; run `kitledger migrate` first" in _one_error_line(done)


@pytest.mark.parametrize("url", ["postgresql://kl:s3cret@127.0.0.1:99999/none",
                                 "postgresql://kl:s3cret@127.0.0.1:1/none",
                                 "sqlite:////nonexistent-dir/x/kitledger.db"])
@pytest.mark.parametrize("command", ["migrate", "export"])
def test_a_bad_database_url_is_one_line(url: str, command: str, tmp_path: Path) -> None:
    extra = ["--agency", "a", "--asset", "R-1", "--out", str(tmp_path / "o")] \
        if command == "export" else []
    done = _kitledger(command, "--database-url", url, *extra)
    assert done.returncode in (2, 3)
    line = _one_error_line(done)
    assert "--database-url" in line or "no database at" in line
    assert "s3cret" not in done.stderr + done.stdout  # the password is never shown


@pytest.mark.parametrize("args", [
    ["proof", "inclusion", "--leaf-hash", "zz", "--index", "0", "--size", "1", "--root",
     "00" * 32, "--path", ""],
    ["verify", "/nonexistent/bundle.jsonl", "--offline"],
    ["report", str(CORPUS / "valid.jsonl"), "--asset", "x", "--offline"],
    ["report", "/nonexistent/bundle.jsonl", "--asset", "x", "--offline", "--html", "/tmp/x"],
    ["epcis", "/nonexistent/bundle.jsonl"],
    ["serve", "--workers", "0"],
    ["api-client", "create", "--agency", "a", "--scopes", "root"],
    ["reader-ca", "issue", "--dir", "/nonexistent", "/nonexistent/enrollment.json", "--out",
     "/tmp/x.crt"],
    ["witness", "serve", "--key", "/nonexistent", "--state", "/nonexistent/s.db", "--listen",
     "127.0.0.1:0", "--log", "kitledger/x=bad"],
    ["export", "--agency", "a"],  # an argparse error: usage, then the one line
    ["consortium", "submit", "/nonexistent/order.json", "--rpc", "http://127.0.0.1:1"],
    ["consortium", "revoke-anchorer", "--agency", "a", "--account", "0x" + "ab" * 20,
     "--contract", "0x" + "cd" * 20, "--key-file", "/nonexistent/admin.key", "--out",
     "/tmp/x.json"],
    ["anchoring-identity", "--agency", "../a"],
])
def test_every_command_fails_in_one_line(args: list[str], tmp_path: Path) -> None:
    done = _kitledger(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    _one_error_line(done)


def test_report_with_nothing_to_write_says_so() -> None:
    done = _kitledger("report", str(CORPUS / "valid.jsonl"), "--asset", "x", "--offline")
    assert done.returncode == 2
    assert "none of --html, --pdf or --csv" in _one_error_line(done)


def test_serve_without_the_server_extra_names_it() -> None:
    done = run_without(SERVER_LIBRARIES, "serve")
    assert json.loads(done.stdout.splitlines()[-1])["code"] == 2, done.stderr
    line = _one_error_line(done)  # type: ignore[arg-type]
    assert "pip install 'kitledger[server]'" in line and "ModuleNotFoundError" not in line


def _namespace(run: Callable[[argparse.Namespace], int], debug: bool) -> argparse.Namespace:
    return argparse.Namespace(command="probe", run=run, debug=debug)


def _raise(exc: BaseException) -> Callable[[argparse.Namespace], int]:
    def run(_args: argparse.Namespace) -> int:
        raise exc
    return run


def test_a_bug_is_one_line_and_its_traceback_only_with_debug(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run_command(_namespace(_raise(RuntimeError("boom\nsecond line")), False)) == \
        cli.EXIT_INTERNAL
    err = capsys.readouterr().err
    assert err == ("kitledger probe: stopped by an unexpected RuntimeError: boom second line; "
                   "run it again with --debug for the traceback, and report it\n")
    assert cli.run_command(_namespace(_raise(RuntimeError("boom")), True)) == cli.EXIT_INTERNAL
    assert "Traceback" in capsys.readouterr().err
    assert cli.run_command(_namespace(_raise(KeyboardInterrupt()), False)) == \
        cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err.startswith("kitledger probe: interrupted; ")


def test_debug_is_accepted_after_the_subcommand(tmp_path: Path) -> None:
    done = _kitledger("export", "--agency", "a", "--asset", "R-1", "--out", str(tmp_path / "o"),
                      "--debug", cwd=tmp_path)
    assert done.returncode == 2 and "no database at" in done.stderr


def _on_a_terminal(*args: str) -> tuple[int, str]:
    """Run `kitledger ARGS` with stderr on a pseudo-terminal; its exit code and what it drew."""
    master, slave = pty.openpty()
    done = subprocess.Popen([KITLEDGER, *args], stdout=subprocess.DEVNULL, stderr=slave,
                            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"})
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    return done.wait(timeout=60), drawn.decode(errors="replace")


def test_verify_draws_progress_on_a_terminal_and_not_in_a_pipe() -> None:
    bundle = str(CORPUS / "valid.jsonl")
    code, drawn = _on_a_terminal("verify", bundle, "--offline", "--no-state", "--progress")
    assert code in (0, 4) and "events" in drawn and "━" in drawn, drawn
    piped = _kitledger("verify", bundle, "--offline", "--no-state")
    assert piped.returncode in (0, 4) and piped.stderr == ""
