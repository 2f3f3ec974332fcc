"""Acknowledging and resolving alerts over REST (SQLite and PostgreSQL), and errors answered
as pages to browsers but as problem JSON to API clients."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.models import Alert, AlertAction
from api.models.custody import MAX_ALERT_NOTE_CHARS
from tests.api.test_rest import World, world

__all__ = ["world"]


def _alert_id(engine: Engine) -> int:
    with Session(engine) as session:
        alert = session.exec(select(Alert).where(Alert.agency_id == "north")).one()
        assert alert.id is not None
        return alert.id


def test_alert_acknowledged_then_resolved_kept_and_attributed(world: World,
                                                              engine: Engine) -> None:
    alert_id = _alert_id(engine)
    ack = world.call("north", "POST", f"/v1/alerts/{alert_id}/acknowledge",
                     json={"note": "  on my way  "})
    assert ack.status_code == 201, ack.text
    assert (ack.json()["action"], ack.json()["note"], ack.json()["actor_name"],
            ack.json()["actor_kind"]) == ("acknowledge", "on my way", "north", "api_client")
    assert world.call("north", "GET", "/v1/alerts").json()[0]["resolved_at"] is None
    resolved = world.call("north", "POST", f"/v1/alerts/{alert_id}/resolve",
                          json={"note": "found in the van, booked back in"})
    assert resolved.status_code == 201, resolved.text
    # Closed: gone from the open list, still there with both actions in order.
    assert world.call("north", "GET", "/v1/alerts").json() == []
    every = world.call("north", "GET", "/v1/alerts", params={"open_only": "false"}).json()
    assert every[0]["resolved_at"] is not None
    actions = world.call("north", "GET", f"/v1/alerts/{alert_id}/actions").json()
    assert [(a["action"], a["note"]) for a in actions] == [
        ("acknowledge", "on my way"), ("resolve", "found in the van, booked back in")]
    assert {a["actor_id"] for a in actions} == {world.keys["north"].split("_")[1]}


def test_alert_actions_replayed_are_conflicts_and_never_overwrite(world: World,
                                                                  engine: Engine) -> None:
    alert_id = _alert_id(engine)
    url = f"/v1/alerts/{alert_id}"
    assert world.call("north", "POST", url + "/acknowledge", json={}).status_code == 201
    again = world.call("north", "POST", url + "/acknowledge", json={"note": "me too"})
    assert again.status_code == 409 and "already acknowledged" in again.json()["detail"]
    assert world.call("north", "POST", url + "/resolve", json={"note": "done"}).status_code == 201
    for action, body in (("resolve", {"note": "done again"}), ("acknowledge", {})):
        replay = world.call("north", "POST", f"{url}/{action}", json=body)
        assert replay.status_code == 409, replay.text
    with Session(engine) as session:
        notes = [a.note for a in session.exec(select(AlertAction).order_by(AlertAction.id))]
    assert notes == ["", "done"]


@pytest.mark.parametrize(("body", "why"), [
    ({}, "missing"), ({"note": ""}, "empty"), ({"note": "   "}, "blank"),
    ({"note": "x" * (MAX_ALERT_NOTE_CHARS + 1)}, "oversized"), ({"note": 5}, "not text"),
    ({"note": "a\x00b"}, "NUL"), ([], "not an object"),
])
def test_alert_resolve_refuses_malformed_notes(world: World, engine: Engine,
                                               body: object, why: str) -> None:
    alert_id = _alert_id(engine)
    answer = world.call("north", "POST", f"/v1/alerts/{alert_id}/resolve", json=body)
    assert answer.status_code == 422, (why, answer.text)
    assert "x" * 50 not in answer.text  # the input is never echoed
    assert world.call("north", "GET", f"/v1/alerts/{alert_id}/actions").json() == []


def test_alert_actions_scoped_to_agency_and_write_scope(world: World, engine: Engine) -> None:
    alert_id = _alert_id(engine)
    for who, method, action, status in (
        ("south", "POST", "acknowledge", 404),  # another agency's alert: as if unknown
        ("south", "GET", "actions", 404),
        ("north-ro", "POST", "acknowledge", 403),  # assets:read only may look, not act
        ("", "POST", "acknowledge", 401),
    ):
        answer = world.call(who, method, f"/v1/alerts/{alert_id}/{action}", json={})
        assert answer.status_code == status, (who, action, answer.text)
    assert world.call("north-ro", "GET", f"/v1/alerts/{alert_id}/actions").json() == []
    for bad in ("0", "-1", "9" * 30, "x"):
        assert world.call("north", "POST", f"/v1/alerts/{bad}/acknowledge",
                          json={}).status_code == 422
    assert world.call("north", "POST", "/v1/alerts/999999/acknowledge",
                      json={}).status_code == 404


def test_alert_note_stored_verbatim_and_hostile_markup_inert(world: World,
                                                             engine: Engine) -> None:
    alert_id = _alert_id(engine)
    note = "<script>alert(1)</script> & ' \" — ünïcödé"
    answer = world.call("north", "POST", f"/v1/alerts/{alert_id}/acknowledge",
                        json={"note": note})
    assert answer.status_code == 201 and answer.json()["note"] == note


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "html"), [
    (BROWSER_ACCEPT, True),
    ("text/html", True),
    ("application/json", False),
    ("application/problem+json", False),
    ("*/*", False),
    (None, False),
    ("application/json, text/html;q=0.5", False),
    ("text/html;q=0.2, application/json;q=0.1", True),
    ("text/html;q=0", False),
    ("text/html;q=abc", False),
    ("text/html;" + "q=1;" * 400, False),  # oversized: not parsed
])
def test_problem_answered_as_page_only_to_browsers(world: World, accept: str | None,
                                                   html: bool) -> None:
    headers = {"Accept": accept} if accept is not None else {}
    answer = world.call("north", "GET", "/v1/assets/no-such-asset", headers=headers)
    assert answer.status_code == 404
    if html:
        assert answer.headers["content-type"].startswith("text/html")
        assert "Not found" in answer.text and "asset not found" in answer.text
        assert "<script" not in answer.text.split("</head>")[1]  # no inline script
    else:
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["detail"] == "asset not found"


def test_problem_page_keeps_status_headers_and_escapes(world: World) -> None:
    # A validation error lists where; a 401 keeps its status; a page never runs input.
    bad = world.call("north", "GET", "/v1/alerts", params={"limit": "<b>x</b>"},
                     headers={"Accept": BROWSER_ACCEPT})
    assert bad.status_code == 422 and "text/html" in bad.headers["content-type"]
    assert "limit" in bad.text and "<b>x</b>" not in bad.text
    unauthenticated = world.call("", "GET", "/v1/assets", headers={"Accept": BROWSER_ACCEPT})
    assert unauthenticated.status_code == 401 and "Not authenticated" in unauthenticated.text
    assert "content-security-policy" in unauthenticated.headers
