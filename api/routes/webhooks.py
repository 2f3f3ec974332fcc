"""Webhook routes (scope `webhooks:write`, or `admin`): register, list and remove an agency's
webhooks, and see their deliveries (pending, delivered, failed with the last reason).

A target must pass `api.webhook_targets` (no userinfo, no address that reaches inward unless
allow-listed): a refusal answers 422 with the reason. The signing secret is generated here
and shown once, in the registration answer; the database keeps it sealed (`api.webhooks.seal`).
Receivers verify as `api.webhooks.verify_signature`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, field_validator
from sqlmodel import col, select

from api.db import utcnow
from api.deps import SessionDep, SettingsDep, WebhookManager
from api.models.webhooks import MAX_WEBHOOK_URL_CHARS, WebhookDelivery, WebhookSubscription
from api.problems import Problem, not_found
from api.routes.paging import Limit
from api.webhook_outbox import EVENT_TYPES
from api.webhook_targets import TargetRefused, check_url, redact, vet
from api.webhooks import seal

router = APIRouter(prefix="/v1", tags=["webhooks"])

MAX_WEBHOOKS_PER_AGENCY: Final = 50
"""Every event is sent once per subscription; more receivers than this is a misconfiguration."""

EventType = Literal["custody.changed", "transfer.offered", "transfer.accepted", "alert.raised",
                    "loan.overdue", "custody.manual", "custody.corrected", "asset.retired",
                    "person.retired", "maintenance.done", "asset.out_of_service",
                    "asset.back_in_service", "reservation.created", "reservation.cancelled",
                    "evidence.referenced", "asset.disposed"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


WebhookId = Annotated[str, Path(max_length=32)]


class WebhookCreate(BaseModel):
    url: str = Field(min_length=1, max_length=MAX_WEBHOOK_URL_CHARS)
    events: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        check_url(value)  # TargetRefused is a ValueError: a 422 naming the field
        return value


class WebhookOut(BaseModel):
    id: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(description="HMAC-SHA256 key, shown only in this answer")


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None


def _out(sub: WebhookSubscription) -> WebhookOut:
    return WebhookOut(id=sub.id, url=redact(sub.url), events=sub.events, active=sub.active,
                      created_at=sub.created_at)


@router.post("/webhooks", status_code=201, response_model=WebhookCreated)
def create_webhook(body: WebhookCreate, session: SessionDep, caller: WebhookManager,
                   settings: SettingsDep) -> WebhookCreated:
    """Register a receiver for some lifecycle events of the caller's agency."""
    count = len(list(session.exec(select(WebhookSubscription.id).where(
        WebhookSubscription.agency_id == caller.agency_id, col(WebhookSubscription.active)))))
    if count >= MAX_WEBHOOKS_PER_AGENCY:
        raise Problem(409, "too-many-webhooks", f"at most {MAX_WEBHOOKS_PER_AGENCY} webhooks")
    try:
        vet(body.url, settings.webhook_allowed_networks)
    except TargetRefused as exc:
        raise Problem(422, "webhook-target-refused", str(exc)) from None
    secret = secrets.token_hex(32)
    sub = WebhookSubscription(id=secrets.token_hex(8), agency_id=caller.agency_id, url=body.url,
                              events=sorted(set(body.events)),
                              sealed_secret=seal(settings, secret.encode()), created_at=utcnow())
    session.add(sub)
    session.commit()
    return WebhookCreated(**_out(sub).model_dump(), secret=secret)


@router.get("/webhooks", response_model=list[WebhookOut])
def list_webhooks(session: SessionDep, caller: WebhookManager) -> list[WebhookOut]:
    rows = session.exec(select(WebhookSubscription).where(
        WebhookSubscription.agency_id == caller.agency_id).order_by(
        col(WebhookSubscription.created_at)).limit(MAX_WEBHOOKS_PER_AGENCY * 4))
    return [_out(r) for r in rows]


def _mine(session: SessionDep, caller: WebhookManager, webhook_id: str) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, webhook_id)
    if sub is None or sub.agency_id != caller.agency_id:
        raise not_found("webhook")
    return sub


@router.delete("/webhooks/{webhook_id}", status_code=204)
def remove_webhook(webhook_id: WebhookId, session: SessionDep,
                   caller: WebhookManager) -> None:
    """Stop sending: pending deliveries are marked failed on their next turn."""
    sub = _mine(session, caller, webhook_id)
    sub.active = False
    session.add(sub)
    session.commit()


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[DeliveryOut])
def deliveries(
    webhook_id: WebhookId, session: SessionDep, caller: WebhookManager,
    limit: Limit = 50,
    status: Annotated[Literal["pending", "delivered", "failed"] | None, Query()] = None,
) -> list[DeliveryOut]:
    sub = _mine(session, caller, webhook_id)
    query = select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    rows = session.exec(query.order_by(col(WebhookDelivery.id).desc()).limit(limit))
    return [DeliveryOut.model_validate(r, from_attributes=True) for r in rows]
