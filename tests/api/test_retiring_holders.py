"""Retiring or erasing a person who still holds kit is refused on both databases (409, naming
the items they hold), through `POST /v1/people/{id}/retire` and `DELETE /v1/people/{id}`;
once the kit is checked in or handed over, the retirement goes through and is logged."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session

from api.models.people import Person
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
        bob = session.get(Person, "bob")
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
