"""Staff accounts with passwords: roles hold their scopes on the pages; a wrong password counts
towards the failed sign-in limits; disabling or resetting ends live sessions; the admin API is
scope-guarded and agency-bound; passwords are argon2id hashes, never answered or argued.
Both databases."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api import commands
from api.account_commands import ROLE_NAMES
from api.accounts.roles import ROLE_SCOPES, StaffRole
from api.app import create_app
from api.config import STAFF_ROLES, load_settings
from api.models import StaffAccount
from api.models.clients import Scope
from api.web.session import COOKIE
from ledger.cli import VerdictParser, run_command
from tests.security.conftest import FAILURE_LIMIT, SECRET, Service
from tests.security.security_support import form_token

PASSWORD = "correct horse battery staple"


def _create(service: Service, username: str, role: str, password: str | None = PASSWORD,
            who: str = "all", **extra: Any) -> Any:
    body = {"username": username, "role": role, **extra}
    if password is not None:
        body["password"] = password
    return service.call(who, "POST", "/v1/accounts", json=body)


def _sign_in(client: Any, username: str, password: str, agency: str = "north") -> Any:
    token = form_token(client)
    return client.post("/web/login", data={"agency": agency, "username": username,
                                           "password": password, "csrf": token})


def test_the_role_names_agree_everywhere() -> None:
    assert set(STAFF_ROLES) == set(ROLE_NAMES) == {r.value for r in StaffRole} == set(ROLE_SCOPES)
    assert ROLE_SCOPES[StaffRole.AGENCY_ADMIN] == frozenset(Scope)
    assert all(Scope.ASSETS_READ in scopes for scopes in ROLE_SCOPES.values())
    assert not any(Scope.ADMIN in s for r, s in ROLE_SCOPES.items()
                   if r is not StaffRole.AGENCY_ADMIN)


@pytest.mark.parametrize(("role", "open_pages", "closed_pages"), [
    ("read-only", ["/web/desk", "/web/agency"], ["/web/audit"]),
    ("auditor", ["/web/desk", "/web/audit"], []),
    ("stores-officer", ["/web/desk"], ["/web/audit"]),
    ("supervisor", ["/web/desk", "/web/audit"], []),
])
def test_a_local_account_signs_in_with_its_roles_scopes(
        service: Service, role: str, open_pages: list[str], closed_pages: list[str]) -> None:
    made = _create(service, "sam", role, display_name="Sam Stores")
    assert made.status_code == 201, made.text
    assert "password" not in made.text and "argon2" not in made.text
    assert made.json()["local"] is True and made.json()["role"] == role
    browser = service.new_client()
    signed = _sign_in(browser, "sam", PASSWORD)
    assert signed.status_code == 303 and signed.headers["location"] == "/web/"
    start = browser.get("/web/")
    assert start.status_code == 200 and "Sam Stores · North" in start.text
    for url in open_pages:
        assert browser.get(url).status_code == 200, url
    for url in closed_pages:
        assert browser.get(url).status_code == 403, url
    with Session(service.engine) as session:
        stored = session.get(StaffAccount, made.json()["id"])
        assert stored is not None and stored.password_hash is not None
        assert stored.password_hash.startswith("$argon2id$")
        assert PASSWORD not in stored.password_hash
        assert stored.last_sign_in_at is not None


def test_a_role_change_holds_from_the_next_page(service: Service) -> None:
    account = _create(service, "sam", "read-only").json()
    browser = service.new_client()
    assert _sign_in(browser, "sam", PASSWORD).status_code == 303
    assert browser.get("/web/audit").status_code == 403
    moved = service.call("all", "POST", f"/v1/accounts/{account['id']}/role",
                         json={"role": "auditor"})
    assert moved.status_code == 200 and moved.json()["role"] == "auditor"
    assert browser.get("/web/audit").status_code == 200


def test_wrong_passwords_count_towards_the_limit(service: Service) -> None:
    """On an app whose window outlasts the argon2 checks (the fixture's 1 s window could pass
    while three passwords are hashed on a busy machine)."""
    _create(service, "sam", "auditor")
    _create(service, "kim", "auditor")
    patient = TestClient(create_app(load_settings(
        environment="test", secret_key=SECRET, auth_failure_limit=FAILURE_LIMIT,
        auth_failure_window_s=60), service.engine), raise_server_exceptions=False,
        follow_redirects=False, client=("203.0.113.9", 50000))
    service = Service(patient, service.keys, service.engine)
    browser = service.new_client("203.0.113.9")
    for _ in range(FAILURE_LIMIT):
        wrong = _sign_in(browser, "sam", "not the password at all")
        assert wrong.status_code == 401 and COOKIE not in wrong.cookies
        assert "Wrong agency, username or password" in wrong.text
    limited = _sign_in(browser, "sam", PASSWORD)  # even the right one, while limited
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    # The account itself is limited from any address, as a key's client id is.
    elsewhere = service.new_client("198.51.100.20")
    assert _sign_in(elsewhere, "sam", PASSWORD).status_code == 429
    # Another account from a fresh address is not held up by sam's failures.
    assert _sign_in(service.new_client("198.51.100.30"), "kim", PASSWORD).status_code == 303


@pytest.mark.parametrize(("agency", "username", "password"), [
    ("north", "nobody", PASSWORD),          # unknown username
    ("south", "sam", PASSWORD),             # the right name in another agency
    ("north", "sam", ""),                   # empty password
    ("north", "sam", "x" * 5000),           # oversized (the form bound refuses it whole)
    ("north", "SAM\x00", PASSWORD),         # hostile characters
    ("north" * 100, "sam" * 100, PASSWORD),  # oversized names
])
def test_bad_sign_ins_are_refused_alike(service: Service, agency: str, username: str,
                                        password: str) -> None:
    _create(service, "sam", "auditor")
    answer = _sign_in(service.new_client(), username, password, agency)
    assert answer.status_code in (401, 403, 422) and COOKIE not in answer.cookies


def test_a_disabled_account_cannot_sign_in_and_its_sessions_end(service: Service) -> None:
    account = _create(service, "sam", "auditor").json()
    browser = service.new_client()
    signed = _sign_in(browser, "sam", PASSWORD)
    copied = service.new_client("198.51.100.7")
    copied.cookies.set(COOKIE, signed.cookies[COOKIE], path="/web")
    assert copied.get("/web/audit").status_code == 200
    off = service.call("all", "POST", f"/v1/accounts/{account['id']}/disable")
    assert off.status_code == 200 and off.json()["disabled_at"] is not None
    for client in (browser, copied):
        gone = client.get("/web/audit")
        assert gone.status_code == 303 and gone.headers["location"] == "/web/login"
    assert _sign_in(service.new_client(), "sam", PASSWORD).status_code == 401


def test_a_password_reset_ends_sessions_and_the_old_password(service: Service) -> None:
    account = _create(service, "sam", "auditor").json()
    browser = service.new_client()
    assert _sign_in(browser, "sam", PASSWORD).status_code == 303
    new = "a different long passphrase"
    reset = service.call("all", "POST", f"/v1/accounts/{account['id']}/password",
                         json={"password": new})
    assert reset.status_code == 200 and new not in reset.text
    assert browser.get("/web/").status_code == 303
    assert _sign_in(service.new_client(), "sam", PASSWORD).status_code == 401
    assert _sign_in(service.new_client(), "sam", new).status_code == 303


def test_an_account_without_a_password_cannot_sign_in(service: Service) -> None:
    assert _create(service, "sam", "auditor", password=None).status_code == 201
    assert _sign_in(service.new_client(), "sam", "").status_code == 401
    assert _sign_in(service.new_client(), "sam", PASSWORD).status_code == 401


def test_the_admin_api_needs_admin_and_stays_in_its_agency(service: Service) -> None:
    for who in ("assets", "audit", "writer", "webhooks", "none"):
        assert _create(service, "sam", "auditor", who=who).status_code == 403
        assert service.call(who, "GET", "/v1/accounts").status_code == 403
    assert service.call("", "GET", "/v1/accounts").status_code == 401
    north = _create(service, "sam", "auditor").json()
    south = _create(service, "sam", "auditor", who="south")  # names are per agency
    assert south.status_code == 201
    assert [a["username"] for a in service.call("south", "GET", "/v1/accounts").json()] == ["sam"]
    for action, body in (("role", {"role": "agency-admin"}), ("disable", None),
                         ("password", {"password": "someone else's now"})):
        answer = service.call("south", "POST", f"/v1/accounts/{north['id']}/{action}", json=body)
        assert answer.status_code == 404, (action, answer.text)
    listed = service.call("all", "GET", "/v1/accounts").json()
    assert [a["id"] for a in listed] == [north["id"]] and listed[0]["disabled_at"] is None
    assert all("password" not in json.dumps(a) for a in listed)


@pytest.mark.parametrize(("body", "status"), [
    ({"username": "Sam", "role": "auditor"}, 422),          # upper case
    ({"username": "a:b", "role": "auditor"}, 422),          # a colon (SSO names)
    ({"username": "x" * 65, "role": "auditor"}, 422),
    ({"username": "sam", "role": "god"}, 422),
    ({"username": "sam", "role": "auditor", "password": "short"}, 422),
    ({"username": "sam", "role": "auditor", "password": "p" * 257}, 422),
    ({"username": "sam", "role": "auditor", "password": "long enough\x07bell"}, 422),
    ({"username": "sam", "role": "auditor", "password": "nul in it\x00 here"}, 422),
    ({"username": "sam", "role": "auditor", "person_id": "nobody"}, 422),
    ({"username": "sam", "role": "auditor", "display_name": ""}, 422),
    ({"username": "sam", "role": "auditor", "extra": "x" * 100_000}, 201),
])
def test_malformed_accounts_are_refused(service: Service, body: dict[str, Any],
                                        status: int) -> None:
    answer = service.call("all", "POST", "/v1/accounts", json=body)
    assert answer.status_code == status, answer.text
    if "password" in body:
        assert body["password"] not in answer.text


def test_a_second_account_of_the_same_name_is_a_conflict(service: Service) -> None:
    assert _create(service, "sam", "auditor").status_code == 201
    again = _create(service, "sam", "supervisor")
    assert again.status_code == 409 and "already has" in again.json()["detail"]


def _run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, stdin: str,
         *argv: str) -> tuple[int, dict[str, Any]]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    parser = VerdictParser(prog="kitledger")
    commands.register(parser.add_subparsers(dest="command", required=True))
    code = run_command(parser.parse_args(list(argv)))
    return code, json.loads(capsys.readouterr().out)


def _create_by_cli(service: Service, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], int, dict[str, Any]]:
    """`kitledger account create` of north's auditor `cli`, the password on stdin: the
    command's database arguments, its exit code and its JSON."""
    url = ["--database-url", service.engine.url.render_as_string(hide_password=False)]
    code, made = _run(capsys, monkeypatch, PASSWORD + "\n", "account", "create", *url,
                      "--agency", "north", "--username", "cli", "--role", "auditor",
                      "--password-stdin")
    return url, code, made


