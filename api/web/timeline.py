"""An asset's custody timeline for the auditor's page, each step checked as it is shown.

Each stored event is re-parsed from its exact bytes, linked to the one before it (the asset's
hash chain, `ledger.core.hashchain`) and proved to sit in the owning agency's Merkle log at the
current root (`ledger.core.merkle.verify_inclusion`, with the proof served from the database).
A step that fails says what was expected and what was found, as the verifier does. The full,
operator-independent check is `kitledger verify` on the downloadable bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from api.custody.corrections import corrections_of
from api.logstore import open_log
from api.models import Asset, CustodyEventRow, Person, Reader
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.hashchain import ChainHead
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.records import CustodyEvent, Holder

MAX_TIMELINE_STEPS: Final = 500
"""Steps drawn on one page; an asset with a longer history is audited from its bundle."""


@dataclass(frozen=True, slots=True)
class StepCorrection:
    leaf_index: int
    time: str
    reason: str


@dataclass(frozen=True, slots=True)
class TimelineStep:
    seq: int
    time: str
    action: str
    holder: str
    reader: str
    authorisers: tuple[str, ...]
    verified: bool
    problem: str
    leaf_index: int
    holder_kind: str = ""
    holder_agency: str = ""
    """The agency whose site or person the holder is: the agency of the reader that made the
    step (a borrower's desk checks kit in to its own store), else the owner's."""
    manual: str | None = None
    """Why an officer entered the step by hand at the desk, if they did."""
    corrections: tuple[StepCorrection, ...] = ()
    """Corrections declaring the step wrong (the step itself stays as logged)."""
    event_hash: str = ""
    """The event's hash (hex), which its receipt is fetched by."""


@dataclass(frozen=True, slots=True)
class Timeline:
    steps: tuple[TimelineStep, ...]
    tree_size: int
    root: str
    truncated: bool

    @property
    def all_verified(self) -> bool:
        return all(step.verified for step in self.steps)


def _names(session: Session, agency_id: str) -> dict[str, str]:
    """Commitment -> pseudonymous person id, for the asset owner's people only."""
    people = session.exec(select(Person).where(Person.agency_id == agency_id))
    return {p.commitment: p.id for p in people}


def _show(holder: Holder | None, names: dict[str, str]) -> str:
    if holder is None:
        return "-"
    if holder.kind == "person":
        return names.get(holder.ref, f"person {holder.ref[:10]}…")
    return holder.ref


class _ReaderAgencies:
    """Each reader's agency, looked up once (reader ids are global)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._agencies: dict[str, str | None] = {}

    def of(self, reader_id: str) -> str | None:
        if reader_id not in self._agencies:
            reader = self._session.get(Reader, reader_id)
            self._agencies[reader_id] = reader.agency_id if reader is not None else None
        return self._agencies[reader_id]


def _holder_agency(event: CustodyEvent | None, owner: str, readers: _ReaderAgencies) -> str:
    """The agency of the step's holder: an agency holder is itself; a site or person is of
    the agency that made the step (its reader's), else of the owner."""
    if event is None or event.holder_to is None:
        return owner
    if event.holder_to.kind == "agency":
        return event.holder_to.ref
    return (readers.of(event.reader) if event.reader else None) or owner


def asset_timeline(session: Session, asset: Asset) -> Timeline:
    rows = list(session.exec(
        select(CustodyEventRow).where(CustodyEventRow.agency_id == asset.agency_id,
                                      CustodyEventRow.asset_id == asset.id)
        .order_by(col(CustodyEventRow.seq)).limit(MAX_TIMELINE_STEPS + 1)))
    truncated = len(rows) > MAX_TIMELINE_STEPS
    rows = rows[:MAX_TIMELINE_STEPS]
    log = open_log(session, asset.agency_id)
    size = log.size
    root = log.root()
    names = _names(session, asset.agency_id)
    head = ChainHead(asset=asset.id)
    readers = _ReaderAgencies(session)
    corrected: dict[int, list[StepCorrection]] = {}
    for correction, at in corrections_of(session, asset):
        corrected.setdefault(correction.get("leaf"), []).append(StepCorrection(
            at, correction.time, correction.get("reason")))
    steps = []
    for row in rows:
        problem = ""
        event: CustodyEvent | None = None
        try:
            event = CustodyEvent.from_record(parse_record(row.record))
            head = head.advance(event)
            proof = log.inclusion_proof(row.leaf_index, size)
            verify_inclusion(leaf_hash(row.record), row.leaf_index, size, proof, root)
        except LedgerError as exc:
            problem = str(exc)
        steps.append(TimelineStep(
            seq=row.seq, time=event.time if event else "?", action=row.action,
            holder=_show(event.holder_to if event else None, names),
            reader=(event.reader or "-") if event else "-",
            authorisers=tuple(names.get(a, a[:10] + "…") for a in
                              (event.authorised_by if event else ())),
            verified=not problem, problem=problem, leaf_index=row.leaf_index,
            holder_kind=event.holder_to.kind if event and event.holder_to else "",
            holder_agency=_holder_agency(event, asset.agency_id, readers),
            manual=event.manual if event else None,
            corrections=tuple(corrected.get(row.leaf_index, ())),
            event_hash=bytes(row.event_hash).hex()))
    return Timeline(tuple(steps), size, root.hex(), truncated)
