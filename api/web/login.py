"""Sign in (a staff account's password, or an agency API key), sign out, and the start page.

Single sign-on starts from links on the same page (`api.web.sso`). The sign-in forms carry a
token bound to a cookie set with the form, and posts from another site are refused
(`check_origin`), so another site cannot sign a browser in as the attacker's account (login
CSRF). Failed sign-ins count towards the same limits as failed API keys (`api.auth_limits`),
per address and per account (or key) tried: past them the form answers 429 with Retry-After,
even for a good password or key.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from api.accounts import oidc
from api.accounts.admin import sign_in_locally
from api.auth_limits import claimed_client_id
from api.db import utcnow
from api.deps import SessionDep, SettingsDep, address_of, get_limiter
from api.models.accounts import MAX_USERNAME_CHARS
from api.models.registry import MAX_ID_CHARS
from api.web.session import (
    COOKIE,
    LOGIN_COOKIE,
    LOGIN_FORM_SECONDS,
    PAGE_SCOPES,
    CurrentUser,
    PageForbidden,
    WebUser,
    check_origin,
    end_session,
    get_directory,
    login_form_token,
    open_account_session,
    open_session,
    read_form,
    set_session_cookie,
    sign_in,
)
from api.web.templating import page

router = APIRouter(prefix="/web", include_in_schema=False)


def _form(request: Request, secret: str, status_code: int = 200, error: str | None = None,
          headers: dict[str, str] | None = None) -> Response:
    """The sign-in form with a fresh token, and the cookie that token is bound to."""
    nonce = secrets.token_urlsafe(32)
    response = page(request, "login.html", status_code=status_code, error=error,
                    form_token=login_form_token(secret, nonce),
                    providers=get_directory(request).providers())
    response.set_cookie(LOGIN_COOKIE, nonce, max_age=LOGIN_FORM_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https",
                        path="/web/login")
    response.headers.update(headers or {})
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, settings: SettingsDep) -> Response:
    """The sign-in form."""
    return _form(request, settings.secret_key.get_secret_value())


@router.post("/login")
async def login(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """Check the form token and the key; on success open a session and go to the start page."""
    check_origin(request)
    secret = settings.secret_key.get_secret_value()
    form = await read_form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not secrets.compare_digest(
            form.get("csrf", "").encode(), login_form_token(secret, nonce).encode()):
        return _form(request, secret, 403, "The sign-in form expired; please try again.")
    if "password" in form:
        return _password_sign_in(request, session, secret, form)
    key = form.get("key", "").strip()
    claimed = claimed_client_id(key)
    wait = get_limiter(request).retry_after(address_of(request), claimed)
    if wait is not None:
        return _form(request, secret, 429, f"Too many failed sign-ins; try again in {wait} s.",
                     headers={"Retry-After": str(wait)})
    caller = sign_in(session, secret, key)
    if caller is None:
        get_limiter(request).failed(address_of(request), claimed)
        return _form(request, secret, 401, "That key is unknown, revoked, expired or mistyped.")
    if not any(caller.may(s) for s in PAGE_SCOPES):
        return _form(request, secret, 403, "That key has no scope the pages use "
                     "(assets:read or audit:read).")
    return _signed_in(request, open_session(session, caller, utcnow()))


def _signed_in(request: Request, cookie: str) -> Response:
    response = RedirectResponse("/web/", status_code=303)
    set_session_cookie(request, response, cookie)
    response.delete_cookie(LOGIN_COOKIE, path="/web/login")
    return response


def _password_sign_in(request: Request, session: Session, secret: str,
                      form: dict[str, str]) -> Response:
    """A staff account's sign-in: agency, username and password from the form."""
    agency = form.get("agency", "").strip()[:MAX_ID_CHARS]
    username = form.get("username", "").strip().lower()[:MAX_USERNAME_CHARS]
    claimed = f"account:{agency}/{username}"
    wait = get_limiter(request).retry_after(address_of(request), claimed)
    if wait is not None:
        return _form(request, secret, 429, f"Too many failed sign-ins; try again in {wait} s.",
                     headers={"Retry-After": str(wait)})
    now = utcnow()
    account = sign_in_locally(session, agency, username, form.get("password", ""), now)
    if account is None:
        get_limiter(request).failed(address_of(request), claimed)
        return _form(request, secret, 401, "Wrong agency, username or password, or the account "
                     "is disabled.")
    session.commit()
    return _signed_in(request, open_account_session(session, account, now))


@router.post("/logout")
async def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """End the session on the server and in the browser (the form carries the token)."""
    check_origin(request)
    form = await read_form(request)
    if not secrets.compare_digest(form.get("csrf", "").encode(), user.csrf.encode()):
        return Response("bad form token", status_code=403)
    end_session(session, request.cookies.get(COOKIE, ""), utcnow())
    at_provider = _provider_sign_out(request, user)
    response: Response
    if at_provider is None:
        response = RedirectResponse("/web/login", status_code=303)
    else:  # a page, not a redirect: the CSP's form-action 'self' would stop a form's redirect
        response = page(request, "signed_out.html", provider_url=at_provider)
    response.delete_cookie(COOKIE, path="/web")
    return response


def _provider_sign_out(request: Request, user: WebUser) -> str | None:
    """The provider's end-session URL for a single sign-on account, else None."""
    account = user.account
    provider = (get_directory(request).get(account.oidc_provider)
                if account is not None and account.oidc_provider else None)
    if provider is None:
        return None
    signed_out = str(request.url_for("login_form"))
    return oidc.end_session_url(get_directory(request), provider, signed_out)


@router.get("/", response_class=HTMLResponse)
def start(request: Request, user: CurrentUser) -> Response:
    """The pages this user's key may open, one per kind of user."""
    if not any(user.may(s) for s in PAGE_SCOPES):
        raise PageForbidden(PAGE_SCOPES[0])
    return page(request, "start.html", user=user)
