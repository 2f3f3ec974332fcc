"""Inventories: a stocktake of one site, full or sampled, read by a desk reader during the
session or by a handheld that uploads its signed reads afterwards, reconciled and logged.

Opening a session fixes what the site is expected to hold (the register's items in store
there). A sampled one also draws its sample then, from a fresh random seed
(`ledger.core.sampling`), so whoever walks the store knows which items to look for and an
auditor can draw the same sample from the seed the log records. Completing it reconciles the
items looked for against the tags read (`api.custody.stocktake.reconcile`, as the agency
page's stocktake does) and appends an `inventory-taken` record to the agency's registry chain
in the same transaction, with the counts, the commitment to the lists, and the share present
with its interval.

A handheld (a reader registered with role `handheld`) works offline: it signs each read as any
reader does, and uploads the session's reads in one batch. Each is verified as ingest verifies
a reader's message (`api.ingest.checks.verify_message`): signed by the session's handheld and
no other, a well-formed observation of it, read inside the session's window. A batch with any
read refused, or naming a number the handheld already spent, is refused whole and nothing is
stored. Accepted reads are kept as observations, like a desk's, and move the last sighting of
each asset the agency may see to the handheld at the inventory's site, at the read's time
(forward only, as ingest does); custody does not change.

A site's custodian change is logged (`site-custodian`) and raises an `inventory_due` alert,
which the next completed full inventory of the site resolves.

It sits above both ingest and custody, as the routes do: it verifies a handheld's batch with
ingest's own checks and reconciles it with custody's stocktake, and custody itself never
reaches up into ingest (`tests/ledger/test_import_rules.py`).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import insert
from sqlmodel import Session, col, select

from api import webhook_outbox
from api.alert_actions import client_actor
from api.auth import Caller
from api.bulk import update_rows
from api.custody.events import AssetRow
from api.custody.facts import load_asset_rows
from api.custody.rules import AlertKind
from api.custody.stocktake import Reconciled, expected_at, reconcile
from api.custody.transfers import CustodyRefused
from api.db import table
from api.ingest.checks import (
    ClockPolicy,
    InboundMessage,
    Rejected,
    RejectReason,
    Verified,
    reader_key,
    verify_message,
)
from api.ingest.record import observation_rows, sight
from api.ingest.topics import EVENTS, ReaderTopic
from api.logstore import claim_log_writer
from api.models.assets import Asset, AssetShare
from api.models.custody import Alert, AlertAction
from api.models.ingest import IngestedObservation
from api.models.inventories import (
    MAX_INVENTORY_ITEMS,
    MAX_SAMPLED_POPULATION,
    Inventory,
    InventoryMode,
    InventoryStatus,
)
from api.models.people import Badge, Person
from api.models.registry import Reader, ReaderRole, ReaderStatus, Site
from api.registry_log import Change, last_logged, log_registry
from api.scoping import asset_visible, own_row
from ledger.core.records import INVENTORY_TAKEN, SITE_CUSTODIAN, format_time
from ledger.core.sampling import draw, list_hash, reconciliation_hash, sample_size, share_interval

MAX_UPLOAD_READS: Final = 20_000
"""Reads in one handheld batch: one per tag of the largest store counted in full
(`MAX_INVENTORY_ITEMS`; a handheld sends each tag once a session)."""
MAX_UPLOAD_BYTES: Final = 24 * 1024 * 1024
"""A batch's body: `MAX_UPLOAD_READS` envelopes of about 450 bytes, in hex, with room."""
DUE_DETAIL: Final = "custodian changed: a full inventory of the site is due"

_OBSERVATIONS = table(IngestedObservation)
_ASSETS = table(Asset)


class UploadRefused(ValueError):
    """A handheld batch that is stored in no part, and why."""


def looked_for(inventory: Inventory) -> list[str]:
    """The items the session looks for: all the site's, or the sample its seed draws."""
    if inventory.seed is None:
        return list(inventory.population)
    size = sample_size(len(inventory.population), inventory.confidence_bp, inventory.margin_bp)
    return draw(bytes.fromhex(inventory.seed), inventory.population, size)


def _officer(session: Session, caller: Caller, officer_id: str) -> Person:
    person = own_row(session, Person, caller.agency_id, officer_id)
    if person is None or not person.active:
        raise CustodyRefused(f"{officer_id!r} is not an active person of your agency")
    return person


