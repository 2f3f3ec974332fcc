"""The stores desk page: live decisions at one reader, who holds what, and overdue loans.

The decisions panel is re-fetched by htmx every two seconds (`/web/desk/feed`), which is
simple, survives flaky tablet Wi-Fi, and needs no open connection per desk. A decision names
an asset only if the desk's agency may see it now: the rules never name another agency's
unshared asset, and one lent to the agency drops out of its feed when the loan ends.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Annotated, Any, Final, NamedTuple

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select

from api.custody.rules import NOT_OURS
from api.db import among, utcnow
from api.deps import SessionDep
from api.models import Asset, AssetStatus, Decision, Reader
from api.scoping import asset_visible
from api.web.session import AssetsUser, WebUser
from api.web.templating import page
from ledger.core.bounds import MAX_ID_CHARS

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_FEED_ROWS: Final = 25
"""Decisions shown at once: a desk looks at the last few minutes, not the day."""
MAX_HELD_ROWS: Final = 500
"""Checked-out assets listed; a force with more pages them through the API."""

ReaderParam = Annotated[str | None, Query(max_length=MAX_ID_CHARS)]


class FeedLine(NamedTuple):
    """One decision as the desk shows it: `what` names the asset, or the kind of tag."""

    decision: str
    what: str
    reason: str
    created_at: datetime


def _readers(session: Session, user: WebUser) -> list[Reader]:
    return list(session.exec(select(Reader).where(Reader.agency_id == user.caller.agency_id)
                             .order_by(col(Reader.id))))


def _lines(session: Session, user: WebUser, decisions: list[Decision]) -> list[FeedLine]:
    """`decisions` as the desk shows them: one naming an asset the caller may not see (now)
    shows as "not ours", like a tag that was never the agency's."""
    named = {d.asset_id for d in decisions if d.asset_id}
    visible = set(session.exec(select(Asset.id).where(
        among(col(Asset.id), named, session), asset_visible(user.caller)))) if named else set()
    lines = []
    for d in decisions:
        if d.asset_id in visible:
            lines.append(FeedLine(d.decision, d.asset_id, d.reason, d.created_at))
        elif d.asset_id or d.reason == NOT_OURS:  # its verdict, nothing of the asset
            reason = NOT_OURS if d.decision == "refuse" else ""
            lines.append(FeedLine(d.decision, "tag", reason, d.created_at))
        else:
            lines.append(FeedLine(d.decision, "staff badge", d.reason, d.created_at))
    return lines


def _feed(session: Session, user: WebUser, reader_id: str | None) -> dict[str, Any]:
    readers = {r.id for r in _readers(session, user)}
    decisions: list[Decision] = []
    if reader_id in readers:  # another agency's reader id shows nothing, as if unknown
        decisions = list(session.exec(
            select(Decision).where(Decision.reader_id == reader_id)
            .order_by(col(Decision.id).desc()).limit(MAX_FEED_ROWS)))
    out = list(session.exec(
        select(Asset).where(asset_visible(user.caller),
                            Asset.status == AssetStatus.CHECKED_OUT.value)
        .order_by(col(Asset.holder_ref), col(Asset.id)).limit(MAX_HELD_ROWS)))
    holdings: dict[str, list[Asset]] = defaultdict(list)
    for asset in out:
        holdings[asset.holder_ref].append(asset)
    now = utcnow()
    overdue = [a for a in out if a.due_at is not None and a.due_at < now]
    return {"decisions": _lines(session, user, decisions), "holdings": dict(holdings),
            "overdue": overdue, "now": now}


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, session: SessionDep, user: AssetsUser,
         reader: ReaderParam = None) -> Response:
    """Choose a reader and watch its decisions."""
    readers = _readers(session, user)
    ids = {r.id for r in readers}
    # An id that is not one of the caller's readers is treated as unknown, never echoed.
    chosen = reader if reader in ids else next(
        (r.id for r in readers if r.role == "issue_desk"), None)
    return page(request, "desk.html", user=user, readers=readers, chosen=chosen,
                **_feed(session, user, chosen))


@router.get("/desk/feed", response_class=HTMLResponse)
def feed(request: Request, session: SessionDep, user: AssetsUser,
         reader: ReaderParam = None) -> Response:
    """The live part of the desk page (htmx swaps it in)."""
    mine = reader in {r.id for r in _readers(session, user)}
    return page(request, "desk_feed.html", user=user, chosen=reader if mine else None,
                **_feed(session, user, reader))
