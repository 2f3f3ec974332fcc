"""One authorisation model for the API and the pages: a page needs the scopes its data needs
(the scopes the REST routes for that data need), so a key the API refuses is refused by the
pages too: no scopes, or only `webhooks:write`, reaches no page."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session

from api.auth import authenticate
from api.web.session import COOKIE, open_session
from tests.security.conftest import SECRET, Service
from tests.security.security_support import sign_in

ASSETS_PAGES = ("/web/desk", "/web/desk/feed", "/web/desk/holdings", "/web/agency",
                "/web/assets/N-1", "/web/agency?by=day", "/web/inventories")
ASSETS_STREAMS = ("/web/desk/stream",)
"""Endless while allowed; checked only where refused."""
AUDIT_PAGES = ("/web/audit", "/web/audit/assets/N-1", "/web/audit/assets/N-1/bundle",
               "/web/audit/assets/N-1/report.pdf")
EVERY_PAGE = ("/web/", *ASSETS_PAGES, *ASSETS_STREAMS, *AUDIT_PAGES)


def _session_for(service: Service, key_name: str) -> str:
    """A session opened for the key directly, as if its sign-in had been allowed."""
    with Session(service.engine) as session:
        caller = authenticate(session, service.keys[key_name], SECRET)
        assert caller is not None
        return open_session(session, caller, datetime.now(UTC))


@pytest.mark.parametrize("key_name", ["none", "webhooks", "writer"])
def test_a_key_without_page_scopes_gets_403_on_every_page(service: Service,
                                                           key_name: str) -> None:
    client = service.new_client()
    client.cookies.set(COOKIE, _session_for(service, key_name), path="/web")
    for path in EVERY_PAGE:
        answer = client.get(path)
        assert answer.status_code == 403, (key_name, path, answer.status_code)
        assert "N-1" not in answer.text and "%PDF" not in answer.text


@pytest.mark.parametrize("key_name", ["none", "webhooks", "writer"])
def test_a_key_without_page_scopes_cannot_sign_in(service: Service, key_name: str) -> None:
    client = service.new_client()
    answer = sign_in(client, service.keys[key_name])
    assert answer.status_code == 403 and COOKIE not in answer.cookies
    assert "no scope the pages use" in answer.text


def test_assets_read_opens_desk_and_agency_but_not_audit(service: Service) -> None:
    client = service.new_client()
    assert sign_in(client, service.keys["assets"]).status_code == 303
    for path in ("/web/", *ASSETS_PAGES):
        assert client.get(path).status_code == 200, path
    for path in AUDIT_PAGES:
        answer = client.get(path)
        assert answer.status_code == 403 and "audit:read" in answer.text, path
    assert 'href="/web/audit"' not in client.get("/web/").text  # no link to a closed page


def test_audit_read_opens_audit_but_not_desk_or_agency(service: Service) -> None:
    client = service.new_client()
    assert sign_in(client, service.keys["audit"]).status_code == 303
    for path in ("/web/", "/web/audit", "/web/audit/assets/N-1"):
        assert client.get(path).status_code == 200, path
    for path in (*ASSETS_PAGES, *ASSETS_STREAMS):
        answer = client.get(path)
        assert answer.status_code == 403 and "assets:read" in answer.text, path
    start = client.get("/web/").text
    assert 'href="/web/desk"' not in start and 'href="/web/agency"' not in start


def test_the_same_keys_are_refused_by_the_rest_api(service: Service) -> None:
    """The pages' rule is the API's: what each key is refused above, the API refuses too."""
    for key_name in ("none", "webhooks", "writer", "audit"):
        assert service.call(key_name, "GET", "/v1/assets").status_code == 403, key_name
    for key_name in ("none", "webhooks", "writer", "assets"):
        answer = service.call(key_name, "GET", "/v1/assets/N-1/history")
        assert answer.status_code == 403, key_name
