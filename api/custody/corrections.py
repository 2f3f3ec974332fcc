"""Corrections and retirements: the log is appended to, never edited.

A wrong custody event is corrected by an `event-corrected` record naming it (leaf index and
event hash, in the asset's owning agency's log) and why; the event stays, and the history,
report and EPCIS export show both. Deleting an asset retires it (`asset-retired`): no custody
change is accepted after, by the API or at a desk, and its events stay provable. Deleting a
person retires them (`person-retired`, by commitment) and erases their personal data: their
commitment's opening and badges go, so the commitments in the log still verify but no longer
name anyone. Each is a registry record appended in the transaction that changes the row
(`api.registry_log`). A refusal raises `CustodyRefused`; a person who still holds kit is not
retired nor erased (`PersonHoldsKit`, naming the items): their kit is checked in or handed over
first, so no item is left with someone the register no longer has.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from api import webhook_outbox
from api.custody.transfers import CustodyRefused
from api.logstore import claim_log_writer
from api.models.assets import Asset, AssetStatus, HolderKind
from api.models.custody import CustodyEventRow
from api.models.people import Person
from api.registry import erase_person
from api.registry_log import (
    asset_retired,
    event_corrected,
    log_registry,
    person_retired,
    subject_records,
)
from ledger.core.records import EVENT_CORRECTED, PERSON_RETIRED, RegistryRecord

DELETED_REASON = "deleted through the API"
"""The reason logged when an asset or person is deleted without one."""


def corrections_of(session: Session, asset: Asset) -> list[tuple[RegistryRecord, int]]:
    """The asset's corrections in its owner's log, with their leaves, oldest first."""
    return [(record, leaf) for record, leaf in subject_records(
        session, asset.agency_id, ("asset", asset.id)) if record.kind == EVENT_CORRECTED]


def correct_event(session: Session, *, asset: Asset, leaf_index: int | None,
                  event_hash: str | None, reason: str, now: datetime) -> tuple[RegistryRecord,
                                                                                int]:
    """Declare the asset's event at `leaf_index` (or with `event_hash`; both must agree when
    both are given) wrong, for `reason`; returns the correction and its leaf."""
    if leaf_index is None and event_hash is None:
        raise CustodyRefused("name the event to correct by its leaf index or event hash")
    query = select(CustodyEventRow).where(CustodyEventRow.agency_id == asset.agency_id,
                                          CustodyEventRow.asset_id == asset.id)
    if leaf_index is not None:
        query = query.where(CustodyEventRow.leaf_index == leaf_index)
    if event_hash is not None:
        query = query.where(CustodyEventRow.event_hash == bytes.fromhex(event_hash))
    row = session.exec(query).first()
    if row is None:
        raise CustodyRefused("no such event of this asset in your agency's log")
    digest = row.event_hash.hex()
    for record, _leaf in corrections_of(session, asset):
        if (record.get("leaf"), record.get("reason")) == (row.leaf_index, reason):
            raise CustodyRefused(f"event at leaf {row.leaf_index} is already corrected for "
                                 "this reason")
    log_registry(session, asset.agency_id,
                 [event_corrected(asset.id, digest, row.leaf_index, reason)], now)
    record, leaf = corrections_of(session, asset)[-1]
    webhook_outbox.property_room_event(session, asset.agency_id, "custody.corrected", {
        "asset_id": asset.id, "leaf_index": leaf, "corrects_leaf": row.leaf_index,
        "corrects_event": digest}, now)
    return record, leaf


def retire_asset(session: Session, *, asset: Asset, reason: str, now: datetime) -> Asset:
    """Retire `asset` (it was deleted): in store or disposed only, never with someone."""
    claim_log_writer(session, now, [asset.agency_id], registry=True)
    session.refresh(asset, with_for_update=True)
    if asset.status == AssetStatus.RETIRED:
        raise CustodyRefused("asset is already retired")
    if asset.status in (AssetStatus.CHECKED_OUT, AssetStatus.ON_LOAN):
        raise CustodyRefused(f"asset is {asset.status}: check it in before deleting it")
    asset.status = AssetStatus.RETIRED
    session.add(asset)
    log_registry(session, asset.agency_id, [asset_retired(asset.id, reason)], now)
    webhook_outbox.property_room_event(session, asset.agency_id, "asset.retired",
                                       {"asset_id": asset.id}, now)
    return asset


MAX_HOLDINGS_NAMED = 200
"""Items a refused retirement names; a person holding more is told the first ones."""


class PersonHoldsKit(CustodyRefused):
    """A person to be retired or erased still holds items (`asset_ids`, first ones)."""

    def __init__(self, person_id: str, asset_ids: list[str]) -> None:
        super().__init__(f"person {person_id} still holds {len(asset_ids)} item(s): check "
                         "them in or hand them over before retiring them")
        self.asset_ids = asset_ids


def holdings(session: Session, person: Person) -> list[str]:
    """The items the person holds now (checked out to them or handed over to them): their
    agency's, and kit another agency shared with it."""
    return list(session.exec(select(Asset.id).where(
        Asset.holder_agency_id == person.agency_id, Asset.holder_kind == HolderKind.PERSON,
        Asset.holder_ref == person.id,
        col(Asset.status).notin_((AssetStatus.RETIRED, AssetStatus.DISPOSED)))
        .order_by(col(Asset.id)).limit(MAX_HOLDINGS_NAMED)))


def person_retirement(session: Session, person: Person) -> tuple[RegistryRecord, int] | None:
    """The person's `person-retired` record and its leaf, if they are retired."""
    found = [item for item in subject_records(session, person.agency_id,
                                              ("person", person.commitment))
             if item[0].kind == PERSON_RETIRED]
    return found[0] if found else None


def retire_person(session: Session, *, person: Person, reason: str, erase: bool,
                  now: datetime) -> Person:
    """Retire `person` (no longer takes or authorises kit), once; and `erase` their personal
    data (their commitment's opening, badges and qualifications). Refused while they hold kit.
    """
    claim_log_writer(session, now, [person.agency_id], registry=True)
    held = holdings(session, person)
    if held:
        raise PersonHoldsKit(person.id, held)
    if person_retirement(session, person) is None:
        log_registry(session, person.agency_id, [person_retired(person.commitment, reason)],
                     now)
        webhook_outbox.property_room_event(session, person.agency_id, "person.retired",
                                           {"commitment": person.commitment}, now)
    elif not erase:
        raise CustodyRefused("person is already retired")
    person.active = False
    session.add(person)
    if erase:
        erase_person(session, person=person)
    return person
