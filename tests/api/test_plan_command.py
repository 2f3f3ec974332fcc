"""`kitledger plan` on both databases: the sizing table and what-ifs as text (the same figures
as `GET /v1/planning/pools`, as JSON with --json), pooling with another agency's site through
what it shares; bad input is a one-line refusal with the documented exit code."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api import commands
from api.models import Site
from ledger.cli import EXIT_OK, EXIT_UNUSABLE, VerdictParser, run_command
from tests.api.planning_support import END, START, build_world

PERIOD = ["--from", START.date().isoformat(), "--to", (END - timedelta(days=1)).date().isoformat()]


def _plan(capsys: pytest.CaptureFixture[str], engine: Engine, *argv: str
          ) -> tuple[int, str, str]:
    parser = VerdictParser(prog="kitledger")
    commands.register(parser.add_subparsers(dest="command", required=True))
    url = engine.url.render_as_string(hide_password=False)
    code = run_command(parser.parse_args(["plan", "--database-url", url, "--runs", "3",
                                          *PERIOD, *argv]))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_table_and_what_ifs(engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    build_world(engine)
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--class", "radio")
    assert code == EXIT_OK, out
    assert "Pool: radio at north-store (north), 2 items" in out
    assert "7 requests (2 told none in store, 1 of 2 bookings not collected)" in out
    assert "<- today" in out and "Surge: three times the demand" in out
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--class", "radio", "--json")
    plan = json.loads(out)["plan"]
    assert plan["pool"]["items"] == 2 and plan["demand"]["requests"] == 7


def test_pooling_with_another_agencys_site(engine: Engine,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    build_world(engine)
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--class", "radio",
                         "--with-site", "south-store", "--with-class", "s-radio")
    assert code == EXIT_OK, out
    assert "(north, south), 3 items" in out  # S-1 shared, S-2 not
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--class", "radio",
                         "--with-site", "north-annex")
    assert code == EXIT_OK and "north-annex, north-store (north), 3 items" in out


@pytest.mark.parametrize(("argv", "says"), [
    (["--site", "nowhere", "--class", "radio"], "no site"),
    (["--site", "north-store", "--class", "s-radio"], "class not found"),
    (["--site", "north-store", "--class", "radio", "--with-site", "south-store",
      "--with-class", "s-tool"], "shared class not found"),
    (["--site", "north-store", "--class", "radio", "--with-site", "south-store"],
     "naming both"),
    (["--site", "north-store", "--class", "radio", "--target", "1.5"], "target"),
    (["--site", "north-store", "--class", "radio", "--max-items", "501"], "pool sizes"),
])
def test_bad_plans_are_refused(engine: Engine, capsys: pytest.CaptureFixture[str],
                               argv: list[str], says: str) -> None:
    build_world(engine)
    code, out, err = _plan(capsys, engine, *argv)
    assert code == EXIT_UNUSABLE and json.loads(out)["verdict"] == "unusable"
    assert says in err and "Traceback" not in err


def test_a_site_id_two_agencies_have_is_named_with_its_agency(
        engine: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    """Ids are per agency: with south's own "north-store" too, `--site north-store` alone names
    no one store (refused), and `--agency` picks which."""
    build_world(engine)
    with Session(engine) as session:
        session.add(Site(id="north-store", agency_id="south", name="South's namesake"))
        session.commit()
    code, out, err = _plan(capsys, engine, "--site", "north-store", "--class", "radio")
    assert code == EXIT_UNUSABLE and "2 agencies have a site 'north-store'" in err
    assert "--agency" in err
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--agency", "north",
                         "--class", "radio")
    assert code == EXIT_OK and "Pool: radio at north-store (north), 2 items" in out
    code, out, _ = _plan(capsys, engine, "--site", "north-store", "--agency", "south",
                         "--class", "s-radio")  # south's namesake: no history to fit
    assert code == EXIT_UNUSABLE
    assert json.loads(out)["reason"].startswith("this history cannot be fitted"), out
