"""Signing in to the web pages: a staff account (`api.accounts`) or an agency API key opens a
session held on the server.

The cookie is 256 random bits; the database keeps its SHA-256 (`WebSession`), the account or
API client it acts as, an expiry and the form token. Signing out ends the row, so a copied
cookie stops working at once; every request re-reads the account or client too, so disabling
the account, or revoking, expiring or rotating the key, ends its web sessions, and a changed
role holds from the next page. The caller is then the same `api.auth.Caller` the REST API
uses, with an account's role's scopes (`api.accounts.roles`), and each page names the scopes
its data needs, the ones the REST routes for that data need (`page_user`), so a page never
shows more than the API would to the same scopes.

Forms are protected three ways: the session's form token in every form (the sign-in form,
before any session, gets a token bound to a short-lived cookie of its own), SameSite=Strict
cookies, and an Origin check that refuses posts from another site outright.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Annotated, Final
from urllib.parse import parse_qs, urlsplit

from fastapi import Depends, Request, Response
from sqlmodel import Session, col, delete

from api.accounts.audit import account_actor, client_actor
from api.accounts.oidc import ProviderDirectory
from api.accounts.roles import scopes_of
from api.auth import Caller, authenticate, usable
from api.db import utcnow
from api.deps import SessionDep
from api.models.accounts import StaffAccount
from api.models.clients import ApiClient, Scope, WebSession
from api.models.registry import Agency

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
"""The largest form we serve is the sign-in form: agency, username, password (or a key) and a
token."""
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
    """A new web session for an API key's `caller`; returns the cookie value (stored only
    hashed)."""
    return _open(session, now, client_id=caller.client_id)


def open_account_session(session: Session, account: StaffAccount, now: datetime) -> str:
    """A new web session for a staff account; returns the cookie value (stored only hashed)."""
    return _open(session, now, account_id=account.id)


def _open(session: Session, now: datetime, *, client_id: str | None = None,
          account_id: str | None = None) -> str:
    session.execute(delete(WebSession).where(col(WebSession.expires_at) < now))
    token = secrets.token_urlsafe(32)
    session.add(WebSession(id=_digest(token), client_id=client_id, account_id=account_id,
                           csrf=secrets.token_urlsafe(32), created_at=now,
                           expires_at=now + timedelta(seconds=SESSION_SECONDS)))
    session.commit()
    return token


def set_session_cookie(request: Request, response: Response, cookie: str) -> None:
    """Hand the browser its session cookie: script cannot read it, other sites cannot send it."""
    response.set_cookie(COOKIE, cookie, max_age=SESSION_SECONDS, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/web")


def get_directory(request: Request) -> ProviderDirectory:
    """The app's single sign-on providers (`api.accounts.oidc`)."""
    directory: ProviderDirectory = request.app.state.oidc
    return directory


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


def check_form_token(form: Mapping[str, object], user: WebUser) -> None:
    """Refuse a form without the session's token (posted from another site's page)."""
    token = form.get("csrf")
    if not isinstance(token, str) or not secrets.compare_digest(token.encode(),
                                                                user.csrf.encode()):
        raise CrossSiteForm


async def signed_form(request: Request, user: WebUser, scope: Scope) -> dict[str, str]:
    """The posted urlencoded form, if it came from our page with the session's token (else
    `CrossSiteForm`) and the user holds `scope` (else `PageForbidden`)."""
    check_origin(request)
    form = await read_form(request)
    check_form_token(form, user)
    if not user.caller.may(scope):
        raise PageForbidden(scope)
    return form


class WebUser:
    """The signed-in caller of a page, the token its forms must carry, and the staff account
    signed in (None for an API key)."""

    def __init__(self, caller: Caller, agency_name: str, csrf: str,
                 account: StaffAccount | None = None) -> None:
        self.caller = caller
        self.agency_name = agency_name
        self.csrf = csrf
        self.account = account

    @property
    def account_id(self) -> str | None:
        return self.account.id if self.account is not None else None

    @property
    def actor(self) -> str:
        """Who an account change made through a page is recorded as (`api.accounts.audit`)."""
        if self.account is None:
            return client_actor(self.caller.client_id)
        return account_actor(self.account.id)

    @property
    def authorisers(self) -> tuple[str, ...]:
        """Who authorises a custody change made through a page: the registry person the
        signed-in account is, as `CustodyChange.authorisers` takes them (person ids, which
        the log records only as their commitments). None for an API key or an account not
        linked to a person: such a change is the agency's, as one made through the REST API."""
        if self.account is None or self.account.person_id is None:
            return ()
        return (self.account.person_id,)

    @property
    def shown_name(self) -> str:
        """Who the header says is signed in."""
        if self.account is None:
            return "API key"
        return self.account.display_name or self.account.username

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
    account = None
    if row.account_id is not None:
        account = session.get(StaffAccount, row.account_id)
        if account is None or account.disabled_at is not None:
            raise SignInRequired
        caller = Caller("", account.agency_id, scopes_of(account.role))
    else:
        client = session.get(ApiClient, row.client_id) if row.client_id else None
        if client is None or not usable(client, now):
            raise SignInRequired
        caller = Caller(client.id, client.agency_id, frozenset(client.scopes))
    agency = session.get(Agency, caller.agency_id)
    return WebUser(caller, agency.name if agency else caller.agency_id, row.csrf, account)


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
