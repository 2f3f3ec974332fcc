"""The auditor's page: find an asset, read its verified custody timeline, download its bundle,
its court report (PDF) and each custody step's receipt (HTML or PDF); or choose a site or a case
and read its report (HTML or PDF).

Downloads are page routes under /web, served to the page's session (the REST routes take an
API key, which a browser signed in with a staff account does not hold); each calls the same
function as its REST route, with the page user's caller, so the scoping is the API's.

The bundle is the same file `GET /v1/audit/bundles` serves (`api.bundles`), verifiable offline
with `kitledger verify`; it exists once the asset owner's log has a signed checkpoint.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Final, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, or_, select

from api.bundle_requests import MAX_ASSET_PARAM_CHARS
from api.db import utcnow
from api.deps import SessionDep
from api.models import Asset
from api.models.evidence import EvidenceReference
from api.models.people import Person
from api.models.registry import Site
from api.problems import Problem
from api.routes.receipts import EventHash, caller_receipt, receipt_pdf_response
from api.scoping import asset_visible, visible_asset
from api.security_headers import self_contained_page
from api.web.asset_page import OwnerParam
from api.web.session import AuditUser, WebUser
from api.web.templating import page
from api.web.timeline import asset_timeline
from ledger.core.bundle import Scope
from ledger.core.records import format_time

if TYPE_CHECKING:
    from ledger.core.bundle import AuditBundle
    from ledger.report import CaseReport, CustodyReport
    from ledger.verify.report import VerificationReport
    from ledger.verify.trust import LogTrust

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_MATCHES: Final = 50
"""Search results shown; a broader search is refined, not scrolled."""

MAX_CASES: Final = 500
"""Cases offered for a case report: a property room's open cases; another is typed in."""

SearchText = Annotated[str, Query(max_length=128)]
ChoiceText = Annotated[str, Query(max_length=MAX_ASSET_PARAM_CHARS)]
"""A site or case chosen for a report (the bundle request checks it further)."""

UNSAFE_IN_FILENAME: Final = re.compile(r"[^A-Za-z0-9._-]")
"""What a case or site id may hold that a download's file name should not (a case is any
printable ASCII: quotes, slashes, spaces)."""


@router.get("/audit", response_class=HTMLResponse)
def search(request: Request, session: SessionDep, user: AuditUser,
           q: SearchText = "") -> Response:
    """Assets whose id, EPC or class contains the search text; and the agency's sites and
    cases, to choose a site or case report."""
    text = q.strip()
    query = select(Asset).where(asset_visible(user.caller))
    if text:
        like = f"%{text.replace('%', '').replace('_', '')}%"
        query = query.where(or_(col(Asset.id).ilike(like), col(Asset.epc_hex).ilike(like),
                                col(Asset.class_id).ilike(like)))
    matches = list(session.exec(query.order_by(col(Asset.id)).limit(MAX_MATCHES)))
    agency = user.caller.agency_id
    sites = list(session.exec(select(Site).where(Site.agency_id == agency)
                              .order_by(col(Site.id))))
    cases = list(session.exec(select(EvidenceReference.case_ref).where(
        EvidenceReference.agency_id == agency).distinct().order_by(
            col(EvidenceReference.case_ref)).limit(MAX_CASES)))
    return page(request, "audit.html", user=user, q=text, matches=matches, sites=sites,
                cases=cases)


@router.get("/audit/assets/{asset_id}", response_class=HTMLResponse)
def timeline(request: Request, asset_id: str, session: SessionDep, user: AuditUser,
             owner_id: OwnerParam = None) -> Response:
    """One asset's custody timeline with a verification mark per step (`?owner=` names the
    owning agency of an asset shared with the caller's, where the id alone does not)."""
    asset = visible_asset(session, user.caller, asset_id, owner_id or None)
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
    from ledger.report import build_report

    asset, body = _owned_bundle(session, user, asset_id)
    checked = _verified(session, asset.agency_id, body)
    now = utcnow()
    report = build_report(checked.bundle, checked.result, asset.id, format_time(now),
                          checked.names, checked.pins)
    report.bookings = bookings_of_asset(session, asset, now)  # the database's, not the bundle's
    return _pdf(report, body, asset.id)


@dataclass(frozen=True, slots=True)
class _Verified:
    bundle: AuditBundle
    result: VerificationReport
    names: dict[str, str]
    """Each of the agency's person commitments -> the person's pseudonymous id."""
    pins: LogTrust


def _verified(session: Session, agency_id: str, body: bytes) -> _Verified:
    """The agency's bundle verified here, offline, pinned to the server's own log key (the
    operator's view: an outside auditor runs `kitledger report` against their own roots)."""
    from api.models.custody import AgencyLog
    from ledger.core.bundle_parse import parse_bundle
    from ledger.verify import OfflineChainReader, verify_bundle
    from ledger.verify.trust import LogTrust, TrustFile

    audit = parse_bundle(body)
    log = session.get(AgencyLog, agency_id)
    own_key = () if log is None or log.public_key is None else (log.public_key,)
    pins = TrustFile((LogTrust(agency_id, own_key, None, None),))
    result = verify_bundle(audit, OfflineChainReader(audit), trust=pins)
    names = {person.commitment: person.id
             for person in session.exec(select(Person).where(Person.agency_id == agency_id))}
    return _Verified(audit, result, names, pins.logs[0])


def _pdf(report: CustodyReport | CaseReport, body: bytes, name: str) -> Response:
    """The report as a PDF download, the bundle it verified embedded."""
    from ledger.report import render_pdf

    bundle_file = (f"{name}.bundle.jsonl", body, "the audit bundle this report verified")
    return Response(render_pdf(report, [bundle_file]), media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}.custody-report.pdf"'})


@router.get("/audit/report")
def collection_report(session: SessionDep, user: AuditUser, site: ChoiceText = "",
                      case: ChoiceText = "", format: Literal["html", "pdf"] = "html"
                      ) -> Response:
    """The site or case report chosen on the auditor's page, as HTML or PDF: every asset the
    log places at the site, or every exhibit of the case, from the agency's bundle of that
    site or case (`GET /v1/audit/bundles`), verified here as the asset report is, under one
    certificate. The HTML is the report's own document: its print styles inline, allowed by
    their hash (`api.security_headers.self_contained_page`)."""
    from api.routes.audit import requested_bundle
    from ledger.report import build_collection, case_exhibits, render_html, site_assets

    if bool(site) == bool(case):
        raise Problem(422, "bad-scope", "choose a site or a case")
    exported = requested_bundle(session, user.caller, site=site or None, case=case or None)
    checked = _verified(session, exported.owner, exported.body)
    assets = (site_assets(checked.bundle, site) if site
              else case_exhibits(checked.bundle, case))
    title = f"Site report: {site}" if site else f"Case report: {case}"
    report = build_collection(checked.bundle, checked.result, assets, title,
                              format_time(utcnow()), checked.names, checked.pins)
    if format == "pdf":
        kind, label = ("site", site) if site else ("case", case)
        return _pdf(report, exported.body, f"{kind}-{UNSAFE_IN_FILENAME.sub('_', label)}")
    answer = self_contained_page(render_html(report))
    answer.headers["Cache-Control"] = "no-store"
    return answer


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
