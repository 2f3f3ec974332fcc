"""Webhook tables: agencies' subscriptions, the lifecycle events waiting to be fanned out, and
the delivery outbox.

A subscription's HMAC secret must be readable to sign, so it is stored sealed (AES-GCM under a
key derived from the settings secret, `api.webhooks.seal`), never in the clear and never hashed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_WEBHOOK_URL_CHARS: Final = 2048
"""Receivers' URLs come from API callers; browsers and proxies cap URLs near this too."""
MAX_ERROR_CHARS: Final = 300
"""A failed attempt's reason as stored: enough to diagnose, bounded against hostile receivers."""


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscription"

    id: str = Field(primary_key=True, max_length=32)
    agency_id: str = Field(foreign_key="agency.id", index=True, max_length=MAX_ID_CHARS)
    url: str = Field(max_length=MAX_WEBHOOK_URL_CHARS)
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    sealed_secret: bytes = Field(sa_type=Bytes)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDelivery(SQLModel, table=True):
    """One event for one subscription: pending until delivered, failed after the last try."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (UniqueConstraint("subscription_id", "event_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    subscription_id: str = Field(foreign_key="webhook_subscription.id", index=True,
                                 max_length=32)
    event_id: str = Field(max_length=64)
    event_type: str = Field(max_length=32)
    body: bytes = Field(sa_type=Bytes)
    status: str = Field(default="pending", index=True, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=MAX_ERROR_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebhookEvent(SQLModel, table=True):
    """One lifecycle event, written in the transaction that made it (`api.webhook_outbox`);
    the dispatcher turns it into one delivery per matching subscription and deletes it."""

    __tablename__ = "webhook_event"
    # AUTOINCREMENT: SQLite would otherwise give a deleted row's id out again, and an id names
    # the event to receivers (`evt-N`) once it is fanned out and deleted (migration 0010).
    __table_args__ = {"sqlite_autoincrement": True}

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    event_type: str = Field(max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
