"""Signing in to the web pages: an agency API key opens a session held on the server.

The cookie is 256 random bits; the database keeps its SHA-256 (`WebSession`), the API client
it acts as, an expiry and the form token. Signing out ends the row, so a copied cookie stops
working at once; every request re-reads the client too, so revoking, expiring or rotating the
key ends its web sessions. The caller is then the same `api.auth.Caller` the REST API uses,
and each page names the scopes its data needs, the ones the REST routes for that data need
(`page_user`), so a page never shows more than the API would to the same key.

Forms are protected three ways: the session's form token in every form (the sign-in form,
before any session, gets a token bound to a short-lived cookie of its own), SameSite=Strict
cookies, and an Origin check that refuses posts from another site outright.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request
from sqlmodel import Session, col, delete

from api.auth import Caller, authenticate, usable
from api.db import utcnow
from api.deps import SessionDep
from api.models.clients import ApiClient, Scope, WebSession

COOKIE: Final = "kitledger_web"
LOGIN_COOKIE: Final = "kitledger_login"
"""Binds the sign-in form's token to the browser that loaded the form."""
SESSION_SECONDS: Final = 12 * 3600
"""One shift at a desk; then sign in again."""
LOGIN_FORM_SECONDS: Final = 3600
"""How long a loaded sign-in form can be posted."""
MAX_COOKIE_CHARS: Final = 512
"""Our cookies are 43 characters; anything longer is refused unread."""
MAX_FORM_BYTES: Final = 4096
"""The largest form we serve is the sign-in form: one key and a token."""
PAGE_SCOPES: Final = (Scope.ASSETS_READ, Scope.AUDIT_READ)
"""A key needs one of these to sign in: every page shows assets or audit data."""


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


class PageForbidden(Exception):
    """Signed in, but the key lacks the scope this page's data needs: answered 403."""

    def __init__(self, scope: Scope) -> None:
        super().__init__(scope.value)
        self.scope = scope


class CrossSiteForm(Exception):
    """A form posted without its token, or from another site: answered 403."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, caller: Caller, now: datetime) -> str:
    """A new web session for `caller`; returns the cookie value (stored only hashed)."""
    session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    token = secrets.token_urlsafe(32)
    session.add(WebSession(id=_digest(token), client_id=caller.client_id,
                           csrf=secrets.token_urlsafe(32), created_at=now,
                           expires_at=now + timedelta(seconds=SESSION_SECONDS)))
    session.commit()
    return token


def end_session(session: Session, cookie: str, now: datetime) -> None:
    """Sign out: the cookie is refused from now on, wherever it was copied to."""
    row = session.get(WebSession, _digest(cookie)) if cookie else None
    if row is not None and row.ended_at is None:
        row.ended_at = now
        session.add(row)
        session.commit()


def login_form_token(secret: str, nonce: str) -> str:
    """The sign-in form's token: a MAC of the form cookie's nonce under the server secret."""
    return hmac.new(secret.encode(), b"login-form\x00" + nonce.encode(),
                    hashlib.sha256).hexdigest()


def check_origin(request: Request) -> None:
    """Refuse a form posted from another site (Origin or Sec-Fetch-Site says so)."""
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise CrossSiteForm
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host", ""):
        raise CrossSiteForm


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded; the first value of each field."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    return {k: v[0] for k, v in parse_qs(body.decode(errors="replace")).items()}


class WebUser:
    """The signed-in caller of a page, and the token its forms must carry."""

    def __init__(self, caller: Caller, agency_name: str, csrf: str) -> None:
        self.caller = caller
        self.agency_name = agency_name
        self.csrf = csrf

    def may(self, scope: str) -> bool:
        """Whether the pages needing `scope` are open to this user (for links)."""
        return scope in self.caller.scopes


def web_user(request: Request, session: SessionDep) -> WebUser:
    cookie = request.cookies.get(COOKIE, "")
    if not cookie or len(cookie) > MAX_COOKIE_CHARS:
        raise SignInRequired
    now = utcnow()
    row = session.get(WebSession, _digest(cookie))
    if row is None or row.ended_at is not None or row.expires_at <= now:
        raise SignInRequired
    client = session.get(ApiClient, row.client_id)
    if client is None or not usable(client, now):
        raise SignInRequired
    caller = Caller(client.id, client.agency_id, frozenset(client.scopes))
    from api.models import Agency

    agency = session.get(Agency, caller.agency_id)
    return WebUser(caller, agency.name if agency else caller.agency_id, row.csrf)


CurrentUser = Annotated[WebUser, Depends(web_user)]
"""Any signed-in user: for signing out and the start page."""


def page_user(scope: Scope) -> Callable[[WebUser], WebUser]:
    """A dependency: the signed-in user if their key holds `scope`, else 403."""

    def check(user: CurrentUser) -> WebUser:
        if not user.caller.may(scope):
            raise PageForbidden(scope)
        return user

    return check


AssetsUser = Annotated[WebUser, Depends(page_user(Scope.ASSETS_READ))]
"""Pages of assets, holders, stocktakes and alerts: what `GET /v1/assets`, `/v1/alerts` and
`/v1/sites/{id}/stocktake` need."""
AuditUser = Annotated[WebUser, Depends(page_user(Scope.AUDIT_READ))]
"""Pages of custody timelines, bundles and reports: what `/v1/audit/*` needs."""


def sign_in(session: Session, secret: str, key: str) -> Caller | None:
    """The caller of a valid API key, or None."""
    return authenticate(session, key.strip(), secret)
