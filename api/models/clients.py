"""API clients: per-agency credentials with scopes, stored as keyed hashes.

A key is shown once, at creation, as `kl_<client id>_<secret>`. The database keeps only
HMAC-SHA256(server secret, key), so a leaked database does not leak usable keys, and the
server secret alone does not either.
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
