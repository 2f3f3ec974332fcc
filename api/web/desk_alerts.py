"""The desk's alert banners, and the buttons that acknowledge and resolve alerts.

A custody alert raised at one of the agency's readers (kit leaving through the portal
unchecked, kit turning up in the wrong store) is a banner on every desk of the agency until
someone acknowledges it, with a beep (`static/desk.js`); acknowledged, it stays as a card
saying who did, until someone resolves it with a note. Every other open alert of the agency
(readers' health, overdue loans) has the same buttons on the agency page. The forms post to the same
`api.alert_actions` as `POST /v1/alerts/{id}/acknowledge` and `/resolve`, need the same
scope (`custody:write`), and are recorded as acting for `web_actor(user)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import Session, col, select

from api.alert_actions import (
    AcknowledgeAlert,
    Actor,
    AlertActionKind,
    ResolveAlert,
    act_on_alert,
    actions_of,
    agency_alert,
    client_actor,
)
from api.custody.rules import AlertKind
from api.db import utcnow
from api.deps import SessionDep
from api.models import Alert, AlertAction, Decision, Reader
from api.models.clients import Scope
from api.models.registry import MAX_NAME_CHARS
from api.problems import Problem
from api.web.session import CurrentUser, WebUser, signed_form

router = APIRouter(prefix="/web", include_in_schema=False)

BANNER_KINDS: Final = (AlertKind.UNAUTHORISED_REMOVAL.value, AlertKind.UNEXPECTED_SITE.value)
"""Alerts a desk must see at once: kit moving without a check-out. Readers' health and
overdue loans are on the agency page."""
MAX_BANNERS: Final = 10
"""Open banners shown at once; more than this is an incident, handled on the agency page."""

AlertId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@dataclass(frozen=True, slots=True)
class Banner:
    alert: Alert
    acknowledged: AlertAction | None


def web_actor(session: Session, user: WebUser) -> Actor:
    """Who a page's action is recorded as: the staff account signed in (by its display name
    or username), else the API client the web session acts for. Every page action goes
    through here."""
    account = user.account
    if account is not None:
        return Actor("account", account.id,
                     (account.display_name or account.username)[:MAX_NAME_CHARS])
    return client_actor(session, user.caller.client_id)


def acknowledgements(session: Session, alerts: list[Alert]) -> dict[int, AlertAction]:
    """Each of `alerts`' acknowledgement, by alert id."""
    return {a.alert_id: a for a in actions_of(session, [a.id for a in alerts if a.id])
            if a.action == AlertActionKind.ACKNOWLEDGE}


def banner_alerts(session: Session, user: WebUser) -> list[Banner]:
    """The agency's open custody alerts, newest first, each with its acknowledgement."""
    alerts = list(session.exec(
        select(Alert).where(Alert.agency_id == user.caller.agency_id,
                            col(Alert.kind).in_(BANNER_KINDS), col(Alert.resolved_at).is_(None))
        .order_by(col(Alert.id).desc()).limit(MAX_BANNERS)))
    acks = acknowledgements(session, alerts)
    return [Banner(a, acks.get(a.id or 0)) for a in alerts]


def latest_ids(session: Session, user: WebUser) -> dict[str, int]:
    """Where a desk's live stream starts: after the newest decision and alert the page shows."""
    decision = session.exec(select(func.max(Decision.id))).one()
    alert = session.exec(select(func.max(Alert.id))
                         .where(Alert.agency_id == user.caller.agency_id)).one()
    return {"decision": decision or 0, "alert": alert or 0}


def _back_to_desk(session: Session, user: WebUser, form: dict[str, str]) -> Response:
    """Back to the page the form was on: the agency page's alert list, or the desk at one of
    the agency's readers (never another URL)."""
    if form.get("back") == "agency":
        return RedirectResponse("/web/agency#alerts", status_code=303)
    reader = session.get(Reader, form.get("reader", ""))
    mine = reader is not None and reader.agency_id == user.caller.agency_id
    target = f"/web/desk?reader={reader.id}" if reader is not None and mine else "/web/desk"
    return RedirectResponse(target, status_code=303)


def _note(form: dict[str, str], model: type[AcknowledgeAlert] | type[ResolveAlert]) -> str:
    try:
        return model(note=form.get("note", "")).note
    except ValidationError:
        raise Problem(422, "validation", "a resolution needs a note of what was found "
                      "(at most 1000 characters)") from None


@router.post("/alerts/{alert_id}/acknowledge")
async def acknowledge(alert_id: AlertId, request: Request, session: SessionDep,
                      user: CurrentUser) -> Response:
    """The banner's Acknowledge button."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    alert = agency_alert(session, user.caller.agency_id, alert_id)
    act_on_alert(session, alert=alert, action=AlertActionKind.ACKNOWLEDGE,
                 note=_note(form, AcknowledgeAlert), actor=web_actor(session, user),
                 now=utcnow())
    return _back_to_desk(session, user, form)


@router.post("/alerts/{alert_id}/resolve")
async def resolve(alert_id: AlertId, request: Request, session: SessionDep,
                  user: CurrentUser) -> Response:
    """The acknowledged card's Resolve form, with its note."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    alert = agency_alert(session, user.caller.agency_id, alert_id)
    act_on_alert(session, alert=alert, action=AlertActionKind.RESOLVE,
                 note=_note(form, ResolveAlert), actor=web_actor(session, user), now=utcnow())
    return _back_to_desk(session, user, form)
