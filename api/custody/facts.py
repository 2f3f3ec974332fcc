"""What the custody rules read about a batch, loaded once in its write transaction.

A batch's readers, the assets its tags name (locked until commit) with their class policy
and shares, the badges among its tags and their holders, the desk sessions its reads name
and the people in them, and the commitments the log names holders by: each a few Core
queries per batch, never one per read. Later look-ups (reads held for a badge, reads a
refill released) add only what is not known yet.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, select
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from api.custody.events import AssetRow
from api.custody.reads import VerifiedRead
from api.custody.rules import AssetView, PersonView, ReaderView
from api.db import ByIds, among, table
from api.models.assets import Asset, AssetClass, AssetShare, AssetStatus, HolderKind
from api.models.custody import DeskSession
from api.models.people import Badge, Person
from api.models.registry import Reader, ReaderRole

_ASSETS = table(Asset)
_BADGES = table(Badge)
_READERS = table(Reader)
_PEOPLE = table(Person)
_CLASSES = table(AssetClass)
_SHARES = table(AssetShare)

_ASSET_COLUMNS: Final = (
    "id", "agency_id", "class_id", "status", "holder_kind", "holder_ref", "due_at",
    "chain_next_seq", "chain_prev", "last_seen_at", "last_seen_reader_id", "last_seen_site_id",
)

# Core statements built once (`ByIds`): through the ORM, building, caching and loading them
# cost more than running them.
_ASSETS_BY_EPC = ByIds(_ASSETS.c.epc_hex, lambda where: select(
    _ASSETS.c.epc_hex, *(_ASSETS.c[name] for name in _ASSET_COLUMNS)
).where(where).with_for_update())
_BADGES_BY_EPC = ByIds(_BADGES.c.epc_hex, lambda where: select(
    _BADGES.c.epc_hex, _BADGES.c.person_id).where(where))
_READERS_BY_ID = ByIds(_READERS.c.id, lambda where: select(
    _READERS.c.id, _READERS.c.agency_id, _READERS.c.site_id, _READERS.c.role).where(where))
_PEOPLE_BY_ID = ByIds(_PEOPLE.c.id, lambda where: select(
    _PEOPLE.c.id, _PEOPLE.c.agency_id, _PEOPLE.c.qualifications, _PEOPLE.c.active,
    _PEOPLE.c.commitment).where(where))
_CLASSES_BY_ID = ByIds(_CLASSES.c.id, lambda where: select(
    _CLASSES.c.id, _CLASSES.c.required_qualification, _CLASSES.c.dual_signoff,
    _CLASSES.c.loan_days).where(where))
_COMMITMENTS_BY_ID = ByIds(_PEOPLE.c.id, lambda where: select(
    _PEOPLE.c.id, _PEOPLE.c.commitment).where(where))
_SHARES_BY_ASSET = ByIds(_SHARES.c.asset_id, lambda where: select(
    _SHARES.c.asset_id, _SHARES.c.agency_id).where(where))


def load_asset_rows(connection: Connection, epcs: Collection[str]) -> dict[str, AssetRow]:
    """The assets tagged `epcs`, by EPC, locked until commit (on PostgreSQL; SQLite's writer
    lock is already held by the batch)."""
    if not epcs:
        return {}
    return {row[0]: AssetRow(*row[1:]) for row in _ASSETS_BY_EPC(connection, epcs)}


def badge_holders(connection: Connection, epcs: Collection[str]) -> dict[str, str]:
    """Badge EPC -> person id, for those of `epcs` that are badges."""
    return {epc: person_id for epc, person_id in _BADGES_BY_EPC(connection, epcs)}


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """What the rules read of an asset's class."""

    required_qualification: str | None
    dual_signoff: bool
    loan_days: int | None


