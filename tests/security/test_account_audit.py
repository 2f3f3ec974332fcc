"""The staff accounts' audit trail (`api.accounts.audit`): every change made through the REST
API, the pages or `kitledger account` adds exactly one row naming who made it, never a
password or hash; a refused change adds none; another agency's admin cannot read it; nothing
changes a row. (Single sign-on's rows: tests/security/test_sso.py.) Both databases."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select

from api.models import AccountAudit, StaffAccount
from tests.security.conftest import Service
from tests.security.security_support import form_token, sign_in
from tests.security.test_accounts import _create_by_cli, _run
from tests.security.test_accounts_page import _browser, _post

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long passphrase"


def _client_id(service: Service, who: str = "all") -> str:
    """The client id a key names (`kl_<client id>_<secret>`)."""
    return service.keys[who].split("_")[1]


def _rows(service: Service, account_id: str) -> list[tuple[str, str, str]]:
    """The account's rows, oldest first, as (action, detail, actor)."""
    with Session(service.engine) as session:
        rows = session.exec(select(AccountAudit).where(AccountAudit.account_id == account_id)
                            .order_by(col(AccountAudit.id))).all()
        return [(r.action, r.detail, r.actor) for r in rows]


def _all_rows(service: Service) -> list[AccountAudit]:
    with Session(service.engine) as session:
        return list(session.exec(select(AccountAudit)))


def _no_secret(service: Service) -> None:
    with Session(service.engine) as session:
        hashes = [a.password_hash for a in session.exec(select(StaffAccount)) if a.password_hash]
    for row in _all_rows(service):
        text = json.dumps(row.model_dump(mode="json"))
        assert PASSWORD not in text and NEW_PASSWORD not in text and "argon2" not in text
        assert not any(h in text for h in hashes)


def test_each_rest_change_adds_one_row_by_the_key(service: Service) -> None:
    by = f"client:{_client_id(service)}"
    made = service.call("all", "POST", "/v1/accounts",
                        json={"username": "sam", "role": "read-only", "password": PASSWORD})
    assert made.status_code == 201, made.text
    sam = made.json()["id"]
    assert _rows(service, sam) == [("created", "role read-only", by)]
    for url, body in ((f"/v1/accounts/{sam}/role", {"role": "supervisor"}),
                      (f"/v1/accounts/{sam}/role", {"role": "supervisor"}),  # no change
                      (f"/v1/accounts/{sam}/password", {"password": NEW_PASSWORD}),
                      (f"/v1/accounts/{sam}/disable", None),
                      (f"/v1/accounts/{sam}/disable", None)):  # already disabled
        assert service.call("all", "POST", url, json=body).status_code == 200, url
    assert _rows(service, sam) == [
        ("created", "role read-only", by), ("role_changed", "read-only -> supervisor", by),
        ("password_reset", "sessions ended", by), ("disabled", "sessions ended", by)]
    answer = service.call("all", "GET", f"/v1/accounts/{sam}/audit")
    assert answer.status_code == 200, answer.text
    listed = answer.json()
    assert [r["action"] for r in listed] == ["disabled", "password_reset", "role_changed",
                                             "created"]  # newest first
    assert all(r["actor"] == by and r["account_id"] == sam and r["agency_id"] == "north"
               and r["at"] for r in listed)
    assert len(service.call("all", "GET", f"/v1/accounts/{sam}/audit?limit=1").json()) == 1
    _no_secret(service)


def test_refused_rest_changes_add_no_row(service: Service) -> None:
    sam = service.call("all", "POST", "/v1/accounts",
                       json={"username": "sam", "role": "auditor"}).json()["id"]
    for url, body in ((f"/v1/accounts/{sam}/password", {"password": "short"}),
                      (f"/v1/accounts/{sam}/role", {"role": "god"})):
        assert service.call("all", "POST", url, json=body).status_code == 422, url
    again = service.call("all", "POST", "/v1/accounts",
                         json={"username": "sam", "role": "supervisor"})
    assert again.status_code == 409
    assert service.call("all", "POST", "/v1/accounts", json={
        "username": "kim", "role": "auditor", "password": "short"}).status_code == 422
    assert [(r.action, r.account_id) for r in _all_rows(service)] == [("created", sam)]


