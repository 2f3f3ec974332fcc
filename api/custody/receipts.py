"""The receipt of one custody event, built from the agency's rows (`ledger.receipt` renders it).

The event is found by its hash within the caller's agency: an event of another agency is
not found, whatever its hash. People are shown by the agency's own ids (this is the agency's
copy); the log itself names them only by commitment. The checkpoint is the first signed one
whose tree covers the event's leaf, the one an audit bundle proves it in.
"""

from __future__ import annotations

import json

from sqlmodel import Session, col, select

from api.models.assets import Asset
from api.models.custody import AgencyLog, CustodyEventRow, LogCheckpoint
from api.models.evidence import EvidenceDisposal, EvidenceReference
from api.models.people import Person
from api.models.registry import Reader
from ledger.core.envelope import Envelope
from ledger.core.records import CustodyEvent, Holder, format_time
from ledger.receipt import CustodyReceipt, ReceiptCheckpoint
from ledger.report import show_holder


def agency_event(session: Session, agency_id: str, event_hash: bytes) -> CustodyEventRow | None:
    """The agency's custody event with this hash, if any."""
    return session.exec(select(CustodyEventRow).where(
        CustodyEventRow.agency_id == agency_id,
        CustodyEventRow.event_hash == event_hash)).first()


def covering_checkpoint(session: Session, agency_id: str, leaf_index: int
                        ) -> LogCheckpoint | None:
    return session.exec(select(LogCheckpoint).where(
        LogCheckpoint.agency_id == agency_id, LogCheckpoint.tree_size > leaf_index,
    ).order_by(col(LogCheckpoint.tree_size)).limit(1)).first()


def evidence_details(session: Session, row: CustodyEventRow) -> list[tuple[str, str]]:
    """The exhibit's references, and for its disposal why and to whom (agency copy)."""
    details = []
    reference = session.get(EvidenceReference, (row.agency_id, row.asset_id))
    if reference is not None:
        details += [("Case", reference.case_ref), ("Exhibit", reference.exhibit_ref)]
    disposal = session.get(EvidenceDisposal, (row.agency_id, row.asset_id))
    if disposal is not None and disposal.event_leaf == row.leaf_index:
        details += [("Disposal", disposal.disposition.replace("_", " ")),
                    ("Recipient", disposal.recipient_name or "—")]
    return details


def build_receipt(session: Session, row: CustodyEventRow, generated: str) -> CustodyReceipt:
    event = CustodyEvent.from_record(json.loads(row.record))
    names = {person.commitment: person.id for person in session.exec(
        select(Person).where(Person.agency_id == row.agency_id))}
    asset = session.get(Asset, (row.agency_id, row.asset_id))
    reader = session.get(Reader, event.reader) if event.reader else None
    place = next((h.ref for h in (event.holder_to, event.holder_from)
                  if h is not None and h.kind == "location"), None)
    point = covering_checkpoint(session, row.agency_id, row.leaf_index)
    checkpoint = None
    if point is not None:
        envelope = Envelope.from_bytes(point.envelope)
        checkpoint = ReceiptCheckpoint(
            tree_size=point.tree_size, root=point.root.hex(), signature=envelope.to_record()["sig"],
            key_id=envelope.kid, signed_at=format_time(point.signed_at))
    log = session.get(AgencyLog, row.agency_id)
    log_id = point.log_id if point is not None else (log.log_id if log and log.log_id else "—")
    return CustodyReceipt(
        agency=row.agency_id, asset=row.asset_id,
        asset_class=asset.class_id if asset else "—", action=event.action.replace("_", " "),
        time=event.time, site=reader.site_id if reader else (place or "—"),
        reader=event.reader or "—", holder_from=show_holder(event.holder_from, names),
        holder_to=show_holder(event.holder_to, names),
        authorisers=[show_holder(Holder("person", ref), names) for ref in event.authorised_by],
        leaf_index=row.leaf_index, event_hash=row.event_hash.hex(), log_id=log_id,
        generated=generated, manual=event.manual, checkpoint=checkpoint,
        details=evidence_details(session, row))
