"""Receipt routes (scope `audit:read`): the printable receipt of one custody change.

The event is named by its hash (64 lower-case hex digits), looked up in the caller's agency
only, so another agency's event answers 404 like an unknown one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session

from api.auth import Caller
from api.custody.receipts import agency_event, build_receipt
from api.db import utcnow
from api.deps import Auditor, SessionDep
from api.problems import not_found
from api.security_headers import self_contained_page
from ledger.core.records import format_time
from ledger.receipt import CustodyReceipt, render_html, render_pdf

router = APIRouter(prefix="/v1", tags=["receipts"])

EventHash = Annotated[str, Path(pattern="^[0-9a-f]{64}$")]
"""An event hash in the path: exactly 64 lower-case hex digits, refused (422) otherwise."""


def caller_receipt(session: Session, caller: Caller, event_hash: str) -> CustodyReceipt:
    """The receipt of the caller's agency's event (404 for another agency's or none)."""
    row = agency_event(session, caller.agency_id, bytes.fromhex(event_hash))
    if row is None:
        raise not_found("custody event")
    return build_receipt(session, row, format_time(utcnow()))


@router.get("/custody-events/{event_hash}/receipt", response_class=HTMLResponse)
def receipt_html(event_hash: EventHash, session: SessionDep, caller: Auditor) -> Response:
    """The receipt of a custody event, as a printable HTML page."""
    return self_contained_page(render_html(caller_receipt(session, caller, event_hash)))


@router.get("/custody-events/{event_hash}/receipt.pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}}})
def receipt_pdf(event_hash: EventHash, session: SessionDep, caller: Auditor) -> Response:
    """The receipt of a custody event, as a PDF."""
    return receipt_pdf_response(caller_receipt(session, caller, event_hash))


def receipt_pdf_response(receipt: CustodyReceipt) -> Response:
    """The receipt's PDF as a download named after the asset and leaf."""
    return Response(render_pdf(receipt), media_type="application/pdf", headers={
        "Content-Disposition":
            f'attachment; filename="{receipt.asset}.leaf-{receipt.leaf_index}.receipt.pdf"'})