def test_another_agencys_admin_cannot_read_the_trail(service: Service) -> None:
    sam = service.call("all", "POST", "/v1/accounts",
                       json={"username": "sam", "role": "auditor"}).json()["id"]
    other = service.call("south", "GET", f"/v1/accounts/{sam}/audit")
    assert other.status_code == 404 and other.headers["content-type"].startswith(
        "application/problem+json")
    assert "sam" not in other.text and "created" not in other.text
    for who in ("assets", "audit", "writer", "none"):  # no admin scope
        assert service.call(who, "GET", f"/v1/accounts/{sam}/audit").status_code == 403, who
    assert service.call("", "GET", f"/v1/accounts/{sam}/audit").status_code == 401
    assert service.call("all", "GET", "/v1/accounts/0000000000000000/audit").status_code == 404


@pytest.mark.parametrize(("path", "status"), [
    ("/v1/accounts/" + "a" * 200 + "/audit", 422),
    ("/v1/accounts/sam%00/audit", 422),
    ("/v1/accounts/{sam}/audit?limit=0", 422),
    ("/v1/accounts/{sam}/audit?limit=1001", 422),
    ("/v1/accounts/{sam}/audit?limit=x", 422),
])
def test_malformed_audit_requests_are_refused(service: Service, path: str, status: int) -> None:
    sam = service.call("all", "POST", "/v1/accounts",
                       json={"username": "sam", "role": "auditor"}).json()["id"]
    answer = service.call("all", "GET", path.replace("{sam}", sam))
    assert answer.status_code == status, answer.text
    assert "Traceback" not in answer.text


def test_no_endpoint_changes_a_row(service: Service) -> None:
    sam = service.call("all", "POST", "/v1/accounts",
                       json={"username": "sam", "role": "auditor"}).json()["id"]
    before = _rows(service, sam)
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        answer = service.call("all", method, f"/v1/accounts/{sam}/audit",
                              json={"actor": "cli", "detail": "forged"})
        assert answer.status_code == 405, (method, answer.status_code)
    schema = service.call("all", "GET", "/openapi.json").json()
    audit_paths = {p: set(ops) for p, ops in schema["paths"].items() if "audit" in p
                   and "account" in p}
    assert audit_paths == {"/v1/accounts/{account_id}/audit": {"get"}}
    assert _rows(service, sam) == before


