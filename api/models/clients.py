"""API clients: per-agency credentials with scopes, stored as keyed hashes; web sessions.

A key is shown once, at creation or rotation, as `kl_<client id>_<secret>`. The database keeps
only HMAC-SHA256(server secret, key), so a leaked database does not leak usable keys, and the
server secret alone does not either. The secret part has 256 bits from `secrets`: nobody can
search that space, so a slow password hash (argon2) would add nothing but a CPU cost on every
request, which an attacker could spend for us.

A client is refused once revoked or past `expires_at`. A web session (`WebSession`) is a
random cookie whose SHA-256 is stored: signing out ends it here, on the server, not only in
the browser.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from api.db import Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS, MAX_NAME_CHARS


class Scope(StrEnum):
    ASSETS_READ = "assets:read"
    ASSETS_WRITE = "assets:write"
    CUSTODY_WRITE = "custody:write"
    AUDIT_READ = "audit:read"
    WEBHOOKS_WRITE = "webhooks:write"  # manage the agency's webhooks, without full admin
    ADMIN = "admin"


class ApiClient(SQLModel, table=True):
    __tablename__ = "api_client"

    id: str = Field(primary_key=True, max_length=32)
    agency_id: str = Field(foreign_key="agency.id", index=True, max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_NAME_CHARS)
    key_hash: bytes = Field(sa_type=Bytes)
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiClientPublic(SQLModel):
    """What listing a client shows: never its key or the key's hash."""

    id: str
    agency_id: str
    name: str
    scopes: list[str]
    created_at: datetime
    rotated_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class WebSession(SQLModel, table=True):
    """A signed-in browser: the SHA-256 of its cookie, the API client or the staff account it
    acts as (exactly one of them), its form token."""

    __tablename__ = "web_session"

    id: str = Field(primary_key=True, max_length=64)
    client_id: str | None = Field(default=None, foreign_key="api_client.id", index=True,
                                  max_length=32)
    account_id: str | None = Field(default=None, foreign_key="staff_account.id", index=True,
                                   max_length=32)
    csrf: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