def test_the_account_command_reads_passwords_from_stdin_never_argv(
        service: Service, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, code, made = _create_by_cli(service, capsys, monkeypatch)
    assert code == 0 and made["account"]["local"] is True, made
    assert PASSWORD not in json.dumps(made)
    account_id = made["account"]["id"]
    assert _sign_in(service.new_client(), "cli", PASSWORD).status_code == 303
    code, listed = _run(capsys, monkeypatch, "", "account", "list", *url, "--agency", "north")
    assert [a["username"] for a in listed["accounts"]] == ["cli"]
    assert "argon2" not in json.dumps(listed)
    code, moved = _run(capsys, monkeypatch, "", "account", "set-role", *url, account_id,
                       "supervisor")
    assert moved["account"]["role"] == "supervisor"
    new = "another long passphrase"
    code, reset = _run(capsys, monkeypatch, new + "\n", "account", "reset-password", *url,
                       account_id)
    assert new not in json.dumps(reset)
    assert code == 0 and _sign_in(service.new_client(), "cli", new).status_code == 303
    code, off = _run(capsys, monkeypatch, "", "account", "disable", *url, account_id)
    assert off["account"]["disabled_at"] is not None
    assert _sign_in(service.new_client(), "cli", new).status_code == 401
    # A short password, an unknown agency or account: one-line refusals, exit 2.
    for argv, stdin in (
            (["create", *url, "--agency", "north", "--username", "x", "--role", "auditor",
              "--password-stdin"], "short\n"),
            (["create", *url, "--agency", "nowhere", "--username", "x", "--role", "auditor"],
             ""),
            (["disable", *url, "0000000000000000"], "")):
        code, refused = _run(capsys, monkeypatch, stdin, "account", *argv)
        assert (code, refused["verdict"]) == (2, "unusable"), refused
    with pytest.raises(SystemExit):  # there is no way to give a password as an argument
        _run(capsys, monkeypatch, "", "account", "create", *url, "--agency", "north",
             "--username", "y", "--role", "auditor", "--password", PASSWORD)


def test_a_page_change_is_authorised_by_the_signed_in_persons_commitment(
        service: Service) -> None:
    """A page's custody change names the signed-in account's person; the log gets that
    person's commitment, never the account, its username or the person id."""
    from sqlmodel import select
    from starlette.requests import Request

    from api.custody.events import CustodyChange, append_change
    from api.logstore import appending_log, claim_log_writer
    from api.models import Asset, AssetStatus, CustodyEventRow, HolderKind, Person
    from api.web.session import web_user
    from ledger.core.records import CustodyEvent

    assert service.call("all", "POST", "/v1/people", json={"id": "officer-7"}).status_code == 201
    linked = _create(service, "sam", "stores-officer", person_id="officer-7")
    assert linked.status_code == 201 and linked.json()["person_id"] == "officer-7"
    assert _create(service, "kim", "stores-officer").status_code == 201
    with Session(service.engine) as session:
        users = {}
        for name in ("sam", "kim"):
            cookie = _sign_in(service.new_client(), name, PASSWORD).cookies[COOKIE]
            request = Request({"type": "http", "method": "GET", "path": "/web/",
                               "headers": [(b"cookie", f"{COOKIE}={cookie}".encode())]})
            users[name] = web_user(request, session)
        assert users["sam"].authorisers == ("officer-7",) and users["kim"].authorisers == ()
        assert users["sam"].account_id == linked.json()["id"]
        asset = session.get(Asset, ("north", "N-1"))
        person = session.get(Person, ("north", "officer-7"))
        assert asset is not None and person is not None
        now = asset.created_at
        claim_log_writer(session, now)
        with appending_log(session) as log:  # what a page's check-out does with its user
            append_change(session, log, asset, CustodyChange(
                action="check_out", holder_kind=HolderKind.PERSON, holder_ref="officer-7",
                new_status=AssetStatus.CHECKED_OUT, time=now,
                authorisers=users["sam"].authorisers))
        session.commit()
        row = session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == "N-1", CustodyEventRow.action == "check_out")).one()
        event = CustodyEvent.from_record(json.loads(row.record))
        assert event.authorised_by == (person.commitment,)
        for secret in (b"sam", b"officer-7", linked.json()["id"].encode()):
            assert secret not in row.record
