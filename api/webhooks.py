"""Webhooks for lifecycle events: signing, sealed secrets, fan-out and delivery.

Events: `custody.changed` (every custody event), `transfer.offered`, `transfer.accepted`
(a transfer or loan taking effect), `alert.raised` and `loan.overdue`. Their producers write a
`webhook_event` row in the same transaction as the event itself (`api.webhook_outbox`); the
fan-out (`WebhookDispatcher.fan_out`) takes committed rows and, in ONE transaction, writes a
`webhook_delivery` row per matching subscription and deletes them, so every committed event is
queued exactly once and nothing is ever queued for a rolled-back one. Rows are taken whatever
their id order (no cursor), so none committed late is skipped; on PostgreSQL they are locked
with SKIP LOCKED, so two dispatchers never take the same row.

Delivery: POST the JSON body with `X-Kitledger-Timestamp` (Unix seconds) and
`X-Kitledger-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`. A 2xx is
delivered; anything else (or no answer) is retried with capped exponential backoff; after
`webhook_max_attempts` tries the delivery is marked failed (visible through the API). Before
each try the target is checked again and the connection pinned to the checked address
(`api.webhook_targets`). What the API shows of a failure is one uniform "delivery failed",
with no status code and no connection error, so deliveries cannot be used to tell an open
port from a closed one; a target refused by the address policy says so.
Receivers check with `verify_signature`, which also rejects timestamps more than
`MAX_SIGNATURE_AGE_S` away from their clock, so a captured request cannot be replayed later.

Secrets are sealed with AES-GCM under a key derived from `secret_key` (they must be readable to
sign; a hash would not do). Rotating `secret_key` means re-registering webhooks. Secrets and
bodies are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Final

import httpx
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from api.config import Settings
from api.db import utcnow
from api.errors import ApiServiceError
from api.models.webhooks import (
    MAX_ERROR_CHARS,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from api.outage import DATABASE, is_unavailable
from api.webhook_targets import PinnedTarget, TargetRefused, vet

log = logging.getLogger("kitledger.webhooks")

MAX_SIGNATURE_AGE_S: Final = 300
"""Receivers refuse a timestamp further than this from their clock: wide enough for clock
skew and retries in flight, short enough that a captured request is soon useless."""
FAN_OUT_BATCH: Final = 500
"""Event rows fanned out per round: one bounded transaction."""
SEND_BATCH: Final = 50
"""Deliveries attempted per round, so a slow receiver cannot starve the fan-out."""
TIMESTAMP_HEADER: Final = "X-Kitledger-Timestamp"
SIGNATURE_HEADER: Final = "X-Kitledger-Signature"
_SEAL_CONTEXT: Final = b"kitledger webhook secret v1"
DELIVERY_FAILED: Final = "delivery failed"
"""The one error shown for a try that reached no 2xx, whatever the cause."""


class WebhookError(ApiServiceError):
    """A sealed secret cannot be opened (the settings secret changed)."""


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: bytes, timestamp: str, body: bytes, signature: str,
                     now: float) -> bool:
    """The receiver's check: a fresh timestamp and a matching HMAC (compared in constant time)."""
    if not timestamp.isdigit() or len(timestamp) > 12:
        return False
    if abs(now - int(timestamp)) > MAX_SIGNATURE_AGE_S:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def _seal_key(settings: Settings) -> bytes:
    return hashlib.sha256(_SEAL_CONTEXT + settings.secret_key.get_secret_value().encode()).digest()


def seal(settings: Settings, secret: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_seal_key(settings)).encrypt(nonce, secret, _SEAL_CONTEXT)


def unseal(settings: Settings, sealed: bytes) -> bytes:
    try:
        return AESGCM(_seal_key(settings)).decrypt(sealed[:12], sealed[12:], _SEAL_CONTEXT)
    except (InvalidTag, ValueError):
        raise WebhookError("webhook secret cannot be unsealed: was secret_key changed?") from None


def backoff_s(settings: Settings, attempts: int) -> float:
    """Wait before try `attempts + 1`: doubling from the base, capped."""
    return float(min(settings.webhook_backoff_max_s,
                     settings.webhook_backoff_base_s * 2 ** min(attempts - 1, 30)))


