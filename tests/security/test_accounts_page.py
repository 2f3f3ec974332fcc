"""The agency admin's accounts page (`api.web.accounts_page`): create, change a role, disable
and reset a password through `api.accounts.admin`, as `/v1/accounts` does; only with `admin`,
the session's token, from this site, on the admin's own agency's accounts; an admin cannot
disable themselves or drop their own admin role. Both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from api.accounts import admin
from api.accounts.roles import StaffRole
from api.models import StaffAccount
from api.models.people import PersonCreate
from api.registry import create_person
from tests.security.conftest import Service
from tests.security.security_support import form_token, sign_in

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long passphrase"


def _account(service: Service, username: str, role: StaffRole, agency: str = "north") -> str:
    with Session(service.engine) as session:
        account = admin.create_local(session, agency_id=agency, username=username, role=role,
                                     password=PASSWORD, now=datetime.now(UTC), actor="cli")
        session.commit()
        return account.id


def _browser(service: Service, username: str, agency: str = "north",
             password: str = PASSWORD) -> TestClient:
    client = service.new_client()
    signed = client.post("/web/login", data={"agency": agency, "username": username,
                                             "password": password, "csrf": form_token(client)})
    assert signed.status_code == 303, signed.text[:300]
    return client


def _token(client: TestClient, path: str = "/web/accounts") -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', client.get(path).text)
    assert match is not None
    return match.group(1)


def _post(client: TestClient, path: str, form: dict[str, str], **headers: str) -> Any:
    return client.post(path, data={"csrf": _token(client, "/web/"), **form}, headers=headers)


def _stored(service: Service, username: str) -> StaffAccount | None:
    with Session(service.engine) as session:
        return session.exec(select(StaffAccount).where(StaffAccount.username == username)).first()


def test_admin_creates_changes_resets_and_disables_accounts(service: Service) -> None:
    _account(service, "boss", StaffRole.AGENCY_ADMIN)
    boss = _browser(service, "boss")
    listed = boss.get("/web/accounts")
    assert listed.status_code == 200 and "boss" in listed.text and "(you)" in listed.text
    assert 'href="/web/accounts"' in boss.get("/web/").text
    # Two passwords that differ: nothing made.
    differ = _post(boss, "/web/accounts/new", {"username": "sam", "role": "stores-officer",
                                               "password": PASSWORD, "password_confirm": "x"})
    assert differ.status_code == 422 and "the two passwords differ" in differ.text
    assert _stored(service, "sam") is None
    made = _post(boss, "/web/accounts/new", {
        "username": "sam", "role": "stores-officer", "display_name": "Sam <b>Stores</b>",
        "password": PASSWORD, "password_confirm": PASSWORD})
    assert made.status_code == 303, made.text
    sam = _stored(service, "sam")
    assert sam is not None and sam.role == "stores-officer"
    assert sam.password_hash is not None and sam.password_hash.startswith("$argon2id$")
    page = boss.get(made.headers["location"]).text
    assert made.headers["location"] == f"/web/accounts?done=created&account={sam.id}"
    assert "Saved: sam: created." in page and "Sam &lt;b&gt;Stores&lt;/b&gt;" in page
    # A link names a known change and an id only: it cannot make the page say free text,
    # nor confirm another agency's account.
    for query in ("done=Your+password+expired&account=" + sam.id, "done=created&account=x",
                  "done=created&account=" + _account(service, "sol", StaffRole.AUDITOR,
                                                     agency="south")):
        shown = boss.get("/web/accounts?" + query)
        assert shown.status_code in (200, 422), query  # too long for a key: refused
        assert "Saved:" not in shown.text and "expired" not in shown.text, query
    sams_browser = _browser(service, "sam")
    assert sams_browser.get("/web/accounts").status_code == 403  # not an admin
    # A role: held from Sam's next page.
    assert _post(boss, f"/web/accounts/{sam.id}/role", {"role": "auditor"}).status_code == 303
    assert sams_browser.get("/web/audit").status_code == 200
    # A new password, typed twice: Sam's session ends, the new one signs in.
    reset = _post(boss, f"/web/accounts/{sam.id}/password",
                  {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert reset.status_code == 303
    assert sams_browser.get("/web/desk").status_code == 303  # back to the sign-in form
    sams_browser = _browser(service, "sam", password=NEW_PASSWORD)
    # Disabling needs the box ticked; then the session ends and no sign-in works.
    unticked = _post(boss, f"/web/accounts/{sam.id}/disable", {})
    assert unticked.status_code == 422 and "tick the box" in unticked.text
    assert _post(boss, f"/web/accounts/{sam.id}/disable", {"confirm": "yes"}).status_code == 303
    assert sams_browser.get("/web/desk").status_code == 303
    stored = _stored(service, "sam")
    assert stored is not None and stored.disabled_at is not None
    assert "disabled " in boss.get("/web/accounts").text


def test_an_admin_cannot_lock_themselves_out(service: Service) -> None:
    boss_id = _account(service, "boss", StaffRole.AGENCY_ADMIN)
    boss = _browser(service, "boss")
    assert f"/web/accounts/{boss_id}/disable" not in boss.get("/web/accounts").text
    disabled = _post(boss, f"/web/accounts/{boss_id}/disable", {"confirm": "yes"})
    assert disabled.status_code == 422 and "your own account" in disabled.text
    lowered = _post(boss, f"/web/accounts/{boss_id}/role", {"role": "supervisor"})
    assert lowered.status_code == 422 and "your own agency-admin role" in lowered.text
    stored = _stored(service, "boss")
    assert stored is not None and stored.role == "agency-admin" and stored.disabled_at is None
    assert boss.get("/web/accounts").status_code == 200


@pytest.mark.parametrize("case", [
    "no token", "forged token", "cross-site", "other origin", "supervisor", "key without admin",
    "other agency's account", "unknown account", "bad id", "NUL username", "long username",
    "long display name", "oversized form", "unknown role", "short password", "sso account",
    "other agency's person"])
def test_account_forms_refused_change_nothing(service: Service, case: str) -> None:
    _account(service, "boss", StaffRole.AGENCY_ADMIN)
    target = _account(service, "sam", StaffRole.STORES_OFFICER)
    other = _account(service, "sol", StaffRole.STORES_OFFICER, agency="south")
    client = _browser(service, "boss")
    path, data = f"/web/accounts/{target}/role", {"role": "agency-admin"}
    headers: dict[str, str] = {}
    expected = 403
    if case == "no token":
        answer = client.post(path, data=data)
    else:
        if case == "forged token":
            data["csrf"] = "x" * 43
        elif case == "cross-site":
            headers["Sec-Fetch-Site"] = "cross-site"
        elif case == "other origin":
            headers["Origin"] = "https://evil.example"
        elif case == "supervisor":
            _account(service, "sue", StaffRole.SUPERVISOR)
            client = _browser(service, "sue")
            assert client.get("/web/accounts").status_code == 403
        elif case == "key without admin":
            client = service.new_client()
            assert sign_in(client, service.keys["assets"]).status_code == 303
            assert client.get("/web/accounts").status_code == 403
        elif case in ("other agency's account", "unknown account"):
            path = f"/web/accounts/{other if case.startswith('other') else 'abcdef12'}/role"
            expected = 404
        elif case == "bad id":
            path, expected = "/web/accounts/NOT-HEX/role", 422
        elif case == "oversized form":
            data["pad"] = "p" * 5000  # past the form bound: read as empty, so no token
        else:
            path, expected = "/web/accounts/new", 422
            data = {"username": "newbie", "role": "auditor", "password": PASSWORD,
                    "password_confirm": PASSWORD}
            if case == "NUL username":
                data["username"] = "new\x00bie"
            elif case == "long username":
                data["username"] = "n" * 400
            elif case == "long display name":
                data["display_name"] = "d" * 129
            elif case == "unknown role":
                data["role"] = "god"
            elif case == "short password":
                data["password"] = data["password_confirm"] = "short"
            elif case == "other agency's person":
                with Session(service.engine) as session:
                    create_person(session, agency_id="south", now=datetime.now(UTC),
                                  data=PersonCreate(id="ff-1"))
                    session.commit()
                data["person_id"] = "ff-1"
            elif case == "sso account":
                with Session(service.engine) as session:
                    sso = StaffAccount(id="00ff00ff00ff00ff", agency_id="north",
                                       username="met:sub-1", role="auditor",
                                       oidc_provider="met", oidc_subject="sub-1")
                    session.add(sso)
                    session.commit()
                path = "/web/accounts/00ff00ff00ff00ff/password"
                data = {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD}
        if "csrf" not in data:
            data["csrf"] = _token(client, "/web/")
        answer = client.post(path, data=data, headers=headers)
    assert answer.status_code == expected, (case, answer.status_code, answer.text[:300])
    with Session(service.engine) as session:
        accounts = {a.username: a for a in session.exec(select(StaffAccount))}
    assert accounts["sam"].role == "stores-officer" and accounts["sol"].role == "stores-officer"
    assert "newbie" not in accounts and "new\x00bie" not in accounts
    if case == "sso account":
        assert accounts["met:sub-1"].password_hash is None
