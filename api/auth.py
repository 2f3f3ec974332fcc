"""Authenticating API clients: bearer API keys checked against keyed hashes, and scopes.

Every route names the scope it needs; the authenticated client carries its agency, which
every query is limited to (see `api.scoping`).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import Session

from api.db import utcnow
from api.models.clients import ApiClient, Scope

KEY_PREFIX: Final = "kl"
SECRET_BYTES: Final = 32
"""256-bit secrets: unguessable, and long enough that hashing them unsalted is safe."""

MAX_KEY_CHARS: Final = 128
"""Longer Authorization values are refused before any parsing or hashing."""

_KEY = re.compile(r"kl_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated client: who it acts for and what it may do."""

    client_id: str
    agency_id: str
    scopes: frozenset[str]

    def may(self, scope: Scope) -> bool:
        return scope.value in self.scopes


def key_hash(server_secret: str, key: str) -> bytes:
    return hmac.new(server_secret.encode(), key.encode(), hashlib.sha256).digest()


def new_key(client_id: str) -> str:
    """A fresh key for `client_id`: shown once, only its keyed hash is stored."""
    return f"{KEY_PREFIX}_{client_id}_{secrets.token_urlsafe(SECRET_BYTES)}"


def usable(client: ApiClient | None, now: datetime) -> bool:
    """Whether a client may still act: it exists, is not revoked and has not expired."""
    return client is not None and client.revoked_at is None and (
        client.expires_at is None or client.expires_at > now)


def create_api_client(
    session: Session, *, agency_id: str, name: str, scopes: Iterable[Scope],
    server_secret: str, now: datetime, expires_at: datetime | None = None,
) -> tuple[ApiClient, str]:
    """A new client and its key; the key is returned once and never stored."""
    client_id = secrets.token_hex(8)
    key = new_key(client_id)
    client = ApiClient(
        id=client_id, agency_id=agency_id, name=name, key_hash=key_hash(server_secret, key),
        scopes=sorted({s.value for s in scopes}), created_at=now, expires_at=expires_at,
    )
    session.add(client)
    return client, key


def authenticate(session: Session, key: str, server_secret: str,
                 now: datetime | None = None) -> Caller | None:
    """The caller a key belongs to, or None (unknown, revoked, expired, malformed or wrong)."""
    if len(key) > MAX_KEY_CHARS:
        return None
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    client = session.get(ApiClient, match.group(1))
    expected = key_hash(server_secret, key)
    if client is None or not usable(client, now or utcnow()):
        return None
    if not hmac.compare_digest(client.key_hash, expected):
        return None
    return Caller(client.id, client.agency_id, frozenset(client.scopes))
