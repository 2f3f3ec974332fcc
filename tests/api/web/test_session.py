"""The web session cookie and forms against hostile input: forged, expired, oversized,
replayed after revocation, and cross-site posts without the form token."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.app import create_app
from api.auth import Caller, create_api_client
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, ApiClient, Scope, WebSession
from api.web.session import COOKIE, MAX_COOKIE_CHARS, open_session
from tests.security.security_support import form_token, sign_in

SECRET = "s" * 40


@pytest.fixture
def web(tmp_path: object) -> Iterator[tuple[TestClient, str, Session]]:
    settings = load_settings(database_url=f"sqlite:///{tmp_path}/web.db", secret_key=SECRET)
    engine = make_engine(settings)
    upgrade(engine)
    with Session(engine) as session:
        session.add(Agency(id="a", name="Agency A"))
        session.flush()
        _, key = create_api_client(session, agency_id="a", name="t", scopes=list(Scope),
                                   server_secret=SECRET, now=datetime.now(UTC))
        session.commit()
        yield TestClient(create_app(settings, engine), follow_redirects=False), key, session
    engine.dispose()


def test_web_cookie_forged_altered_expired_or_oversized_is_refused(
        web: tuple[TestClient, str, Session]) -> None:
    client, key, session = web
    caller = Caller(key.split("_")[1], "a", frozenset(s.value for s in Scope))
    good = open_session(session, caller, datetime.now(UTC))
    stale = open_session(session, caller, datetime.now(UTC) - timedelta(days=1))
    for value, status in ((good, 200), (good[:-2] + "AA", 303), (good + "x", 303),
                          ("x" * (MAX_COOKIE_CHARS + 1), 303), ("!!!.???", 303),
                          (stale, 303)):
        client.cookies.set(COOKIE, value, path="/web")
        assert client.get("/web/agency").status_code == status, value[:20]
    assert session.get(WebSession, "x") is None


def test_web_pages_need_a_session(web: tuple[TestClient, str, Session]) -> None:
    client, _, _ = web
    for path in ("/web/", "/web/desk", "/web/desk/feed", "/web/audit", "/web/agency",
                 "/web/audit/assets/x", "/web/registry/assets", "/web/registry/sites/new",
                 "/web/registry/people/import", "/web/registry/readers/export.csv"):
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/web/login", path
    client.cookies.set(COOKIE, "forged.cookie", path="/web")
    assert client.get("/web/agency").status_code == 303


def test_web_sign_in_rejects_bad_and_oversized_keys(web: tuple[TestClient, str, Session]) -> None:
    client, key, _ = web
    for bad, status in (("", 401), ("kl_nope", 401), (key[:-1] + ("A" if key[-1] != "A" else "B"),
                        401), ("k" * 10_000, 403)):  # an oversized form is not read at all
        answer = client.post("/web/login", content=f"csrf={form_token(client)}&key={bad}",
                             headers={"content-type": "application/x-www-form-urlencoded"})
        assert answer.status_code == status and COOKIE not in answer.cookies
    assert sign_in(client, key).status_code == 303


def test_web_revoked_key_ends_session_and_logout_needs_token(
        web: tuple[TestClient, str, Session]) -> None:
    client, key, session = web
    assert sign_in(client, key).status_code == 303
    assert client.get("/web/agency").status_code == 200
    assert client.post("/web/logout", data={"csrf": "forged"}).status_code == 403
    api_client = session.get(ApiClient, key.split("_")[1])
    assert api_client is not None
    api_client.revoked_at = datetime.now(UTC)
    session.add(api_client)
    session.commit()
    assert client.get("/web/agency").status_code == 303
