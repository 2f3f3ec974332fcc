"""Retiring or erasing a person who still holds kit is refused on both databases (409, naming
the items they hold), through `POST /v1/people/{id}/retire` and `DELETE /v1/people/{id}`, the
registry page's Retire form and `kitledger person retire`; once the kit is checked in or
handed over, the retirement goes through and is logged."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session

from api import commands
from api.accounts.admin import create_local
from api.accounts.roles import StaffRole
from api.models.people import Person
from api.web.session import COOKIE, open_account_session
from ledger.cli import VerdictParser, run_command
from tests.api.test_property_room import Api, _manual, _world


def test_a_person_holding_kit_is_not_retired_until_it_is_back(engine: Engine,
                                                               tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    assert _manual(north, "R-2", "check_out", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    for answer in (north.post("/v1/people/bob/retire", {"reason": "left the force"}),
                   north.delete("/v1/people/bob")):
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        body = answer.json()
        assert body["holding"] == ["R-0", "R-2"] and "still holds 2 item(s)" in body["detail"]
    with Session(engine) as session:
        bob = session.get(Person, ("north", "bob"))
        assert bob is not None and bob.active  # nothing changed
    # Another agency cannot probe or retire north's people.
    assert south.post("/v1/people/bob/retire", {"reason": "x"}).status_code == 404
    # One item handed over to carol, one checked in: then bob may go; carol may not.
    assert _manual(north, "R-0", "transfer", "desk-1", officer="alice",
                   holder="carol").status_code == 201
    assert north.post("/v1/people/bob/retire", {"reason": "left"}).json()["holding"] == ["R-2"]
    assert _manual(north, "R-2", "check_in", "desk-2", officer="alice").status_code == 201
    retired = north.post("/v1/people/bob/retire", {"reason": "left the force"})
    assert retired.status_code == 200 and retired.json()["active"] is False
    assert north.delete("/v1/people/bob").status_code == 204
    assert north.delete("/v1/people/carol").json()["holding"] == ["R-0"]


def test_the_page_and_the_command_refuse_a_person_holding_kit(
        engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    now = datetime.now(UTC)
    with Session(engine) as session:
        cookies = {role: open_account_session(session, create_local(
            session, agency_id=agency, username=role.value, role=role, password=None,
            now=now, actor="cli"), now) for agency, role in (("north", StaffRole.AGENCY_ADMIN),
                                                ("south", StaffRole.SUPERVISOR))}
    admin = {"Cookie": f"{COOKIE}={cookies[StaffRole.AGENCY_ADMIN]}", "Accept": "text/html"}
    listed = client.get("/web/registry/people", headers=admin)
    assert 'aria-label="Retire bob"' in listed.text
    token = re.search(r'name="csrf" value="([^"]+)"', listed.text).group(1)  # type: ignore[union-attr]

    def retire(person: str, reason: str, csrf: str = token,
               headers: dict[str, str] = admin) -> Any:
        return client.post(f"/web/registry/people/{person}/retire", headers=headers,
                           data={"csrf": csrf, "reason": reason}, follow_redirects=False)

    refused = retire("bob", "left the force")
    assert refused.status_code == 409 and "still holds 1 item(s)" in refused.text
    assert "R-0" in refused.text and "<html" in refused.text
    assert retire("bob", "x", csrf="forged").status_code == 403
    assert retire("bob", "").status_code == 422
    assert retire("bob", "b" * 201).status_code == 422
    assert retire("S-person", "x").status_code == 404  # none such, or another agency's
    south = {"Cookie": f"{COOKIE}={cookies[StaffRole.SUPERVISOR]}"}  # no admin scope
    assert retire("carol", "x", csrf="", headers=south).status_code == 403
    assert retire("carol", "left").status_code == 303

    url = ["--database-url", engine.url.render_as_string(hide_password=False)]
    code, verdict = _run(capsys, "person", "retire", *url, "north", "bob", "--reason", "left")
    assert code == 1 and verdict["verdict"] == "refused" and "R-0" in verdict["reason"]
    code, verdict = _run(capsys, "person", "retire", *url, "south", "alice", "--reason", "x")
    assert code == 2 and verdict["verdict"] == "unusable"  # another agency's person
    code, verdict = _run(capsys, "person", "retire", *url, "north", "alice", "--reason",
                         "bad\x07")
    assert code == 2
    assert _manual(north, "R-0", "check_in", "desk-2", officer="alice").status_code == 201
    code, verdict = _run(capsys, "person", "retire", *url, "north", "bob", "--reason", "left",
                         "--erase")
    assert code == 0 and verdict["erased"] is True
    with Session(engine) as session:
        bob = session.get(Person, ("north", "bob"))
        assert bob is not None and not bob.active


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    parser = VerdictParser(prog="kitledger")
    commands.register(parser.add_subparsers(dest="command", required=True))
    code = run_command(parser.parse_args(list(argv)))
    lines = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(lines[-1]) if lines else {}