def test_each_page_change_adds_one_row_by_the_signed_in_account(service: Service) -> None:
    boss_id = service.call("all", "POST", "/v1/accounts", json={
        "username": "boss", "role": "agency-admin", "password": PASSWORD}).json()["id"]
    boss = _browser(service, "boss")
    by = f"account:{boss_id}"
    made = _post(boss, "/web/accounts/new", {"username": "sam", "role": "read-only",
                                             "password": PASSWORD, "password_confirm": PASSWORD})
    assert made.status_code == 303, made.text
    sam = made.headers["location"].rsplit("=", 1)[1]
    assert _post(boss, f"/web/accounts/{sam}/role", {"role": "auditor"}).status_code == 303
    assert _post(boss, f"/web/accounts/{sam}/password", {
        "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}).status_code == 303
    assert _post(boss, f"/web/accounts/{sam}/disable", {"confirm": "yes"}).status_code == 303
    assert _rows(service, sam) == [
        ("created", "role read-only", by), ("role_changed", "read-only -> auditor", by),
        ("password_reset", "sessions ended", by), ("disabled", "sessions ended", by)]
    # Refused on the page: the admin's own account, an unticked box, passwords that differ.
    for path, form in ((f"/web/accounts/{boss_id}/disable", {"confirm": "yes"}),
                       (f"/web/accounts/{boss_id}/role", {"role": "supervisor"}),
                       (f"/web/accounts/{sam}/password", {"password": NEW_PASSWORD,
                                                          "password_confirm": "x"})):
        assert _post(boss, path, form).status_code == 422, path
    assert len(_rows(service, sam)) == 4
    assert _rows(service, boss_id) == [("created", "role agency-admin",
                                        f"client:{_client_id(service)}")]
    # The history page shows them, newest first, to the agency's admins only.
    page = boss.get(f"/web/accounts/{sam}/history")
    assert page.status_code == 200 and "History of sam" in page.text
    assert page.text.index("disabled") < page.text.index("role changed") < page.text.index(
        "read-only -&gt; auditor") and by in page.text
    assert f'href="/web/accounts/{sam}/history"' in boss.get("/web/accounts").text
    _no_secret(service)


def test_the_history_page_is_for_the_agencys_admins_only(service: Service) -> None:
    for agency, name, role in (("north", "boss", "agency-admin"), ("north", "sue", "supervisor"),
                               ("south", "sol", "agency-admin")):
        who = "all" if agency == "north" else "south"
        assert service.call(who, "POST", "/v1/accounts", json={
            "username": name, "role": role, "password": PASSWORD}).status_code == 201
    sam = service.call("all", "POST", "/v1/accounts",
                       json={"username": "sam", "role": "auditor"}).json()["id"]
    path = f"/web/accounts/{sam}/history"
    assert _browser(service, "sue").get(path).status_code == 403
    assert _browser(service, "sol", agency="south").get(path).status_code == 404
    boss = _browser(service, "boss")
    assert boss.get("/web/accounts/NOT-HEX/history").status_code == 422
    assert boss.get("/web/accounts/" + "a" * 40 + "/history").status_code == 422
    assert service.new_client().get(path).status_code == 303  # signed out: to the sign-in form
    assert form_token(service.new_client())  # the sign-in form still serves


def test_each_command_change_adds_one_row_by_cli(
        service: Service, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, code, made = _create_by_cli(service, capsys, monkeypatch)
    assert code == 0, made
    sam = made["account"]["id"]
    _run(capsys, monkeypatch, "", "account", "set-role", *url, sam, "supervisor")
    _run(capsys, monkeypatch, NEW_PASSWORD + "\n", "account", "reset-password", *url, sam)
    _run(capsys, monkeypatch, "", "account", "disable", *url, sam)
    # A refused change (a short password) adds nothing.
    code, refused = _run(capsys, monkeypatch, "short\n", "account", "reset-password", *url, sam)
    assert (code, refused["verdict"]) == (2, "unusable")
    code, listed = _run(capsys, monkeypatch, "", "account", "audit", *url, "north", sam)
    assert code == 0 and listed["verdict"] == "ok", listed
    assert [(r["action"], r["detail"], r["actor"]) for r in listed["audit"]] == [
        ("disabled", "sessions ended", "cli"), ("password_reset", "sessions ended", "cli"),
        ("role_changed", "auditor -> supervisor", "cli"), ("created", "role auditor", "cli")]
    assert PASSWORD not in json.dumps(listed) and NEW_PASSWORD not in json.dumps(listed)
    # Another agency's account, or an unknown one: refused, nothing shown.
    for agency, account in (("south", sam), ("north", "0000000000000000"),
                            ("north", "a" * 200)):
        code, refused = _run(capsys, monkeypatch, "", "account", "audit", *url, agency, account)
        assert (code, refused["verdict"]) == (2, "unusable"), refused
        assert "audit" not in refused
    _no_secret(service)


def test_a_page_change_by_an_api_key_names_the_key(service: Service) -> None:
    client = service.new_client()
    assert sign_in(client, service.keys["all"]).status_code == 303
    made = _post(client, "/web/accounts/new", {"username": "kim", "role": "auditor"})
    assert made.status_code == 303, made.text
    kim = made.headers["location"].rsplit("=", 1)[1]
    assert _rows(service, kim) == [("created", "role auditor", f"client:{_client_id(service)}")]