class BatchFacts:
    """The state the rules read, by key: each map holds what has been loaded so far."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.readers: dict[str, ReaderView] = {}
        self.assets: dict[str, AssetRow] = {}
        """By EPC; locked until commit, and moved in memory by sightings and rulings."""
        self.classes: dict[str, ClassPolicy] = {}
        self.shares: dict[str, frozenset[str]] = {}
        """Asset id -> the agencies it is shared with (absent: none)."""
        self.badges: dict[str, str] = {}
        """Badge EPC -> person id."""
        self.people: dict[str, PersonView] = {}
        self.commitments: dict[str, str] = {}
        """Person id -> the salted commitment the log names them by."""
        self.sessions: dict[tuple[str, str], DeskSession] = {}
        """(reader id, session id) -> the desk session, as stored or opened in this batch."""
        self._tags_read: set[str] = set()
        """EPCs whose badge and asset have been looked up (found or not)."""
        self._sessions_read: set[tuple[str, str | None]] = set()
        """(reader id, session id) of the desk sessions looked up (found or not)."""

    def load(self, reads: Collection[VerifiedRead]) -> None:
        """What ruling on `reads` takes that is not known yet: their readers, the assets and
        badges their tags name, the desk sessions they name and the people in them."""
        if not reads:
            return
        connection = self._session.connection()
        reader_ids = {i.reader.reader_id for i in reads} - self.readers.keys()
        if reader_ids:
            self.readers.update({
                reader_id: ReaderView(reader_id, agency_id, site_id, ReaderRole(role))
                for reader_id, agency_id, site_id, role in _READERS_BY_ID(connection, reader_ids)
            })
        epcs = {i.observation.epc for i in reads} - self._tags_read
        self._tags_read |= epcs
        if epcs:
            self.badges.update(badge_holders(connection, epcs))
        keys = {(i.reader.reader_id, i.observation.session) for i in reads
                if i.observation.session} - self._sessions_read
        self._sessions_read |= keys
        self._load_sessions(keys)
        person_ids = set(self.badges.values()) | {
            p for s in self.sessions.values() for p in s.person_ids}
        person_ids -= self.people.keys()
        if person_ids:
            for person_id, agency_id, qualifications, active, commitment in _PEOPLE_BY_ID(
                    connection, person_ids):
                self.people[person_id] = PersonView(person_id, agency_id,
                                                    frozenset(qualifications), active)
                self.commitments[person_id] = commitment
        self.add_assets(epcs - self.assets.keys())

    def _load_sessions(self, keys: Collection[tuple[str, str | None]]) -> None:
        if not keys:
            return
        self.sessions.update({
            (s.reader_id, s.session): s
            for s in self._session.exec(orm_select(DeskSession).where(
                among(col(DeskSession.reader_id), {k[0] for k in keys}, self._session),
                among(col(DeskSession.session), {k[1] for k in keys}, self._session),
            ))
        })

    def add_assets(self, epcs: Collection[str]) -> None:
        """Add the assets tagged `epcs` (locked until commit), their classes, shares and the
        commitments of the people holding them."""
        if epcs:
            self.add_loaded_assets(load_asset_rows(self._session.connection(), epcs))

    def add_loaded_assets(self, assets: dict[str, AssetRow]) -> None:
        """Add `assets` (as `load_asset_rows` read them in this transaction) with their classes,
        shares and the commitments of the people holding them."""
        if not assets:
            return
        connection = self._session.connection()
        class_ids = {a.class_id for a in assets.values()} - self.classes.keys()
        if class_ids:
            self.classes.update({
                class_id: ClassPolicy(required, dual, loan_days)
                for class_id, required, dual, loan_days in _CLASSES_BY_ID(connection, class_ids)
            })
        shares: dict[str, set[str]] = defaultdict(set)
        for asset_id, agency_id in _SHARES_BY_ASSET(connection, {a.id for a in assets.values()}):
            shares[asset_id].add(agency_id)
        self.shares.update({k: frozenset(v) for k, v in shares.items()})
        self.assets.update(assets)
        # The log names a holder by commitment: fetch those of the people holding these
        # assets now, in one query, rather than one per returned asset in `append_change`.
        self.add_commitments(
            a.holder_ref for a in assets.values() if a.holder_kind == HolderKind.PERSON)

    def add_commitments(self, person_ids: Iterable[str]) -> None:
        missing = set(person_ids) - self.commitments.keys()
        if missing:
            self.commitments.update({person_id: commitment for person_id, commitment
                                     in _COMMITMENTS_BY_ID(self._session.connection(), missing)})

    def asset_view(self, asset: AssetRow) -> AssetView:
        """`asset` as the rules see it, with its class policy and shares."""
        policy = self.classes.get(asset.class_id)
        return AssetView(
            asset_id=asset.id, agency_id=asset.agency_id,
            shared_with=self.shares.get(asset.id, frozenset()),
            status=AssetStatus(asset.status), holder_kind=HolderKind(asset.holder_kind),
            holder_ref=asset.holder_ref,
            required_qualification=policy.required_qualification if policy else None,
            dual_signoff=policy.dual_signoff if policy else False,
        )
