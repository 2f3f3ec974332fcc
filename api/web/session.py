"""Signing in to the web pages: an agency API key becomes a signed session cookie.

The cookie holds the API client's id, an expiry and a CSRF nonce, MACed with the service's
secret key; every request re-reads the client, so revoking the key ends its web sessions too.
The caller is then the same `api.auth.Caller` the REST API uses, so pages are scoped exactly as
the API is. Forms carry a token derived from the nonce (and the cookie is SameSite=Strict), so
another site cannot post on a signed-in user's behalf.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Annotated, Final
from urllib.parse import parse_qs

from fastapi import Depends, Request
from sqlmodel import Session

from api.auth import Caller, authenticate
from api.deps import SessionDep, SettingsDep
from api.models.clients import ApiClient

COOKIE: Final = "kitledger_web"
SESSION_SECONDS: Final = 12 * 3600
"""One shift at a desk; then sign in again."""
MAX_COOKIE_CHARS: Final = 512
"""Our cookies are about 150 characters; anything longer is refused unparsed."""
MAX_FORM_BYTES: Final = 4096
"""The largest form we serve is the sign-in form: one key and a token."""


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to the sign-in form."""


def _mac(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), b"web-session\x00" + body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def make_cookie(secret: str, client_id: str, now: float | None = None) -> str:
    body = json.dumps({"c": client_id, "e": int((now or time.time()) + SESSION_SECONDS),
                       "n": secrets.token_hex(8)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(body).decode().rstrip("=") + "." + _mac(secret, body)


def read_cookie(secret: str, value: str, now: float | None = None) -> dict[str, str] | None:
    """The cookie's fields if its MAC holds and it has not expired; else None."""
    if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
        return None
    encoded, mac = value.split(".")
    try:
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _mac(secret, body)):
        return None
    fields = json.loads(body)
    if not isinstance(fields, dict) or fields.get("e", 0) < (now or time.time()):
        return None
    return {"client_id": str(fields["c"]), "nonce": str(fields["n"])}


def csrf_token(secret: str, nonce: str) -> str:
    return _mac(secret, b"csrf\x00" + nonce.encode())


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


def web_user(request: Request, session: SessionDep, settings: SettingsDep) -> WebUser:
    secret = settings.secret_key.get_secret_value()
    fields = read_cookie(secret, request.cookies.get(COOKIE, ""))
    if fields is None:
        raise SignInRequired
    client = session.get(ApiClient, fields["client_id"])
    if client is None or client.revoked_at is not None:
        raise SignInRequired
    caller = Caller(client.id, client.agency_id, frozenset(client.scopes))
    from api.models import Agency

    agency = session.get(Agency, caller.agency_id)
    return WebUser(caller, agency.name if agency else caller.agency_id,
                   csrf_token(secret, fields["nonce"]))


CurrentUser = Annotated[WebUser, Depends(web_user)]


def sign_in(session: Session, secret: str, key: str) -> str | None:
    """A session cookie for a valid API key, or None."""
    caller = authenticate(session, key.strip(), secret)
    return None if caller is None else make_cookie(secret, caller.client_id)
