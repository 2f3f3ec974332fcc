"""Appending a custody change to the record: the asset's hash chain, the Merkle log, the row.

Called inside the write transaction that changes the asset (the log writer lock already
claimed), so the asset's state, its chain head, the `custody_event` row and the log's nodes
commit together or not at all. People appear only as their salted commitments.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session, select

from api.models.assets import Asset, AssetStatus, HolderKind
from api.models.custody import CustodyEventRow
from api.models.people import Person
from ledger.core import hashing
from ledger.core.hashchain import ChainHead, check_link
from ledger.core.records import CustodyEvent, Holder, format_time
from ledger.log import MerkleLog

_INSERT_EVENT = insert(CustodyEventRow.__table__)  # type: ignore[attr-defined]


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


class UnknownPerson(LookupError):
    """A change names a person with no row: their commitment cannot be found."""


def _log_ref(
    session: Session, kind: HolderKind, ref: str, commitments: MutableMapping[str, str]
) -> str:
    """How the log names a holder: people by commitment, places and agencies by id."""
    if kind != HolderKind.PERSON:
        return ref
    if ref not in commitments:
        commitment = session.exec(select(Person.commitment).where(Person.id == ref)).first()
        if commitment is None:
            raise UnknownPerson(f"person {ref} is not registered")
        commitments[ref] = commitment
    return commitments[ref]


def append_change(
    session: Session, log: MerkleLog, asset: Asset, change: CustodyChange,
    commitments: MutableMapping[str, str] | None = None,
) -> int:
    """Record `change` of `asset`: chain link, log leaf, event row, new asset state; return
    the event's leaf index in the Merkle log.

    `commitments` (person id -> commitment) is a cache the caller may share across a batch.
    """
    commitments = {} if commitments is None else commitments
    holder_from = None
    if change.action != "register":  # a genesis event comes from nowhere
        kind = HolderKind(asset.holder_kind)
        holder_from = Holder(kind.value, _log_ref(session, kind, asset.holder_ref, commitments))
    holder_to = Holder(change.holder_kind.value,
                       _log_ref(session, change.holder_kind, change.holder_ref, commitments))
    event = CustodyEvent(
        agency=asset.agency_id, asset=asset.id, seq=asset.chain_next_seq, prev=asset.chain_prev,
        action=change.action, time=format_time(change.time), holder_from=holder_from,
        holder_to=holder_to, observations=tuple(h.hex() for h in change.observations),
        authorised_by=tuple(
            _log_ref(session, HolderKind.PERSON, p, commitments) for p in change.authorisers
        ),
        reader=change.reader_id,
    )
    check_link(ChainHead(asset.id, asset.chain_next_seq, asset.chain_prev), event)
    record = event.to_bytes()
    digest = hashing.domain_hash(hashing.CUSTODY_EVENT, record)  # = records.event_hash(event)
    leaf_index = log.append(record)
    session.connection().execute(_INSERT_EVENT, {
        "agency_id": asset.agency_id, "asset_id": asset.id, "seq": event.seq,
        "action": event.action, "record": record, "event_hash": digest,
        "leaf_index": leaf_index, "created_at": change.time,
    })
    asset.chain_next_seq = event.seq + 1
    asset.chain_prev = digest.hex()
    asset.status = change.new_status
    asset.holder_kind = change.holder_kind
    asset.holder_ref = change.holder_ref
    asset.due_at = change.due_at
    session.add(asset)
    return leaf_index
