"""Acknowledging and resolving alerts: who did it, when, and their note, kept for good.

An alert is acknowledged (someone has seen it and is on it) and later resolved with a note
saying what was found. Each is a row of `alert_action`, only ever added, so an alert's history
reads whole; resolving also closes the alert (`Alert.resolved_at`), as an alert the service
resolves itself (a reader back online, a loan returned) is closed. An alert is acknowledged
once and resolved once: a second attempt is a conflict, not a silent repeat, so two staff
answering the same banner learn that someone else already did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import BaseModel, StringConstraints
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.models.clients import ApiClient
from api.models.custody import MAX_ALERT_NOTE_CHARS, Alert, AlertAction
from api.problems import Problem, not_found

MAX_ACTIONS_SHOWN: Final = 100
"""Actions listed for one alert: an alert is acknowledged once and resolved once; the bound
only keeps a hostile history from making one answer large."""


class AlertActionKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    RESOLVE = "resolve"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted, as recorded: `kind` says what `actor_id` names."""

    kind: str
    actor_id: str
    name: str


def client_actor(session: Session, client_id: str) -> Actor:
    """The API client `client_id` as an actor (its name as it is now)."""
    client = session.get(ApiClient, client_id)
    return Actor("api_client", client_id, client.name if client else client_id)


Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_ALERT_NOTE_CHARS)]
RequiredNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                                max_length=MAX_ALERT_NOTE_CHARS)]


class AcknowledgeAlert(BaseModel):
    note: Note = ""


class ResolveAlert(BaseModel):
    note: RequiredNote
    """What was found and done: a resolution without one says nothing to the next reader."""


class AlertActionPublic(BaseModel):
    id: int
    alert_id: int
    action: str
    note: str
    actor_kind: str
    actor_id: str
    actor_name: str
    created_at: datetime


def agency_alert(session: Session, agency_id: str, alert_id: int) -> Alert:
    """The agency's alert `alert_id`, or 404 (another agency's alert is as if unknown)."""
    alert = session.get(Alert, alert_id)
    if alert is None or alert.agency_id != agency_id:
        raise not_found("alert")
    return alert


def actions_of(session: Session, alert_ids: list[int]) -> list[AlertAction]:
    """The actions on `alert_ids`, oldest first."""
    if not alert_ids:
        return []
    return list(session.exec(
        select(AlertAction).where(col(AlertAction.alert_id).in_(alert_ids))
        .order_by(col(AlertAction.id)).limit(MAX_ACTIONS_SHOWN * len(alert_ids))))


def act_on_alert(session: Session, *, alert: Alert, action: AlertActionKind, note: str,
                 actor: Actor, now: datetime) -> AlertAction:
    """Record `action` on `alert` by `actor` and commit; 409 if it was already done, or if
    the alert is resolved (a resolved alert takes no more actions)."""
    assert alert.id is not None
    done = {a.action for a in actions_of(session, [alert.id])}
    if action in done:
        raise _done_already(alert.id, action)
    if alert.resolved_at is not None:
        raise Problem(409, "alert-resolved", f"alert {alert.id} is already resolved")
    row = AlertAction(alert_id=alert.id, agency_id=alert.agency_id, action=action.value,
                      note=note, actor_kind=actor.kind, actor_id=actor.actor_id,
                      actor_name=actor.name, created_at=now)
    session.add(row)
    if action == AlertActionKind.RESOLVE:
        alert.resolved_at = now
        session.add(alert)
    try:
        session.commit()
    except IntegrityError:  # another request did the same a moment ago
        session.rollback()
        raise _done_already(alert.id, action) from None
    session.refresh(row)
    return row


def _done_already(alert_id: int, action: AlertActionKind) -> Problem:
    past = "acknowledged" if action == AlertActionKind.ACKNOWLEDGE else "resolved"
    return Problem(409, f"alert-already-{past}", f"alert {alert_id} is already {past}")
