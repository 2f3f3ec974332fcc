"""Appending a custody change to the record: the asset's hash chain, the Merkle log, the row.

Called inside the write transaction that changes the asset (the log writers' lock already
claimed); the leaf goes to the log of the asset's owning agency, so the asset's state, its chain
head, the `custody_event` row and the log's nodes commit together or not at all.
People appear only as their salted commitments.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from sqlalchemy import insert
from sqlmodel import Session, select

from api import webhook_outbox
from api.db import table
from api.logstore import AgencyLogs
from api.models.assets import Asset, AssetStatus, HolderKind
from api.models.custody import CustodyEventRow
from api.models.people import Person
from ledger.core import hashing
from ledger.core.hashchain import ChainHead, check_link
from ledger.core.records import CustodyEvent, Holder, format_time

INSERT_EVENT = insert(table(CustodyEventRow))


@dataclass(frozen=True, slots=True)
class CustodyChange:
    """One accepted change of `asset`'s custody, as the rules or an API call decided it."""

    action: str
    holder_kind: HolderKind
    holder_ref: str
    new_status: AssetStatus
    time: datetime
    observations: tuple[bytes, ...] = ()
    authorisers: tuple[str, ...] = ()
    reader_id: str | None = None
    due_at: datetime | None = None
    manual: str | None = None
    """Why an officer entered the change by hand at desk `reader_id` (no reads)."""
    acting_agency: str | None = None
    """The agency whose site or people the change names (the new holder, the authorisers):
    the reader's, when another agency's desk rules on an asset shared with it; None, the
    owner's."""

    def holder_agency(self, owner: str) -> str:
        """The agency the new holder belongs to: an agency holder is itself."""
        if self.holder_kind == HolderKind.AGENCY:
            return self.holder_ref
        return self.acting_agency or owner


@dataclass(slots=True)
class AssetRow:
    """An asset's custody state as plain values: what the rules read and `append_change`
    moves (status, holder, due time, chain head), and where it was last seen. The ingest hot
    path uses it instead of an ORM `Asset`, which costs a unit-of-work object per asset."""

    id: str
    agency_id: str
    class_id: str
    status: str
    holder_kind: str
    holder_ref: str
    holder_agency_id: str
    due_at: datetime | None
    chain_next_seq: int
    chain_prev: str
    last_seen_at: datetime | None
    last_seen_reader_id: str | None
    last_seen_site_id: str | None


class EventSink(Protocol):
    """Where `append_change` writes: at once (`SessionSink`) or gathered for one bulk write
    per batch (`api.custody.writes.CustodyWrites`), always in the caller's transaction.
    Each event row also goes with its webhook events (`api.webhook_outbox.custody_events`)."""

    def insert_event(self, row: dict[str, Any]) -> None: ...

    def moved(self, asset: Asset | AssetRow) -> None: ...


class SessionSink:
    """Writes each event row and asset change through the session straight away."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def insert_event(self, row: dict[str, Any]) -> None:
        connection = self._session.connection()
        connection.execute(INSERT_EVENT, row)
        webhook_outbox.enqueue_custody_events(connection, [row])

    def moved(self, asset: Asset | AssetRow) -> None:
        self._session.add(asset)


_record_time = lru_cache(maxsize=1)(format_time)
"""`format_time` remembering its last answer: a batch's changes share its one `now` (about
3 µs a change otherwise); equal instants have the same UTC spelling."""


class UnknownPerson(LookupError):
    """A change names a person with no row: their commitment cannot be found."""


def _log_ref(
    session: Session, kind: HolderKind, ref: str, agency_id: str,
    commitments: MutableMapping[tuple[str, str], str],
) -> str:
    """How the log names a holder: people (agency `agency_id`'s) by commitment, places and
    agencies by id."""
    if kind != HolderKind.PERSON:
        return ref
    key = (agency_id, ref)
    if key not in commitments:
        commitment = session.exec(select(Person.commitment).where(
            Person.agency_id == agency_id, Person.id == ref)).first()
        if commitment is None:
            raise UnknownPerson(f"person {ref} is not registered")
        commitments[key] = commitment
    return commitments[key]


def append_change(
    session: Session, logs: AgencyLogs, asset: Asset | AssetRow, change: CustodyChange,
    commitments: MutableMapping[tuple[str, str], str] | None = None,
    sink: EventSink | None = None,
) -> int:
    """Record `change` of `asset`: chain link, log leaf, event row, new asset state; return
    the event's leaf index in the owning agency's Merkle log.

    `commitments` ((agency, person id) -> commitment) is a cache the caller may share across
    a batch; `sink` receives the writes (default: through `session` at once).
    """
    commitments = {} if commitments is None else commitments
    sink = SessionSink(session) if sink is None else sink
    holder_from = None
    if change.action != "register":  # a genesis event comes from nowhere
        kind = HolderKind(asset.holder_kind)
        holder_from = Holder(kind.value, _log_ref(session, kind, asset.holder_ref,
                                                  asset.holder_agency_id, commitments))
    holder_agency = change.holder_agency(asset.agency_id)
    holder_to = Holder(change.holder_kind.value, _log_ref(
        session, change.holder_kind, change.holder_ref, holder_agency, commitments))
    acting = change.acting_agency or asset.agency_id
    event = CustodyEvent(
        agency=asset.agency_id, asset=asset.id, seq=asset.chain_next_seq, prev=asset.chain_prev,
        action=change.action, time=_record_time(change.time), holder_from=holder_from,
        holder_to=holder_to, observations=tuple(h.hex() for h in change.observations),
        authorised_by=tuple(
            _log_ref(session, HolderKind.PERSON, p, acting, commitments)
            for p in change.authorisers
        ),
        reader=change.reader_id, manual=change.manual,
    )
    check_link(ChainHead(asset.id, asset.chain_next_seq, asset.chain_prev), event)
    record = event.to_bytes()
    digest = hashing.domain_hash(hashing.CUSTODY_EVENT, record)  # = records.event_hash(event)
    leaf_index = logs.of(asset.agency_id).append(record)
    sink.insert_event({
        "agency_id": asset.agency_id, "asset_id": asset.id, "seq": event.seq,
        "action": event.action, "record": record, "event_hash": digest,
        "leaf_index": leaf_index, "created_at": change.time,
    })
    asset.chain_next_seq = event.seq + 1
    asset.chain_prev = digest.hex()
    asset.status = change.new_status
    asset.holder_kind = change.holder_kind
    asset.holder_ref = change.holder_ref
    asset.holder_agency_id = holder_agency
    asset.due_at = change.due_at
    sink.moved(asset)
    return leaf_index
