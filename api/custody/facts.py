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
    "id", "agency_id", "class_id", "status", "holder_kind", "holder_ref", "holder_agency_id",
    "due_at", "chain_next_seq", "chain_prev", "last_seen_at", "last_seen_reader_id",
    "last_seen_site_id",
)

# Core statements built once (`ByIds`): through the ORM, building, caching and loading them
# cost more than running them. Ids and EPCs are per agency: a look-up by id or EPC finds every
# agency's, and the caller keeps the (agency, id) it wants.
_ASSETS_BY_EPC = ByIds(_ASSETS.c.epc_hex, lambda where: select(
    _ASSETS.c.epc_hex, *(_ASSETS.c[name] for name in _ASSET_COLUMNS)
).where(where).order_by(_ASSETS.c.agency_id).with_for_update())
_BADGES_BY_EPC = ByIds(_BADGES.c.epc_hex, lambda where: select(
    _BADGES.c.agency_id, _BADGES.c.epc_hex, _BADGES.c.person_id).where(where))
_READERS_BY_ID = ByIds(_READERS.c.id, lambda where: select(
    _READERS.c.id, _READERS.c.agency_id, _READERS.c.site_id, _READERS.c.role).where(where))
_PEOPLE_BY_ID = ByIds(_PEOPLE.c.id, lambda where: select(
    _PEOPLE.c.agency_id, _PEOPLE.c.id, _PEOPLE.c.qualifications, _PEOPLE.c.active,
    _PEOPLE.c.commitment).where(where))
_CLASSES_BY_ID = ByIds(_CLASSES.c.id, lambda where: select(
    _CLASSES.c.agency_id, _CLASSES.c.id, _CLASSES.c.required_qualification,
    _CLASSES.c.dual_signoff, _CLASSES.c.loan_days).where(where))
_COMMITMENTS_BY_ID = ByIds(_PEOPLE.c.id, lambda where: select(
    _PEOPLE.c.agency_id, _PEOPLE.c.id, _PEOPLE.c.commitment).where(where))
_SHARES_BY_ASSET = ByIds(_SHARES.c.asset_id, lambda where: select(
    _SHARES.c.owner_id, _SHARES.c.asset_id, _SHARES.c.agency_id).where(where))

Key = tuple[str, str]
"""(agency id, id): a site, person, class or asset, each agency's ids being its own."""


def load_asset_rows(connection: Connection, epcs: Collection[str]) -> dict[str, list[AssetRow]]:
    """Every agency's assets tagged `epcs`, by EPC (in agency order), locked until commit (on
    PostgreSQL; SQLite's writer lock is already held by the batch)."""
    if not epcs:
        return {}
    found: dict[str, list[AssetRow]] = defaultdict(list)
    for row in _ASSETS_BY_EPC(connection, epcs):
        found[row[0]].append(AssetRow(*row[1:]))
    return dict(found)


def badge_holders(connection: Connection, epcs: Collection[str]) -> dict[Key, str]:
    """(agency, badge EPC) -> person id, for those of `epcs` that are some agency's badges."""
    return {(agency_id, epc): person_id
            for agency_id, epc, person_id in _BADGES_BY_EPC(connection, epcs)}


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """What the rules read of an asset's class."""

    required_qualification: str | None
    dual_signoff: bool
    loan_days: int | None