def open_inventory(session: Session, caller: Caller, *, site: Site, reader: Reader,
                   officer_id: str, mode: InventoryMode, confidence_bp: int, margin_bp: int,
                   now: datetime) -> Inventory:
    """Open a stocktake of `site` read by `reader` (a desk there, or a handheld), carried out
    by `officer_id`; a sampled one draws its sample now."""
    _claim(session, now)
    _officer(session, caller, officer_id)
    if reader.status != ReaderStatus.ACTIVE:
        raise CustodyRefused(f"reader {reader.id} is revoked")
    if reader.role != ReaderRole.HANDHELD and reader.site_id != site.id:
        raise CustodyRefused(f"reader {reader.id} stands at site {reader.site_id}: a desk "
                             "counts its own site (carry a handheld elsewhere)")
    if session.exec(select(Inventory.id).where(
            Inventory.agency_id == caller.agency_id, Inventory.site_id == site.id,
            Inventory.status == InventoryStatus.OPEN.value)).first() is not None:
        raise CustodyRefused(f"an inventory of site {site.id} is open: complete it first")
    most = MAX_INVENTORY_ITEMS if mode == InventoryMode.FULL else MAX_SAMPLED_POPULATION
    population = sorted(expected_at(session, caller, site.id, most + 1))
    if len(population) > most:
        raise CustodyRefused(f"site {site.id} holds more than {most} items: "
                             + ("take a sampled inventory" if mode == InventoryMode.FULL
                                else "too many to draw from in one session"))
    inventory = Inventory(agency_id=caller.agency_id, site_id=site.id, reader_id=reader.id,
                          officer_id=officer_id, mode=mode.value, population=population,
                          opened_at=now)
    if mode == InventoryMode.SAMPLED:
        inventory.confidence_bp, inventory.margin_bp = confidence_bp, margin_bp
        inventory.seed = secrets.token_bytes(32).hex()
    session.add(inventory)
    return inventory


def _claim(session: Session, now: datetime) -> None:
    """Become the log's only writer first, as `log_registry` will (every log, so that its own
    claim takes nothing more): two requests completing or opening a session of one site then
    take turns, and the second sees what the first did."""
    claim_log_writer(session, now)


def _open(session: Session, inventory: Inventory, now: datetime) -> None:
    """Claim the writer, then read the session again: it must still be open."""
    _claim(session, now)
    session.refresh(inventory, with_for_update=True)
    if inventory.status != InventoryStatus.OPEN.value:
        raise CustodyRefused(f"inventory {inventory.id} is already completed")


def complete_from_desk(session: Session, caller: Caller, inventory: Inventory,
                       now: datetime) -> Inventory:
    """Complete a desk's session: its reader's reads since the session opened."""
    _open(session, inventory, now)
    reader = session.get(Reader, inventory.reader_id)
    if reader is not None and reader.role == ReaderRole.HANDHELD:
        raise CustodyRefused("a handheld's session is completed by uploading its reads")
    epcs = session.exec(select(IngestedObservation.epc_hex).where(
        IngestedObservation.device_id == inventory.reader_id,
        col(IngestedObservation.observed_at) >= inventory.opened_at,
        col(IngestedObservation.observed_at) <= now).distinct()).all()
    return _finish(session, caller, inventory, inventory.opened_at, now, set(epcs), now)


@dataclass(frozen=True, slots=True)
class Upload:
    """A handheld's batch: when its walk started and ended, and its signed reads (canonical
    envelope bytes, as the agent publishes them)."""

    started_at: datetime
    ended_at: datetime
    envelopes: Sequence[bytes]


def upload(session: Session, caller: Caller, inventory: Inventory, batch: Upload,
           now: datetime) -> Inventory:
    """Complete a handheld's session from its batch, or refuse the batch whole
    (`UploadRefused`, nothing stored)."""
    _open(session, inventory, now)
    reader = session.get(Reader, inventory.reader_id)
    if reader is None or reader.role != ReaderRole.HANDHELD:
        raise UploadRefused("only a handheld's session takes an upload; a desk's session is "
                            "completed from the reads it published")
    if reader.status != ReaderStatus.ACTIVE:
        raise UploadRefused(f"handheld {reader.id} is revoked")
    if not inventory.opened_at <= batch.started_at <= batch.ended_at:
        raise UploadRefused("the walk must start after the session opened and end after it "
                            "started")
    if batch.ended_at > now:  # the log's record of it may not end after it is written
        raise UploadRefused("the walk ends after now: upload it once it is over (or check "
                            "the handheld's clock)")
    if not batch.envelopes:
        raise UploadRefused("the batch holds no reads")
    if len(batch.envelopes) > MAX_UPLOAD_READS:
        raise UploadRefused(f"the batch holds {len(batch.envelopes)} reads, limit is "
                            f"{MAX_UPLOAD_READS}")
    verified = _verified(reader, batch)
    _unspent(session, verified)
    session.connection().execute(insert(_OBSERVATIONS), observation_rows(verified, now))
    epcs = {item.observation.epc for item in verified}
    _sighted(session, caller, inventory, verified, epcs)
    return _finish(session, caller, inventory, batch.started_at, batch.ended_at, epcs, now)


