"""Web sessions end on the server, and forms refuse other sites: signing out kills a copied
cookie; the sign-in form needs its token and its own origin; so does signing out."""

from __future__ import annotations

import re

import pytest

from api.web.session import COOKIE, LOGIN_COOKIE
from tests.security.conftest import Service
from tests.security.security_support import form_token, sign_in

FORM = {"content-type": "application/x-www-form-urlencoded"}


def _csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None
    return match.group(1)


def test_logout_ends_the_session_for_every_copy_of_the_cookie(service: Service) -> None:
    browser = service.new_client()
    signed = sign_in(browser, service.keys["all"])
    assert signed.status_code == 303
    cookie = signed.cookies[COOKIE]
    thief = service.new_client("198.51.100.7")
    thief.cookies.set(COOKIE, cookie, path="/web")
    assert thief.get("/web/agency").status_code == 200  # a copied cookie works while signed in
    token = _csrf_of(browser.get("/web/").text)
    out = browser.post("/web/logout", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/web/login"
    assert browser.get("/web/agency").status_code == 303
    answer = thief.get("/web/agency")  # the server forgot it, not only the browser
    assert answer.status_code == 303 and answer.headers["location"] == "/web/login"
    again = sign_in(browser, service.keys["all"])
    assert again.status_code == 303 and again.cookies[COOKIE] != cookie
    assert thief.get("/web/agency").status_code == 303


def test_sign_in_without_the_form_token_is_refused(service: Service) -> None:
    client = service.new_client()
    key = service.keys["all"]
    # No token, no form cookie: a page on another site posting a form at us.
    answer = client.post("/web/login", data={"key": key})
    assert answer.status_code == 403 and COOKIE not in answer.cookies
    # The form cookie but a forged token, or a token without the cookie it is bound to.
    token = form_token(client)
    assert client.post("/web/login", data={"key": key, "csrf": "x" + token[1:]}
                       ).status_code == 403
    other = service.new_client()
    assert other.post("/web/login", data={"key": key, "csrf": token}).status_code == 403
    # A non-ASCII token is refused, not a server error.
    assert client.post("/web/login", content=f"key={key}&csrf=%C3%A9".encode(),
                       headers=FORM).status_code == 403
    assert sign_in(client, key).status_code == 303


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://testserver.evil.example"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
])
def test_sign_in_from_another_origin_is_refused(service: Service,
                                                headers: dict[str, str]) -> None:
    client = service.new_client()
    answer = sign_in(client, service.keys["all"], **headers)
    assert answer.status_code == 403 and COOKIE not in answer.cookies


def test_sign_in_from_our_own_origin_is_accepted(service: Service) -> None:
    client = service.new_client()
    answer = sign_in(client, service.keys["all"], Origin="http://testserver",
                     **{"Sec-Fetch-Site": "same-origin"})
    assert answer.status_code == 303 and COOKIE in answer.cookies
    assert LOGIN_COOKIE not in client.cookies  # the form's cookie is spent


def test_sign_out_from_another_origin_is_refused(service: Service) -> None:
    client = service.new_client()
    assert sign_in(client, service.keys["all"]).status_code == 303
    token = _csrf_of(client.get("/web/").text)
    answer = client.post("/web/logout", data={"csrf": token},
                         headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert client.get("/web/agency").status_code == 200  # still signed in


def test_rotating_or_revoking_a_key_ends_its_web_sessions(service: Service) -> None:
    for action in ("rotate", "revoke"):
        victim = service.call("all", "POST", "/v1/api-clients",
                              json={"name": action, "scopes": ["assets:read"]}).json()
        browser = service.new_client()
        assert sign_in(browser, victim["key"]).status_code == 303
        assert browser.get("/web/agency").status_code == 200
        assert service.call("all", "POST", f"/v1/api-clients/{victim['client']['id']}/{action}"
                            ).status_code == 200
        assert browser.get("/web/agency").status_code == 303, action
