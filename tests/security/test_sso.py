"""Single sign-on against a real OpenID Connect provider on loopback (npm `oidc-provider`),
driven through a served API by an HTTP client as a browser would: groups map to roles per
agency; every forged, replayed, mixed-up, expired or tampered answer is refused with a page
saying why; a person in no mapped group, or with a disabled account, is refused; disabling
ends live sessions; making an account or mapping it to another role is in its audit trail.
Both databases."""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.accounts import oidc
from api.accounts.oidc import ProviderDirectory, SsoRefused
from api.app import create_app
from api.auth import create_api_client
from api.config import Settings, load_settings
from api.json_logging import redact_secrets
from api.models import AccountAudit, Agency, Scope, SsoAttempt, StaffAccount
from api.web.session import COOKIE
from api.web.sso import SSO_COOKIE
from tests.fixtures.oidc_provider import OidcProviderProcess, ProviderClient, sign_in_at_provider
from tests.fixtures.ports import free_port, wait_for_port
from tests.security.conftest import FAILURE_LIMIT, FAILURE_WINDOW_S, SECRET

USERS = {
    "alice": ["stores"],
    "bob": ["stores", "kit-admins"],
    "erin": ["auditors", "marketing"],
    "carol": ["marketing"],
    "dave": [],
}
"""The provider's people and their groups."""
NORTH_ROLES = {"stores": "stores-officer", "kit-admins": "agency-admin", "auditors": "auditor"}


@dataclass
class Provider:
    process: OidcProviderProcess
    api_port: int
    secrets_dir: Path

    @property
    def issuer(self) -> str:
        return self.process.issuer


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    work = tmp_path_factory.mktemp("oidc")
    api_port = free_port()
    api = f"http://127.0.0.1:{api_port}"
    clients = [ProviderClient(f"kitledger-{name}", f"{name}-client-secret-for-tests",
                              (f"{api}/web/sso/{name}/callback",), (f"{api}/web/login",))
               for name in ("north", "south", "mixup")]
    for client in clients:
        (work / client.client_id).write_text(client.client_secret + "\n")
    process = OidcProviderProcess(work, clients, USERS)
    process.start()
    yield Provider(process, api_port, work)
    process.stop()


def _settings(provider: Provider) -> Settings:
    def entry(name: str, agency: str, roles: dict[str, str], issuer: str) -> dict[str, Any]:
        return {"name": name, "agency_id": agency, "issuer": issuer,
                "client_id": f"kitledger-{name}", "group_roles": roles,
                "client_secret_file": str(provider.secrets_dir / f"kitledger-{name}")}

    spelled_otherwise = provider.issuer.replace("127.0.0.1", "localhost")
    return load_settings(
        environment="test", secret_key=SECRET, auth_failure_limit=FAILURE_LIMIT,
        auth_failure_window_s=FAILURE_WINDOW_S, oidc_providers=[
            entry("north", "north", NORTH_ROLES, provider.issuer),
            entry("south", "south", {"stores": "read-only"}, provider.issuer),
            entry("mixup", "north", {"stores": "read-only"}, spelled_otherwise)])


@dataclass
class Served:
    url: str
    engine: Engine
    admin_key: str
    settings: Settings

    def browser(self) -> httpx.Client:
        return httpx.Client(follow_redirects=False, timeout=30)

    def account(self, subject: str, provider: str = "north") -> StaffAccount | None:
        with Session(self.engine) as session:
            return session.exec(select(StaffAccount).where(
                StaffAccount.oidc_provider == provider,
                StaffAccount.oidc_subject == subject)).first()


@pytest.fixture
def served(engine: Engine, provider: Provider) -> Iterator[Served]:
    """The API served over HTTP on the port the provider's clients name."""
    settings = _settings(provider)
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.add(Agency(id="south", name="South"))
        session.flush()
        _, key = create_api_client(session, agency_id="north", name="admin", scopes=list(Scope),
                                   server_secret=SECRET, now=datetime.now(UTC))
        session.commit()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, engine), host="127.0.0.1",
                                           port=provider.api_port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port(provider.api_port)
    yield Served(f"http://127.0.0.1:{provider.api_port}", engine, key, settings)
    server.should_exit = True
    thread.join(timeout=10)


def _sso(served: Served, http: httpx.Client, login: str, name: str = "north") -> str:
    return sign_in_at_provider(http, f"{served.url}/web/sso/{name}", login)