def _verified(reader: Reader, batch: Upload) -> list[Verified]:
    """Every read of the batch verified as ingest verifies a message of `reader`, in its
    window; the first refusal refuses the batch."""
    key = reader_key(reader)
    lookup = {reader.key_id: key}
    topic = ReaderTopic(reader.agency_id, reader.site_id, reader.id).topic(EVENTS)
    clock = ClockPolicy(now=batch.ended_at, max_future=timedelta(0),
                        max_age=batch.ended_at - batch.started_at)
    verified: list[Verified] = []
    seqs: set[int] = set()
    for index, envelope in enumerate(batch.envelopes):
        result = verify_message(InboundMessage(topic, envelope), lookup, clock)
        if isinstance(result, Rejected):
            raise UploadRefused(f"read {index}: {_why(result, reader)}")
        if result.observation.seq in seqs:
            raise UploadRefused(f"read {index}: seq {result.observation.seq} twice in the batch")
        seqs.add(result.observation.seq)
        verified.append(result)
    return verified


def _sighted(session: Session, caller: Caller, inventory: Inventory,
             verified: Sequence[Verified], epcs: set[str]) -> None:
    """Move the last sighting of each asset the batch read that the caller may see (its own,
    or lent to it: ingest's rule, `BatchFacts.asset_for`) to the handheld, at the inventory's
    site, at the read's own time (`api.ingest.record.sight`: forward only), in one UPDATE as
    ingest writes them. Another agency's tags move nothing of its assets, and custody stays as it
    is: a stocktake counts the store, it checks nothing in."""
    latest: dict[str, datetime] = {}
    for item in verified:
        epc = item.observation.epc
        latest[epc] = max(latest.get(epc, item.observed_at), item.observed_at)
    connection = session.connection()
    found = load_asset_rows(connection, epcs)  # locked until commit, as ingest locks them
    theirs = {row.id for rows in found.values() for row in rows
              if row.agency_id != caller.agency_id}
    lent = set(session.exec(select(AssetShare.owner_id, AssetShare.asset_id).where(
        AssetShare.agency_id == caller.agency_id,
        col(AssetShare.asset_id).in_(theirs))).all()) if theirs else set()
    moved = []
    for epc, rows in found.items():
        row = _named(rows, caller.agency_id, lent)
        if row is not None and sight(row, inventory.reader_id, inventory.site_id, latest[epc]):
            moved.append(row)
    update_rows(connection, _ASSETS, [
        {"agency_id": row.agency_id, "id": row.id, "last_seen_at": row.last_seen_at,
         "last_seen_reader_id": row.last_seen_reader_id,
         "last_seen_site_id": row.last_seen_site_id} for row in moved], key=("agency_id", "id"))


def _named(rows: Sequence[AssetRow], agency_id: str,
           lent: set[tuple[str, str]]) -> AssetRow | None:
    """The asset a tag names for agency `agency_id` (`rows`: every agency's with that EPC, in
    agency order): its own, else one lent to it (ingest's rule), else none of its items."""
    own = next((row for row in rows if row.agency_id == agency_id), None)
    if own is not None:
        return own
    return next((row for row in rows if (row.agency_id, row.id) in lent), None)


def _why(rejected: Rejected, reader: Reader) -> str:
    if rejected.reason == RejectReason.UNKNOWN_DEVICE:
        return f"not signed by handheld {reader.id} ({rejected.detail})"
    if rejected.reason == RejectReason.CLOCK_SKEW:
        return f"read outside the session's window ({rejected.detail})"
    return f"{rejected.reason}: {rejected.detail}"


def _unspent(session: Session, verified: list[Verified]) -> None:
    """Refuse a batch naming a number its handheld already spent (a replay, or a reused
    number): the observation table keeps each (device, seq) once."""
    device = verified[0].observation.device
    seqs = [item.observation.seq for item in verified]
    spent = session.exec(select(IngestedObservation.seq).where(
        IngestedObservation.device_id == device,
        col(IngestedObservation.seq).in_(seqs)).limit(1)).first()
    if spent is not None:
        raise UploadRefused(f"handheld {device} already sent seq {spent}: a replayed batch")


def _reconciled(session: Session, caller: Caller, inventory: Inventory,
                epcs: set[str]) -> Reconciled:
    """The session's lists: the items looked for against the tags read (badges are people,
    not kit; a tag the caller may not see is unknown to it)."""
    items: dict[str, str] = {}
    if epcs:
        for epc, agency_id, asset_id in session.exec(
                select(Asset.epc_hex, Asset.agency_id, Asset.id).where(
                    asset_visible(caller), col(Asset.epc_hex).in_(epcs))
                .order_by(col(Asset.agency_id))):
            if epc not in items or agency_id == caller.agency_id:
                items[epc] = asset_id
    badges = set(session.exec(select(Badge.epc_hex).where(
        Badge.agency_id == caller.agency_id, col(Badge.epc_hex).in_(epcs)))) if epcs else set()
    return reconcile(looked_for(inventory), inventory.population, set(items.values()),
                     epcs - set(items) - badges)


