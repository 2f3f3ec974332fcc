"""The stores desk page: live decisions at one reader, who holds what, overdue loans, the
portal alerts staff have to acknowledge, and a "None in store" button for an officer the store
had nothing for (unmet demand, which pool planning counts).

The page is rendered whole; then each new decision and alert is pushed to it as it happens
(`api.web.desk_stream`, server-sent events), and the holdings panel is re-fetched when one
arrives. A decision names an asset only if the desk's agency may see it now: the rules never
name another agency's unshared asset, and one lent to the agency drops out of its feed when
the loan ends.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from api.db import utcnow
from api.deps import SessionDep
from api.models import Asset, AssetClass, AssetStatus, Decision, Reader, Scope
from api.planning.unmet import record_none_in_store
from api.problems import Problem
from api.scoping import asset_visible
from api.web.desk_alerts import banner_alerts, latest_ids
from api.web.desk_lines import feed_lines
from api.web.holders import Holders
from api.web.session import AssetsUser, CurrentUser, WebUser, signed_form
from api.web.templating import page
from ledger.core.bounds import MAX_ID_CHARS

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_FEED_ROWS: Final = 25
"""Decisions shown at once: a desk looks at the last few minutes, not the day."""
MAX_HELD_ROWS: Final = 500
"""Checked-out assets listed; a force with more pages them through the API."""

ReaderParam = Annotated[str | None, Query(max_length=MAX_ID_CHARS)]


def _readers(session: Session, user: WebUser) -> list[Reader]:
    return list(session.exec(select(Reader).where(Reader.agency_id == user.caller.agency_id)
                             .order_by(col(Reader.id))))


def _feed(session: Session, user: WebUser, reader_id: str | None) -> dict[str, Any]:
    latest = latest_ids(session, user)  # first: the stream starts after what is shown
    readers = {r.id for r in _readers(session, user)}
    lines = []
    if reader_id is not None and reader_id in readers:  # another agency's: as if unknown
        decisions = list(session.exec(
            select(Decision).where(Decision.reader_id == reader_id)
            .order_by(col(Decision.id).desc()).limit(MAX_FEED_ROWS)))
        lines = feed_lines(session, user, reader_id, decisions)
    out = list(session.exec(
        select(Asset).where(asset_visible(user.caller),
                            Asset.status == AssetStatus.CHECKED_OUT.value)
        .order_by(col(Asset.holder_ref), col(Asset.id)).limit(MAX_HELD_ROWS)))
    holders = Holders(session, user.caller.agency_id)
    held_by = {(a.agency_id, a.id): a.holder_ref if a.holder_agency_id == user.caller.agency_id
               else holders.of(a) for a in out}  # a borrower's person is said to be theirs
    holdings: dict[str, list[Asset]] = defaultdict(list)
    for asset in out:
        holdings[held_by[asset.agency_id, asset.id]].append(asset)
    now = utcnow()
    overdue = [a for a in out if a.due_at is not None and a.due_at < now]
    return {"decisions": lines, "holdings": dict(holdings), "overdue": overdue, "now": now,
            "held_by": held_by,
            "banners": banner_alerts(session, user), "latest": latest}


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, session: SessionDep, user: AssetsUser,
         reader: ReaderParam = None, noted: bool = False) -> Response:
    """Choose a reader and watch its decisions."""
    readers = _readers(session, user)
    ids = {r.id for r in readers}
    # An id that is not one of the caller's readers is treated as unknown, never echoed.
    chosen = reader if reader in ids else next(
        (r.id for r in readers if r.role == "issue_desk"), None)
    classes = list(session.exec(select(AssetClass).where(
        AssetClass.agency_id == user.caller.agency_id).order_by(col(AssetClass.id))))
    return page(request, "desk.html", user=user, readers=readers, chosen=chosen,
                classes=classes, noted=noted, **_feed(session, user, chosen))


@router.post("/desk/none-in-store")
async def none_in_store(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """The desk's "None in store" button: an officer asked for the class and the store had
    none (`POST /v1/sites/{id}/none-in-store`, same scope), at the chosen reader's site."""
    form = await signed_form(request, user, Scope.CUSTODY_WRITE)
    reader = session.get(Reader, form.get("reader", ""))
    if reader is None or reader.agency_id != user.caller.agency_id:
        raise Problem(422, "unknown-reader", "choose one of your agency's readers")
    record_none_in_store(session, agency_id=reader.agency_id, site_id=reader.site_id,
                         class_id=form.get("class", ""), at=None, now=utcnow(),
                         client_id=user.caller.client_id or None, account_id=user.account_id)
    session.commit()
    return RedirectResponse(f"/web/desk?reader={reader.id}&noted=true", status_code=303)


@router.get("/desk/holdings", response_class=HTMLResponse)
def holdings(request: Request, session: SessionDep, user: AssetsUser) -> Response:
    """Who holds what and the overdue loans (re-fetched when a decision arrives)."""
    return page(request, "desk_holdings.html", user=user, **_feed(session, user, None))


@router.get("/desk/feed", response_class=HTMLResponse)
def feed(request: Request, session: SessionDep, user: AssetsUser,
         reader: ReaderParam = None) -> Response:
    """The live part of the desk page (htmx swaps it in)."""
    mine = reader in {r.id for r in _readers(session, user)}
    return page(request, "desk_feed.html", user=user, chosen=reader if mine else None,
                **_feed(session, user, reader))