def _with_param(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text[:500]
    assert "Sign-in refused" in answer.text and words in answer.text, answer.text[:800]
    assert COOKIE not in answer.cookies


def test_groups_map_to_roles_and_the_session_carries_them(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    assert callback.startswith(f"{served.url}/web/sso/north/callback?")
    answer = http.get(callback)
    assert answer.status_code == 200 and "Welcome, alice" in answer.text, answer.text[:500]
    assert COOKIE in answer.cookies and 'http-equiv="refresh"' in answer.text
    start = http.get(f"{served.url}/web/")
    assert start.status_code == 200 and "alice · North" in start.text
    assert http.get(f"{served.url}/web/desk").status_code == 200  # assets:read
    assert http.get(f"{served.url}/web/audit").status_code == 403  # a stores officer lacks it
    alice = served.account("alice")
    assert alice is not None and (alice.agency_id, alice.role) == ("north", "stores-officer")
    assert alice.username == "north:alice" and alice.password_hash is None

    bob = served.browser()  # two mapped groups: the stronger role wins
    assert bob.get(_sso(served, bob, "bob")).status_code == 200
    assert bob.get(f"{served.url}/web/audit").status_code == 200
    account = served.account("bob")
    assert account is not None and account.role == "agency-admin"

    erin = served.browser()  # one mapped group among others
    assert erin.get(_sso(served, erin, "erin")).status_code == 200
    assert erin.get(f"{served.url}/web/audit").status_code == 200
    assert erin.get(f"{served.url}/web/desk").status_code == 200

    # The same person through another agency's provider is another account, with that
    # agency's mapping (read-only there).
    south = served.browser()
    assert south.get(_sso(served, south, "alice", "south")).status_code == 200
    there = served.account("alice", "south")
    assert there is not None and (there.agency_id, there.role) == ("south", "read-only")
    assert there.id != alice.id


@pytest.mark.parametrize("login", ["carol", "dave"])
def test_a_person_in_no_mapped_group_is_refused(served: Served, login: str) -> None:
    http = served.browser()
    _refused(http.get(_sso(served, http, login)), 403, "none of your groups has a role here")
    assert served.account(login) is None
    assert http.get(f"{served.url}/web/").status_code == 303


def test_a_forged_state_is_refused(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    _refused(http.get(_with_param(callback, state="x" * 43)), 401, "matches no sign-in")
    _refused(http.get(_with_param(callback, state="")), 401, "no usable state")
    assert http.get(callback).status_code == 200  # the real answer still works once


def test_an_answer_is_used_once_and_only_in_its_browser(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    thief = served.browser()
    _refused(thief.get(callback), 401, "started in another browser")
    bound = http.cookies.get(SSO_COOKIE)
    assert bound and http.get(callback).status_code == 200
    again = served.browser()  # even with the attempt's cookie, the answer is spent
    again.cookies.set(SSO_COOKIE, bound)
    _refused(again.get(callback), 401, "already used")


def test_an_answer_after_the_attempt_expired_is_refused(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    with Session(served.engine) as session:
        for attempt in session.exec(select(SsoAttempt)):
            attempt.expires_at = datetime.now(UTC) - timedelta(seconds=1)
            session.add(attempt)
        session.commit()
    _refused(http.get(callback), 401, "took too long")


def test_a_token_with_another_nonce_is_refused(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    with Session(served.engine) as session:  # as if the code were injected from another login
        for attempt in session.exec(select(SsoAttempt)):
            attempt.nonce = "n" * 43
            session.add(attempt)
        session.commit()
    _refused(http.get(callback), 401, "nonce")
    assert served.account("alice") is None


def test_an_answer_naming_another_issuer_is_refused(served: Served) -> None:
    http = served.browser()
    callback = _sso(served, http, "alice")
    assert parse_qs(urlsplit(callback).query)["iss"] == [served.settings.oidc_providers[0].issuer]
    _refused(http.get(_with_param(callback, iss="https://evil.example")), 401, "another issuer")


def test_a_provider_whose_discovery_names_another_issuer_is_refused(served: Served) -> None:
    answer = served.browser().get(f"{served.url}/web/sso/mixup")
    _refused(answer, 502, "discovery document names issuer")


def test_provider_errors_are_named_but_never_echoed(served: Served) -> None:
    http = served.browser()
    denied = http.get(f"{served.url}/web/sso/north/callback",
                      params={"error": "access_denied", "state": "x"})
    _refused(denied, 401, "did not sign you in (access_denied)")
    hostile = http.get(f"{served.url}/web/sso/north/callback",
                       params={"error": "<script>alert(1)</script>", "state": "x",
                               "error_description": "Call 555-0100 to restore access"})
    _refused(hostile, 401, "did not sign you in (an error)")
    assert "<script>" not in hostile.text and "555-0100" not in hostile.text
    _refused(http.get(f"{served.url}/web/sso/north/callback",
                      params={"state": "s" * 5000, "code": "c"}), 401, "no usable state")
    assert http.get(f"{served.url}/web/sso/nobody").status_code == 404
    assert http.get(f"{served.url}/web/sso/{'n' * 40}").status_code == 422
    assert http.get(f"{served.url}/web/sso/north/callback",
                    params={"state": "a\x00b", "code": "c"}).status_code == 422


def test_failed_answers_count_towards_the_limit(served: Served) -> None:
    http = served.browser()
    for _ in range(FAILURE_LIMIT):
        http.get(f"{served.url}/web/sso/north/callback", params={"state": "x", "code": "y"})
    limited = http.get(f"{served.url}/web/sso/north/callback", params={"state": "x"})
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1


def test_disabling_an_account_ends_its_sessions_and_its_sign_ins(served: Served) -> None:
    http = served.browser()
    assert http.get(_sso(served, http, "alice")).status_code == 200
    alice = served.account("alice")
    assert alice is not None and http.get(f"{served.url}/web/").status_code == 200
    admin = {"Authorization": f"Bearer {served.admin_key}"}
    answer = httpx.post(f"{served.url}/v1/accounts/{alice.id}/disable", headers=admin)
    assert answer.status_code == 200 and answer.json()["disabled_at"] is not None
    gone = http.get(f"{served.url}/web/")
    assert gone.status_code == 303 and gone.headers["location"] == "/web/login"
    again = served.browser()
    _refused(again.get(_sso(served, again, "alice")), 403, "disabled")


def test_provisioning_and_role_mapping_are_in_the_audit_trail(served: Served) -> None:
    """Made at the first sign-in and re-mapped from the groups, by `sso:<issuer>`; a sign-in
    that changes nothing, or is refused, adds no row."""
    def rows(account_id: str) -> list[tuple[str, str, str]]:
        with Session(served.engine) as session:
            return [(r.action, r.detail, r.actor) for r in session.exec(
                select(AccountAudit).where(AccountAudit.account_id == account_id)
                .order_by(col(AccountAudit.id)))]

    by = f"sso:{served.settings.oidc_providers[0].issuer}"
    http = served.browser()
    assert http.get(_sso(served, http, "alice")).status_code == 200
    alice = served.account("alice")
    assert alice is not None
    assert rows(alice.id) == [("sso_created", "role stores-officer from groups", by)]
    again = served.browser()
    assert again.get(_sso(served, again, "alice")).status_code == 200
    assert len(rows(alice.id)) == 1  # the same role: nothing changed
    admin = {"Authorization": f"Bearer {served.admin_key}"}
    assert httpx.post(f"{served.url}/v1/accounts/{alice.id}/role", headers=admin,
                      json={"role": "auditor"}).status_code == 200
    third = served.browser()
    assert third.get(_sso(served, third, "alice")).status_code == 200
    client = f"client:{served.admin_key.split('_')[1]}"
    assert rows(alice.id) == [("sso_created", "role stores-officer from groups", by),
                              ("role_changed", "stores-officer -> auditor", client),
                              ("sso_role_mapped", "auditor -> stores-officer", by)]
    assert httpx.post(f"{served.url}/v1/accounts/{alice.id}/disable",
                      headers=admin).status_code == 200
    refused = served.browser()
    _refused(refused.get(_sso(served, refused, "alice")), 403, "disabled")
    assert [r[0] for r in rows(alice.id)][-1] == "disabled" and len(rows(alice.id)) == 4
    listed = httpx.get(f"{served.url}/v1/accounts/{alice.id}/audit", headers=admin).json()
    assert [r["action"] for r in listed] == ["disabled", "sso_role_mapped", "role_changed",
                                             "sso_created"]
    assert "secret" not in json.dumps(listed)


# The ID token checks, on real tokens from the provider.

def _real_token(served: Served, name: str = "north") -> tuple[dict[str, Any], str]:
    """A token the provider issued to client `name`, redeemed as the callback would, and
    the nonce its attempt was started with."""
    http = served.browser()
    callback = _sso(served, http, "alice", name)
    query = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    directory = ProviderDirectory(served.settings.oidc_providers)
    provider = directory.get(name)
    assert provider is not None
    with Session(served.engine) as session:
        attempt = oidc.spend_attempt(session, provider, query["state"],
                                     http.cookies.get(SSO_COOKIE) or "", datetime.now(UTC))
        token = oidc.redeem(directory, provider, query["code"], attempt,
                            f"{served.url}/web/sso/{name}/callback")
        return token, attempt.nonce


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _payload(id_token: str) -> dict[str, Any]:
    part = id_token.split(".")[1]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


def test_id_tokens_are_checked_against_the_providers_keys_and_claims(served: Served) -> None:
    token, nonce = _real_token(served)
    north = served.settings.oidc_providers[0]
    directory = ProviderDirectory(served.settings.oidc_providers)
    now = int(datetime.now(UTC).timestamp())
    check = {"keys": directory.keys(north), "issuer": north.issuer,
             "client_id": north.client_id, "nonce": nonce, "access_token": None,
             "algorithms": ["RS256", "ES256", "PS256", "EdDSA"], "now": now}
    id_token = token["id_token"]
    claims = oidc.verify_id_token(id_token, **check)
    assert claims["sub"] == "alice" and claims["groups"] == ["stores"]

    def refused(value: str, words: str, **changes: Any) -> None:
        with pytest.raises(SsoRefused, match=words):
            oidc.verify_id_token(value, **{**check, **changes})

    refused(id_token, "exp", now=now + 3 * 3600)  # expired, beyond the clock leeway
    refused(id_token, "iss", issuer="https://idp.example")
    refused(id_token, "aud", client_id="kitledger-south")
    refused(id_token, "nonce", nonce="n" * 43)
    header, payload, signature = id_token.split(".")
    forged = {**_payload(id_token), "groups": ["kit-admins"]}
    refused(f"{header}.{_b64(forged)}.{signature}", "does not verify")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    refused(f"{header}.{payload}.{flipped}", "does not verify")
    refused(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", "does not verify")
    refused(f"{header}.{payload}.{signature}.extra", "does not verify")
    refused("x" * (oidc.MAX_ID_TOKEN_CHARS + 1), "too large")
    # An HMAC keyed by something public (the JWKS's RSA modulus) is not a signature we take.
    refused(id_token, "does not verify", algorithms=["HS256"])


def test_a_token_issued_to_another_client_is_refused(served: Served) -> None:
    """Agency south's client gets a real token from the same provider; north refuses it."""
    token, nonce = _real_token(served, "south")
    assert _payload(token["id_token"])["aud"] == "kitledger-south"
    north = served.settings.oidc_providers[0]
    directory = ProviderDirectory(served.settings.oidc_providers)
    with pytest.raises(SsoRefused, match="aud"):
        oidc.token_claims(directory, north, token, nonce, datetime.now(UTC))


def test_a_browser_signs_in_through_the_provider(browser: Any, served: Served) -> None:
    """Chromium follows the whole flow: the sign-in page's button, the provider's login form,
    the callback, and on to the start page with the Strict session cookie sent (the callback
    page moves on by a same-site refresh, not a cross-site redirect chain)."""
    page = browser.new_page()
    try:
        page.goto(served.url + "/web/login")
        page.click("a.sso[href='/web/sso/north']")
        page.wait_for_selector("input[name=login]", timeout=30_000)
        page.fill("input[name=login]", "bob")
        page.fill("input[name=password]", "any")
        page.click("button[type=submit]")
        page.wait_for_url(served.url + "/web/", timeout=30_000)
        assert "bob · North" in page.inner_text("header")
        assert page.is_visible("nav a[href='/web/audit']")  # agency-admin holds audit:read
        page.goto(served.url + "/web/audit")
        assert page.url == served.url + "/web/audit"
    finally:
        page.close()


def test_the_access_log_never_holds_a_sign_in_answer() -> None:
    line = ('127.0.0.1:5 - "GET /web/sso/north/callback?code=R6xHABruK2isVJgfHzKTf'
            '&state=a8Xp1-amFxlHY&iss=http%3A%2F%2F127.0.0.1 HTTP/1.1" 200')
    redacted = redact_secrets(line)
    assert "R6xHABruK2isVJgfHzKTf" not in redacted and "a8Xp1-amFxlHY" not in redacted
    assert "code=[redacted]" in redacted and "iss=http" in redacted


_LOGOUT_FORM = re.compile(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', re.S)
_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')


def test_signing_out_signs_out_at_the_provider_too(served: Served) -> None:
    """RP-initiated logout: signing out ends the session here, then sends the browser to the
    provider's end_session_endpoint; once the person confirms there, the provider's session
    is over (the next sign-on asks for a login again) and the browser comes back here."""
    http = served.browser()
    assert http.get(_sso(served, http, "alice")).status_code == 200
    start = http.get(f"{served.url}/web/")
    token = re.search(r'name="csrf" value="([^"]+)"', start.text)
    assert token is not None
    out = http.post(f"{served.url}/web/logout", data={"csrf": token.group(1)})
    assert out.status_code == 200 and "Signed out" in out.text, out.text[:300]
    assert http.get(f"{served.url}/web/").status_code == 303  # ended here at once
    link = re.search(r'href="([^"]+)" id="provider-sign-out"', out.text)
    assert link is not None
    end = html.unescape(link.group(1))
    metadata = ProviderDirectory(served.settings.oidc_providers).metadata(
        served.settings.oidc_providers[0])
    assert end.startswith(metadata["end_session_endpoint"] + "?")
    assert parse_qs(urlsplit(end).query) == {
        "client_id": ["kitledger-north"], "post_logout_redirect_uri": [f"{served.url}/web/login"]}
    # The provider asks the person to confirm; confirming sends them back to sign in here.
    confirm = http.get(end)
    assert confirm.status_code == 200, confirm.text[:300]
    form = _LOGOUT_FORM.search(confirm.text)
    assert form is not None, confirm.text[:500]
    fields = dict(_HIDDEN.findall(form.group(2)))
    answer = http.post(urljoin(end, form.group(1)), data={**fields, "logout": "yes"})
    for _ in range(5):
        if answer.status_code not in (302, 303):
            break
        target = urljoin(str(answer.url), answer.headers["location"])
        if target.startswith(served.url):
            break
        answer = http.get(target)
    assert target == f"{served.url}/web/login", target
    # Signed out at the provider: a new sign-on shows its login form, not an instant answer.
    again = http.get(f"{served.url}/web/sso/north")
    page = http.get(again.headers["location"])
    for _ in range(5):
        if page.status_code not in (302, 303):
            break
        page = http.get(urljoin(str(page.url), page.headers["location"]))
    assert page.status_code == 200 and 'name="login"' in page.text, page.text[:300]


class _Published(ProviderDirectory):
    """A directory whose provider publishes the given discovery document."""

    def __init__(self, document: dict[str, Any] | None) -> None:
        super().__init__(())
        self.document = document

    def metadata(self, provider: Any) -> dict[str, Any]:
        if self.document is None:
            raise SsoRefused("the provider could not be reached", 502)
        return self.document


@pytest.mark.parametrize(("endpoint", "expected"), [
    (None, None),                                               # none published
    ("unreachable", None),                                      # discovery fails
    ("http://login.example.org/logout", None),                  # http off loopback
    ("javascript:alert(1)", None),
    (["https://x"], None),                                      # not a string
    ("https://login.example.org/logout", "https://login.example.org/logout?client_id=c&"
     "post_logout_redirect_uri=https%3A%2F%2Fkit.example%2Fweb%2Flogin"),
    ("https://login.example.org/logout?p=1", "https://login.example.org/logout?p=1&client_id=c&"
     "post_logout_redirect_uri=https%3A%2F%2Fkit.example%2Fweb%2Flogin"),
])
def test_end_session_url_only_from_a_usable_endpoint(served: Served, endpoint: Any,
                                                     expected: str | None) -> None:
    provider = served.settings.oidc_providers[0].model_copy(update={"client_id": "c"})
    document = None if endpoint == "unreachable" else (
        {} if endpoint is None else {"end_session_endpoint": endpoint})
    assert oidc.end_session_url(_Published(document), provider,
                                "https://kit.example/web/login") == expected