def _finish(session: Session, caller: Caller, inventory: Inventory, started: datetime,
            ended: datetime, epcs: set[str], now: datetime) -> Inventory:
    """Reconcile, log the `inventory-taken` record and mark the session completed."""
    lists = _reconciled(session, caller, inventory, epcs)
    population = len(inventory.population)
    interval = share_interval(len(lists.found), len(lists.expected), population,
                              inventory.confidence_bp)
    officer = _officer(session, caller, inventory.officer_id)
    by_name = {"expected": lists.expected, "found": lists.found, "missing": lists.missing,
               "unexpected": lists.unexpected, "unknown": lists.unknown}
    change = Change(INVENTORY_TAKEN, {
        "site": inventory.site_id, "reader": inventory.reader_id, "by": officer.commitment,
        "started": format_time(started), "ended": format_time(ended), "mode": inventory.mode,
        "population": population,
        "population_hash": list_hash(inventory.population).hex(),
        "sample": len(lists.expected), "seed": inventory.seed,
        "confidence_bp": inventory.confidence_bp, "margin_bp": inventory.margin_bp,
        **{name: len(values) for name, values in by_name.items()},
        "lists": reconciliation_hash(by_name).hex(),
        "share_low_bp": interval.low_bp, "share_high_bp": interval.high_bp})
    log_registry(session, caller.agency_id, [change], now)
    leaf, record_hash = last_logged(session, caller.agency_id, ("agency", caller.agency_id))
    inventory.status = InventoryStatus.COMPLETED.value
    inventory.lists = by_name
    inventory.started_at, inventory.ended_at = started, ended
    inventory.share_low_bp, inventory.share_high_bp = interval.low_bp, interval.high_bp
    inventory.leaf_index = leaf
    inventory.record_hash = record_hash
    session.add(inventory)
    if inventory.mode == InventoryMode.FULL.value:
        _resolve_due(session, caller, inventory, now)
    webhook_outbox.property_room_event(session, caller.agency_id, "inventory.taken", {
        "inventory_id": inventory.id, "site_id": inventory.site_id, "mode": inventory.mode,
        "leaf_index": leaf, "record_hash": inventory.record_hash,
        **{name: len(values) for name, values in by_name.items()},
        "share_low_bp": interval.low_bp, "share_high_bp": interval.high_bp}, now)
    return inventory


def _resolve_due(session: Session, caller: Caller, inventory: Inventory, now: datetime) -> None:
    """A completed full inventory resolves the site's open `inventory_due` alerts."""
    actor = client_actor(session, caller.client_id)
    for alert in session.exec(select(Alert).where(
            Alert.agency_id == caller.agency_id, Alert.kind == AlertKind.INVENTORY_DUE.value,
            Alert.site_id == inventory.site_id, col(Alert.resolved_at).is_(None))):
        assert alert.id is not None
        alert.resolved_at = now
        session.add(alert)
        session.add(AlertAction(
            alert_id=alert.id, agency_id=alert.agency_id, action="resolve",
            note=f"full inventory {inventory.id} completed (leaf {inventory.leaf_index})",
            actor_kind=actor.kind, actor_id=actor.actor_id, actor_name=actor.name,
            created_at=now))


def set_custodian(session: Session, caller: Caller, site: Site, custodian: Person | None,
                  now: datetime) -> Site:
    """Make `custodian` (None: nobody) answer for `site`, logged as `site-custodian`; a full
    inventory then falls due (an `inventory_due` alert, unless one is open)."""
    if custodian is not None and (custodian.agency_id != caller.agency_id
                                  or not custodian.active):
        raise CustodyRefused(f"{custodian.id!r} is not an active person of your agency")
    _claim(session, now)
    session.refresh(site, with_for_update=True)
    new_id = None if custodian is None else custodian.id
    if site.custodian_id == new_id:
        raise CustodyRefused(f"site {site.id}'s custodian is {new_id!r} already")
    log_registry(session, caller.agency_id, [Change(SITE_CUSTODIAN, {
        "site": site.id, "custodian": None if custodian is None else custodian.commitment})],
                 now)
    site.custodian_id = new_id
    session.add(site)
    due = session.exec(select(Alert.id).where(
        Alert.agency_id == caller.agency_id, Alert.kind == AlertKind.INVENTORY_DUE.value,
        Alert.site_id == site.id, col(Alert.resolved_at).is_(None))).first()
    if due is None:
        webhook_outbox.raise_alerts(session, [{
            "agency_id": caller.agency_id, "kind": AlertKind.INVENTORY_DUE.value,
            "site_id": site.id, "detail": DUE_DETAIL, "created_at": now}])
    return site
