"""The webhook outbox's producer side: lifecycle events written in the transaction that makes
them.

Every producer of a lifecycle event writes a `webhook_event` row in its own transaction: custody
changes through the `EventSink` (`api.custody.events.SessionSink` at once,
`api.custody.writes.CustodyWrites` in one bulk INSERT per batch), alerts through
`raise_alerts`, transfer offers through `transfer_offered`. So a rolled-back change never
produces a webhook and a committed one always does; the dispatcher (`api.webhooks`) fans each
row out to the matching subscriptions and deletes it. No cursor over ids is involved, so rows
committed out of id order (PostgreSQL sequences) cannot be skipped.

Only events that some active subscription of their agency asks for are written: the
dispatcher would delete the others unread, and ingest would have paid a row (and its JSON)
for every custody change of an agency that has no webhooks. Which events are wanted is read
in the producer's transaction, so a subscription receives the events of changes made after it
was committed (a change whose transaction overlaps its creation may or may not reach it).

Payloads (`data`) carry ids and states only, never personal data: custody changes name the
asset, its chain position and the event hash (checkable against the log), not the holder.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Connection, insert, select
from sqlmodel import Session

from api.bulk import insert_rows
from api.db import ByIds, table
from api.models.custody import Alert, Transfer
from api.models.webhooks import WebhookEvent, WebhookSubscription

_EVENTS = table(WebhookEvent)
_ALERTS = table(Alert)
_SUBSCRIPTIONS = table(WebhookSubscription)
_SUBSCRIBED = ByIds(_SUBSCRIPTIONS.c.agency_id, lambda where: select(
    _SUBSCRIPTIONS.c.agency_id, _SUBSCRIPTIONS.c.events).where(where, _SUBSCRIPTIONS.c.active))

EVENT_TYPES: Final = ("custody.changed", "transfer.offered", "transfer.accepted",
                      "alert.raised", "loan.overdue", "custody.manual", "custody.corrected",
                      "asset.retired", "person.retired", "maintenance.done",
                      "asset.out_of_service", "asset.back_in_service", "reservation.created",
                      "reservation.cancelled", "evidence.referenced", "asset.disposed")
_HAND_OVERS: Final = frozenset({"transfer", "loan_out"})
"""Custody actions that carry out an accepted transfer or loan offer."""


@lru_cache(maxsize=1)
def _iso(value: datetime | None) -> str | None:
    """The ISO 8601 spelling of `value`, remembered: a batch's events share its one time
    (equal instants are spelt alike, as the service's times are all UTC)."""
    return None if value is None else value.isoformat()


def custody_events(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The webhook events of one `custody_event` row (as `append_change` writes it)."""
    data = {"agency_id": row["agency_id"], "asset_id": row["asset_id"], "seq": row["seq"],
            "action": row["action"], "event_hash": bytes(row["event_hash"]).hex(),
            "leaf_index": row["leaf_index"], "created_at": _iso(row["created_at"])}
    kinds = ["custody.changed"]
    if row["action"] in _HAND_OVERS:
        kinds.append("transfer.accepted")
    return [{"agency_id": row["agency_id"], "event_type": kind, "data": data,
             "created_at": row["created_at"]} for kind in kinds]


def wanted(connection: Connection, agencies: Iterable[str]) -> set[tuple[str, str]]:
    """The (agency, event type) pairs of `agencies` that an active subscription asks for."""
    ids = set(agencies)
    if not ids:
        return set()
    return {(agency, kind) for agency, kinds in _SUBSCRIBED(connection, ids) for kind in kinds}


def enqueue(connection: Connection, events: list[dict[str, Any]]) -> None:
    """Write those of `events` (from `custody_events` & co.) that a subscription asks for, in
    the connection's transaction, in one bulk statement."""
    if events:
        _write(connection, events, wanted(connection, {event["agency_id"] for event in events}))


def enqueue_custody_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """`enqueue` the webhook events of `custody_event` rows, made only for the agencies that
    have a subscription (ingest writes hundreds of rows a batch)."""
    if not rows:
        return
    asked = wanted(connection, {row["agency_id"] for row in rows})
    agencies = {agency for agency, _ in asked}
    if agencies:
        _write(connection, [hook for row in rows if row["agency_id"] in agencies
                            for hook in custody_events(row)], asked)


def _write(connection: Connection, events: list[dict[str, Any]],
           asked: set[tuple[str, str]]) -> None:
    insert_rows(connection, _EVENTS, [
        event for event in events if (event["agency_id"], event["event_type"]) in asked])


def raise_alerts(session: Session, alerts: Iterable[Mapping[str, Any]]) -> int:
    """Insert `alerts` (`alert` column values) and their webhook events in the session's
    transaction; returns how many were raised."""
    rows = list(alerts)
    if not rows:
        return 0
    connection = session.connection()
    ids = connection.execute(
        insert(_ALERTS).returning(_ALERTS.c.id, sort_by_parameter_order=True), rows,
    ).scalars().all()
    enqueue(connection, [
        {"agency_id": row["agency_id"],
         "event_type": "loan.overdue" if row["kind"] == "overdue_loan" else "alert.raised",
         "data": {"id": alert_id, "agency_id": row["agency_id"], "kind": row["kind"],
                  "asset_id": row.get("asset_id"), "reader_id": row.get("reader_id"),
                  "site_id": row.get("site_id"), "created_at": _iso(row["created_at"])},
         "created_at": row["created_at"]}
        for alert_id, row in zip(ids, rows, strict=True)
    ])
    return len(rows)


def property_room_event(session: Session, agency_id: str, event_type: str,
                        data: dict[str, Any], now: datetime) -> None:
    """A property-room event (a manual entry, correction, retirement, maintenance, booking,
    evidence reference or disposal), in the session's transaction (`data` names ids, leaves
    and hashes: never a person's name)."""
    enqueue(session.connection(), [{"agency_id": agency_id, "event_type": event_type,
                                    "data": {**data, "created_at": _iso(now)},
                                    "created_at": now}])


def transfer_offered(session: Session, transfer: Transfer) -> None:
    """The `transfer.offered` event of a new offer, in the session's transaction."""
    session.flush()  # the offer's id, which receivers accept or reject it by
    enqueue(session.connection(), [{
        "agency_id": transfer.agency_id, "event_type": "transfer.offered",
        "data": {"id": transfer.id, "agency_id": transfer.agency_id,
                 "asset_id": transfer.asset_id, "action": transfer.action,
                 "to_kind": transfer.to_kind, "to_ref": transfer.to_ref,
                 "created_at": _iso(transfer.offered_at)},
        "created_at": transfer.offered_at,
    }])
