"""Evidence specifics: case and exhibit references, and disposal with its reason and recipient.

Both are registry records of the asset in its owning agency's log, appended in the
transaction that changes the row (`api.registry_log`): `evidence-referenced` when an exhibit
is given its references (again on each change: the log keeps every one, the row the latest),
and `asset-disposed` beside the `dispose` custody event, naming that event and why it left
(returned to its owner, destroyed, released). The recipient is in the log only as a salted
commitment to their name; the name and salt stay in `evidence_disposal`. A refusal raises
`CustodyRefused`.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody import transfers
from api.custody.transfers import CustodyRefused
from api.models.assets import Asset
from api.models.custody import CustodyEventRow, RegistryRecordRow
from api.models.evidence import EvidenceDisposal, EvidenceReference
from api.registry_log import Change, log_registry
from ledger.core.commitments import MIN_SALT_BYTES, commit
from ledger.core.records import ASSET_DISPOSED, EVIDENCE_REFERENCED

RECIPIENT = "recipient"
"""The commitment purpose of a disposal's recipient (a person outside the agency's register)."""

DESTROYED = "destroyed"


def _latest_leaf(session: Session, asset: Asset, kind: str) -> int:
    return session.exec(select(RegistryRecordRow.leaf_index).where(
        RegistryRecordRow.agency_id == asset.agency_id,
        RegistryRecordRow.subject_kind == "asset", RegistryRecordRow.subject_id == asset.id,
        RegistryRecordRow.kind == kind).order_by(col(RegistryRecordRow.seq).desc())).first() or 0


def set_references(session: Session, *, asset: Asset, case_ref: str, exhibit_ref: str,
                   now: datetime) -> EvidenceReference:
    """Give `asset` its case and exhibit references (logged); the same ones again are a
    replay and refused."""
    row = session.get(EvidenceReference, (asset.agency_id, asset.id))
    if row is not None and (row.case_ref, row.exhibit_ref) == (case_ref, exhibit_ref):
        raise CustodyRefused("the exhibit already has these references")
    log_registry(session, asset.agency_id, [Change(EVIDENCE_REFERENCED, {
        "asset": asset.id, "case": case_ref, "exhibit": exhibit_ref})], now)
    leaf = _latest_leaf(session, asset, EVIDENCE_REFERENCED)
    if row is None:
        row = EvidenceReference(asset_id=asset.id, agency_id=asset.agency_id,
                                case_ref=case_ref, exhibit_ref=exhibit_ref, leaf_index=leaf,
                                updated_at=now)
    else:
        row.case_ref, row.exhibit_ref, row.leaf_index, row.updated_at = (
            case_ref, exhibit_ref, leaf, now)
    session.add(row)
    # The references themselves are not sent: a receiver reads them with the API's scopes.
    webhook_outbox.property_room_event(session, asset.agency_id, "evidence.referenced", {
        "asset_id": asset.id, "leaf_index": leaf}, now)
    return row


def dispose_evidence(session: Session, *, asset: Asset, disposition: str,
                     recipient: str | None, now: datetime) -> EvidenceDisposal:
    """Dispose of `asset` (the `dispose` custody event) and log why and to whom."""
    if disposition != DESTROYED and recipient is None:
        raise CustodyRefused(f"a disposal by {disposition} names its recipient")
    transfers.dispose(session, asset=asset, now=now)
    event = session.exec(select(CustodyEventRow).where(
        CustodyEventRow.agency_id == asset.agency_id, CustodyEventRow.asset_id == asset.id,
    ).order_by(col(CustodyEventRow.seq).desc())).first()
    assert event is not None  # dispose just appended it
    salt = secrets.token_bytes(MIN_SALT_BYTES) if recipient is not None else None
    commitment = commit(RECIPIENT, recipient, salt) if recipient and salt else None
    log_registry(session, asset.agency_id, [Change(ASSET_DISPOSED, {
        "asset": asset.id, "event": event.event_hash.hex(), "leaf": event.leaf_index,
        "disposition": disposition, "recipient": commitment})], now)
    row = EvidenceDisposal(
        asset_id=asset.id, agency_id=asset.agency_id, disposition=disposition,
        recipient_name=recipient, recipient_salt=salt, recipient_commitment=commitment,
        event_leaf=event.leaf_index, leaf_index=_latest_leaf(session, asset, ASSET_DISPOSED),
        created_at=now)
    session.add(row)
    webhook_outbox.property_room_event(session, asset.agency_id, "asset.disposed", {
        "asset_id": asset.id, "disposition": disposition, "leaf_index": row.leaf_index,
        "event_leaf": event.leaf_index, "event_hash": event.event_hash.hex()}, now)
    return row
