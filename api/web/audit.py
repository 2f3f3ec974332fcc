"""The auditor's page: find an asset, read its verified custody timeline, download its bundle,
its court report (PDF) and each custody step's receipt (HTML or PDF).

Downloads are page routes under /web, served to the page's session (the REST routes take an
API key, which a browser signed in with a staff account does not hold); each calls the same
function as its REST route, with the page user's caller, so the scoping is the API's.

The bundle is the same file `GET /v1/audit/bundles` serves (`api.bundles`), verifiable offline
with `kitledger verify`; it exists once the asset owner's log has a signed checkpoint.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, or_, select

from api.db import utcnow
from api.deps import SessionDep
from api.models import Asset
from api.models.people import Person
from api.problems import Problem
from api.routes.receipts import EventHash, caller_receipt, receipt_pdf_response
from api.scoping import asset_visible, visible_asset
from api.security_headers import self_contained_page
from api.web.session import AuditUser, WebUser
from api.web.templating import page
from api.web.timeline import asset_timeline
from ledger.core.bundle import Scope
from ledger.core.records import format_time

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_MATCHES: Final = 50
"""Search results shown; a broader search is refined, not scrolled."""

SearchText = Annotated[str, Query(max_length=128)]


@router.get("/audit", response_class=HTMLResponse)
def search(request: Request, session: SessionDep, user: AuditUser,
           q: SearchText = "") -> Response:
    """Assets whose id, EPC or class contains the search text."""
    text = q.strip()
    query = select(Asset).where(asset_visible(user.caller))
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(col(Asset.id).ilike(like), col(Asset.epc_hex).ilike(like),
                                col(Asset.class_id).ilike(like)))
    matches = list(session.exec(query.order_by(col(Asset.id)).limit(MAX_MATCHES)))
    return page(request, "audit.html", user=user, q=text, matches=matches)


@router.get("/audit/assets/{asset_id}", response_class=HTMLResponse)
def timeline(request: Request, asset_id: str, session: SessionDep, user: AuditUser) -> Response:
    """One asset's custody timeline with a verification mark per step."""
    asset = visible_asset(session, user.caller, asset_id)
    return page(request, "audit_asset.html", user=user, asset=asset,
                timeline=asset_timeline(session, asset))


def _owned_bundle(session: Session, user: WebUser, asset_id: str) -> tuple[Asset, bytes]:
    """The asset and its audit bundle from its owner's log (owner agency only)."""
    from api.bundles import BundleUnavailable, export_agency_bundle

    asset = visible_asset(session, user.caller, asset_id)
    if asset.agency_id != user.caller.agency_id:
        raise Problem(403, "forbidden", "the owning agency exports this asset's bundle")
    try:
        body = export_agency_bundle(session, agency_id=asset.agency_id, asset_ids=[asset.id],
                                    scope=Scope("asset", (asset.id,)), now=utcnow())
    except BundleUnavailable as exc:
        raise Problem(409, "bundle-unavailable", str(exc)) from None
    return asset, body


@router.get("/audit/assets/{asset_id}/bundle")
def bundle(asset_id: str, session: SessionDep, user: AuditUser) -> Response:
    """The asset's audit bundle from its owner's log (owner agency only)."""
    asset, body = _owned_bundle(session, user, asset_id)
    return Response(body, media_type="application/x-ndjson", headers={
        "Content-Disposition": f'attachment; filename="{asset.id}.bundle.jsonl"'})


@router.get("/audit/assets/{asset_id}/report.pdf")
def report_pdf(asset_id: str, session: SessionDep, user: AuditUser) -> Response:
    """The court report of the asset: its bundle verified here, offline, then printed.

    Offline means the anchors are checked against the receipts in the bundle, not a chain node
    (the report says so); `kitledger report --rpc URL --trust FILE` makes the fully checked one,
    against an auditor's own trust roots. This is the operator's view: it pins the server's own
    log key for the agency, which an outside auditor would not take on the operator's word.
    People are named by their pseudonymous ids, which the owning agency's staff may see. The
    PDF embeds the bundle, so the report carries its own proof. Bookings of the asset are added
    from the database: they are not log records, so they are in no bundle (and `kitledger
    report` shows none); the report says the verification does not cover them.
    """
    from api.custody.reservations import bookings_of_asset
    from api.models.custody import AgencyLog
    from ledger.core.bundle_parse import parse_bundle
    from ledger.report import build_report, render_pdf
    from ledger.verify import OfflineChainReader, verify_bundle
    from ledger.verify.trust import LogTrust, TrustFile

    asset, body = _owned_bundle(session, user, asset_id)
    audit = parse_bundle(body)
    log = session.get(AgencyLog, asset.agency_id)
    own_key = () if log is None or log.public_key is None else (log.public_key,)
    pins = TrustFile((LogTrust(asset.agency_id, own_key, None, None),))
    result = verify_bundle(audit, OfflineChainReader(audit), trust=pins)
    names = {
        person.commitment: person.id
        for person in session.exec(select(Person).where(Person.agency_id == asset.agency_id))
    }
    now = utcnow()
    report = build_report(audit, result, asset.id, format_time(now), names, pins.logs[0])
    report.bookings = bookings_of_asset(session, asset, now)  # the database's, not the bundle's
    bundle_file = (f"{asset.id}.bundle.jsonl", body, "the audit bundle this report verified")
    return Response(render_pdf(report, [bundle_file]), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{asset.id}.custody-report.pdf"'})


@router.get("/receipts/{event_hash}.pdf")
def receipt_pdf(event_hash: EventHash, session: SessionDep, user: AuditUser) -> Response:
    """A custody step's receipt as a PDF (as `GET /v1/custody-events/{hash}/receipt.pdf`).
    Declared before the HTML route, whose path would otherwise take `.pdf` as the hash's."""
    return receipt_pdf_response(caller_receipt(session, user.caller, event_hash))


@router.get("/receipts/{event_hash}", response_class=HTMLResponse)
def receipt_html(event_hash: EventHash, session: SessionDep, user: AuditUser) -> Response:
    """A custody step's receipt as a printable page (as `GET /v1/custody-events/{hash}/receipt`,
    for the page's session)."""
    from ledger.receipt import render_html

    return self_contained_page(render_html(caller_receipt(session, user.caller, event_hash)))
