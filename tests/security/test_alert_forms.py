"""The desk's alert buttons: a form with the session's token, posted from this site, by a
key holding `custody:write`, on the agency's own alert; anything else is refused and
records nothing. What is recorded names the session's client, and a hostile note is shown
inert."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.models import Alert, AlertAction
from tests.security.conftest import Service
from tests.security.security_support import form_token, sign_in


def _alert(service: Service, agency: str = "north") -> int:
    with Session(service.engine) as session:
        alert = Alert(agency_id=agency, kind="unauthorised_removal", asset_id="N-1",
                      reader_id=None, detail="leaving without a check-out",
                      created_at=datetime.now(UTC))
        session.add(alert)
        session.commit()
        assert alert.id is not None
        return alert.id


def _signed_in(service: Service, key: str) -> tuple[TestClient, str]:
    client = service.new_client()
    assert sign_in(client, service.keys[key]).status_code == 303
    page = client.get("/web/desk")
    assert page.status_code == 200, page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None
    return client, token.group(1)


def _recorded(service: Service) -> list[AlertAction]:
    with Session(service.engine) as session:
        return list(session.exec(select(AlertAction)))


def test_alert_form_acknowledges_and_resolves_as_the_sessions_client(service: Service) -> None:
    alert_id = _alert(service)
    client, token = _signed_in(service, "all")
    page = client.get("/web/desk").text
    assert f'data-alert="{alert_id}"' in page and 'role=alert' in page
    ack = client.post(f"/web/alerts/{alert_id}/acknowledge",
                      data={"csrf": token, "reader": "https://evil.example/"})
    assert ack.status_code == 303 and ack.headers["location"] == "/web/desk"  # never elsewhere
    note = "<img src=x onerror=alert(1)> found it"
    resolved = client.post(f"/web/alerts/{alert_id}/resolve",
                           data={"csrf": token, "note": note})
    assert resolved.status_code == 303
    actions = _recorded(service)
    assert [(a.action, a.actor_name, a.note) for a in actions] == [
        ("acknowledge", "all", ""), ("resolve", "all", note)]
    assert f'data-alert="{alert_id}"' not in client.get("/web/desk").text


def test_alert_form_records_the_signed_in_staff_account_not_a_key(service: Service) -> None:
    """A supervisor signed in with a password of their own: the acknowledgement names that
    person's account, so two officers at one desk are told apart."""
    alert_id = _alert(service)
    made = service.call("all", "POST", "/v1/accounts", json={
        "username": "sgt-dane", "role": "supervisor", "display_name": "Sgt Dane",
        "password": "correct horse battery staple"})
    assert made.status_code == 201, made.text
    client = service.new_client()
    signed = client.post("/web/login", data={
        "agency": "north", "username": "sgt-dane", "password": "correct horse battery staple",
        "csrf": form_token(client)})
    assert signed.status_code == 303, signed.text
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/web/desk").text)
    assert token is not None
    ack = client.post(f"/web/alerts/{alert_id}/acknowledge", data={"csrf": token.group(1)})
    assert ack.status_code == 303
    [action] = _recorded(service)
    assert (action.actor_kind, action.actor_id, action.actor_name) == (
        "account", made.json()["id"], "Sgt Dane")


@pytest.mark.parametrize("case", ["no token", "wrong token", "cross-site", "other origin",
                                  "read-only key", "other agency", "empty note", "long note",
                                  "NUL note", "oversized form", "unknown alert", "bad id"])
def test_alert_form_refused_records_nothing(service: Service, case: str) -> None:
    alert_id = _alert(service, "south" if case == "other agency" else "north")
    client, token = _signed_in(service, "assets" if case == "read-only key" else "all")
    data = {"csrf": token, "note": "ok"}
    headers: dict[str, str] = {}
    action, path_id = "resolve", str(alert_id)
    expected = 403
    if case == "no token":
        data.pop("csrf")
    elif case == "wrong token":
        data["csrf"] = "x" * len(token)
    elif case == "cross-site":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "other origin":
        headers["Origin"] = "https://evil.example"
    elif case == "other agency" or case == "unknown alert":
        path_id, expected = (path_id if case == "other agency" else "987654"), 404
    elif case == "empty note":
        data["note"], expected = "   ", 422
    elif case == "NUL note":
        data["note"], expected = "found\x00it", 422  # PostgreSQL text cannot hold it
    elif case == "long note":
        data["note"], expected = "n" * 1001, 422
    elif case == "oversized form":
        data["pad"] = "p" * 5000  # past the form bound: read as empty, so no token
    elif case == "bad id":
        path_id, expected = "-1", 422
    answer = client.post(f"/web/alerts/{path_id}/{action}", data=data,
                         headers=headers)
    assert answer.status_code == expected, (case, answer.status_code, answer.text[:200])
    assert _recorded(service) == []
    with Session(service.engine) as session:
        assert session.get(Alert, alert_id).resolved_at is None  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["reader_down", "antenna_fault", "disk_low", "outbox_full",
                                  "overdue_loan"])
def test_agency_page_acknowledges_and_resolves_health_and_overdue_alerts(
        service: Service, kind: str) -> None:
    """Alerts that never make a desk banner (readers' health, overdue loans) take the same
    buttons on the agency page, through the same routes, back to the agency page."""
    with Session(service.engine) as session:
        alert = Alert(agency_id="north", kind=kind, asset_id=None, reader_id=None,
                      detail=f"{kind} seen", created_at=datetime.now(UTC))
        session.add(alert)
        session.commit()
        alert_id = alert.id
    looker, _ = _signed_in(service, "assets")
    seen = looker.get("/web/agency").text
    assert f'data-alert="{alert_id}"' in seen and f"/web/alerts/{alert_id}/" not in seen
    client, token = _signed_in(service, "all")
    assert f"/web/alerts/{alert_id}/acknowledge" in client.get("/web/agency").text
    ack = client.post(f"/web/alerts/{alert_id}/acknowledge",
                      data={"csrf": token, "back": "agency"})
    assert ack.status_code == 303 and ack.headers["location"] == "/web/agency#alerts"
    shown = client.get("/web/agency").text
    assert "acknowledged by all" in shown and f"/web/alerts/{alert_id}/resolve" in shown
    done = client.post(f"/web/alerts/{alert_id}/resolve",
                       data={"csrf": token, "note": "reader rebooted", "back": "//evil.example"})
    assert done.status_code == 303 and done.headers["location"] == "/web/desk"
    assert f'data-alert="{alert_id}"' not in client.get("/web/agency").text
    assert [(a.action, a.note) for a in _recorded(service)] == [
        ("acknowledge", ""), ("resolve", "reader rebooted")]