class WebhookDispatcher:
    """Feeds the outbox and delivers it; `step()` is one round, `start()` runs a thread."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # No kept-alive connections: the pool is keyed by address, and a TLS connection checked
        # for one receiver's name must not carry a request for another name on that address.
        self._http = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False,
                                  limits=httpx.Limits(max_keepalive_connections=0))

    def fan_out(self) -> int:
        """Queue one delivery per matching subscription for committed events; returns how
        many deliveries were queued."""
        queued = 0
        with Session(self.engine) as session:
            events = list(session.exec(select(WebhookEvent).order_by(col(WebhookEvent.id))
                                       .limit(FAN_OUT_BATCH)
                                       .with_for_update(skip_locked=True)))
            if not events:
                return 0
            subs = list(session.exec(select(WebhookSubscription).where(
                col(WebhookSubscription.active),
                col(WebhookSubscription.agency_id).in_({e.agency_id for e in events}))))
            for event in events:
                queued += self._queue(session, subs, event)
            session.execute(delete(WebhookEvent).where(
                col(WebhookEvent.id).in_([e.id for e in events])))
            session.commit()
        return queued

    def _queue(self, session: Session, subs: list[WebhookSubscription],
               event: WebhookEvent) -> int:
        event_id = f"evt-{event.id}"
        body = json.dumps({"id": event_id, "type": event.event_type, "data": event.data},
                          separators=(",", ":"), sort_keys=True).encode()
        matched = [s for s in subs
                   if s.agency_id == event.agency_id and event.event_type in s.events]
        for sub in matched:
            session.add(WebhookDelivery(subscription_id=sub.id, event_id=event_id,
                                        event_type=event.event_type, body=body))
        return len(matched)

    def deliver(self, now: datetime | None = None) -> int:
        """Try every due delivery once; returns how many were delivered."""
        moment = now or utcnow()
        delivered = 0
        with Session(self.engine) as session:
            due = list(session.exec(select(WebhookDelivery).where(
                WebhookDelivery.status == "pending",
                col(WebhookDelivery.next_attempt_at) <= moment,
            ).order_by(col(WebhookDelivery.id)).limit(SEND_BATCH)))
            for delivery in due:
                sub = session.get(WebhookSubscription, delivery.subscription_id)
                if sub is None or not sub.active:
                    delivery.status, delivery.last_error = "failed", "subscription removed"
                    continue
                secret = unseal(self.settings, sub.sealed_secret)
                ok = self._attempt(delivery, sub.url, secret, moment)
                delivered += ok
                session.add(delivery)
                session.commit()
            session.commit()
        return delivered

    def _attempt(self, delivery: WebhookDelivery, url: str, secret: bytes,
                 moment: datetime) -> bool:
        timestamp = int(moment.timestamp())
        delivery.attempts += 1
        delivery.last_status, delivery.last_error = None, DELIVERY_FAILED
        try:
            target = vet(url, self.settings.webhook_allowed_networks)
        except TargetRefused as exc:
            delivery.last_error = str(exc)
        else:
            if self._post(delivery, target, secret, timestamp):
                delivery.last_error = None
                delivery.status, delivery.delivered_at = "delivered", moment
                return True
        delivery.last_error = (delivery.last_error or "")[:MAX_ERROR_CHARS]
        if delivery.attempts >= self.settings.webhook_max_attempts:
            delivery.status = "failed"
        else:
            delivery.next_attempt_at = moment + timedelta(
                seconds=backoff_s(self.settings, delivery.attempts))
        return False

    def _post(self, delivery: WebhookDelivery, target: PinnedTarget, secret: bytes,
              timestamp: int) -> bool:
        """One POST to the pinned address; True on a 2xx. The cause of a failure is logged
        for the operator, never stored where the API shows it."""
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        try:
            response = self._http.post(target.url, content=delivery.body, headers={
                "Host": target.host_header,
                "Content-Type": "application/json", TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(secret, timestamp, delivery.body),
                "X-Kitledger-Event": delivery.event_type,
                "X-Kitledger-Delivery": str(delivery.id)}, extensions=extensions)
        except httpx.HTTPError as exc:
            log.info("webhook delivery %s failed: %s", delivery.id, type(exc).__name__)
            return False
        if 200 <= response.status_code < 300:
            delivery.last_status = response.status_code
            return True
        log.info("webhook delivery %s failed: HTTP %s", delivery.id, response.status_code)
        return False

    def step(self) -> None:
        self.fan_out()
        self.deliver()

    def _run(self, poll_s: float, elected: Callable[[], bool]) -> None:
        while not self._stop.wait(poll_s):
            try:
                if elected():
                    self.step()
                    DATABASE.ok()
            except Exception as exc:  # a bad round must not end deliveries for good
                if is_unavailable(exc):
                    DATABASE.failed(exc, "delivering webhooks")  # once per outage
                else:
                    log.exception("webhook round failed")

    def start(self, poll_s: float = 0.5, *, elected: Callable[[], bool] = lambda: True) -> None:
        """Deliver in a thread, every `poll_s`, in the rounds where `elected()` says this
        process is the dispatcher (`api.roles`: one of all the nodes)."""
        self._thread = threading.Thread(target=self._run, args=(poll_s, elected),
                                        name="kitledger-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        self.close()

    def close(self) -> None:
        self._http.close()