class BatchFacts:
    """The state the rules read, by key: each map holds what has been loaded so far.

    A reader speaks for its agency, whose ids and EPCs are its own: `badge_holder` and
    `asset_for` find a tag's meaning for the reader's agency."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.readers: dict[str, ReaderView] = {}
        self.assets: dict[Key, AssetRow] = {}
        """By (owner, id); locked until commit, and moved in memory by sightings and rulings."""
        self.tags: dict[str, list[Key]] = {}
        """EPC -> the assets tagged with it, one per agency at most (agency order)."""
        self.classes: dict[Key, ClassPolicy] = {}
        self.shares: dict[Key, frozenset[str]] = {}
        """(owner, asset id) -> the agencies it is shared with (absent: none)."""
        self.badges: dict[Key, str] = {}
        """(agency, badge EPC) -> person id."""
        self.people: dict[Key, PersonView] = {}
        self.commitments: dict[Key, str] = {}
        """(agency, person id) -> the salted commitment the log names them by."""
        self.sessions: dict[tuple[str, str], DeskSession] = {}
        """(reader id, session id) -> the desk session, as stored or opened in this batch."""
        self._tags_read: set[str] = set()
        """EPCs whose badges and assets have been looked up (found or not)."""
        self._sessions_read: set[tuple[str, str | None]] = set()
        """(reader id, session id) of the desk sessions looked up (found or not)."""

    def badge_holder(self, agency_id: str, epc: str) -> PersonView | None:
        """The person of agency `agency_id` whose badge `epc` is, if loaded."""
        person_id = self.badges.get((agency_id, epc))
        return None if person_id is None else self.people.get((agency_id, person_id))

    def is_badge(self, agency_id: str, epc: str) -> bool:
        return (agency_id, epc) in self.badges

    def asset_for(self, agency_id: str, epc: str) -> AssetRow | None:
        """The asset a read of `epc` by agency `agency_id`'s reader names: the agency's own,
        else one shared with it, else another agency's (a foreign sighting)."""
        keys = self.tags.get(epc)
        if not keys:
            return None
        shared = None
        for key in keys:
            if key[0] == agency_id:
                return self.assets[key]
            if shared is None and agency_id in self.shares.get(key, frozenset()):
                shared = key
        return self.assets[shared if shared is not None else keys[0]]

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
        if epcs:
            self.badges.update(badge_holders(connection, epcs))
        keys = {(i.reader.reader_id, i.observation.session) for i in reads
                if i.observation.session} - self._sessions_read
        self._sessions_read |= keys
        self._load_sessions(keys)
        wanted = {(agency_id, person_id) for (agency_id, _), person_id in self.badges.items()}
        for (reader_id, _), desk in self.sessions.items():
            reader = self.readers.get(reader_id)
            if reader is not None:
                wanted.update((reader.agency_id, p) for p in desk.person_ids)
        wanted -= self.people.keys()
        if wanted:
            for agency_id, person_id, qualifications, active, commitment in _PEOPLE_BY_ID(
                    connection, {p for _, p in wanted}):
                key = (agency_id, person_id)
                if key in wanted:
                    self.people[key] = PersonView(person_id, agency_id,
                                                  frozenset(qualifications), active)
                    self.commitments[key] = commitment
        self.add_assets(epcs)

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
        """Add every agency's assets tagged `epcs` not looked up yet (locked until commit),
        their classes, shares and the commitments of the people holding them."""
        epcs = set(epcs) - self._tags_read
        self._tags_read |= epcs
        if epcs:
            self.add_loaded_assets(load_asset_rows(self._session.connection(), epcs))

    def add_loaded_assets(self, assets: dict[str, list[AssetRow]]) -> None:
        """Add `assets` (as `load_asset_rows` read them in this transaction) with their classes,
        shares and the commitments of the people holding them."""
        if not assets:
            return
        connection = self._session.connection()
        rows = [row for found in assets.values() for row in found]
        classes = {(a.agency_id, a.class_id) for a in rows} - self.classes.keys()
        if classes:
            for agency_id, class_id, required, dual, loan_days in _CLASSES_BY_ID(
                    connection, {c for _, c in classes}):
                if (agency_id, class_id) in classes:
                    self.classes[(agency_id, class_id)] = ClassPolicy(required, dual, loan_days)
        shares: dict[Key, set[str]] = defaultdict(set)
        for owner_id, asset_id, agency_id in _SHARES_BY_ASSET(connection, {a.id for a in rows}):
            shares[(owner_id, asset_id)].add(agency_id)
        self.shares.update({k: frozenset(v) for k, v in shares.items()})
        for epc, found in assets.items():
            self.tags[epc] = [(a.agency_id, a.id) for a in found]
            self.assets.update({(a.agency_id, a.id): a for a in found})
        # The log names a holder by commitment: fetch those of the people holding these
        # assets now, in one query, rather than one per returned asset in `append_change`.
        self.add_commitments(
            (a.holder_agency_id, a.holder_ref) for a in rows
            if a.holder_kind == HolderKind.PERSON)

    def add_commitments(self, people: Iterable[Key]) -> None:
        """Fetch the commitments of `people` ((agency, person id)) not known yet."""
        missing = set(people) - self.commitments.keys()
        if missing:
            self.commitments.update({
                (agency_id, person_id): commitment for agency_id, person_id, commitment
                in _COMMITMENTS_BY_ID(self._session.connection(), {p for _, p in missing})
                if (agency_id, person_id) in missing})

    def asset_view(self, asset: AssetRow) -> AssetView:
        """`asset` as the rules see it, with its class policy and shares."""
        policy = self.classes.get((asset.agency_id, asset.class_id))
        return AssetView(
            asset_id=asset.id, agency_id=asset.agency_id,
            shared_with=self.shares.get((asset.agency_id, asset.id), frozenset()),
            status=AssetStatus(asset.status), holder_kind=HolderKind(asset.holder_kind),
            holder_ref=asset.holder_ref, holder_agency_id=asset.holder_agency_id,
            required_qualification=policy.required_qualification if policy else None,
            dual_signoff=policy.dual_signoff if policy else False,
        )
