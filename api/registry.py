"""Registry operations: keyword-only functions the REST routes and the tests share.

Each works inside the caller's session and leaves committing to it. Every change the custody
rules read (a reader, a class policy, an asset's tag, a share) is logged as a registry record
(`api.registry_log`) in the same transaction. Registering an asset writes its genesis custody
event ("register", into its home store) after its tag's record, so every asset's chain starts
in the log; erasing a person deletes the opening of their commitment, never a log row.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection
from datetime import datetime

from sqlmodel import Session, col, select

from api.custody.events import CustodyChange, append_change
from api.logstore import appending_log, claim_log_writer
from api.models.assets import (
    Asset,
    AssetClass,
    AssetClassCreate,
    AssetClassUpdate,
    AssetCreate,
    AssetShare,
    AssetStatus,
    AssetUpdate,
    HolderKind,
    checked_epc_uri,
)
from api.models.people import Badge, Person, PersonCreate, PersonSecret, PersonUpdate
from api.models.registry import (
    Reader,
    ReaderCreate,
    ReaderStatus,
    Site,
    SiteCreate,
    SiteUpdate,
)
from api.registry_log import (
    append_registry,
    asset_registered,
    class_policy,
    log_registry,
    reader_registered,
    reader_revoked,
    share,
)
from ledger.core.commitments import MIN_SALT_BYTES, PERSON, commit
from ledger.core.envelope import key_id, public_key_from_raw


class RegistryError(ValueError):
    """A registry change that contradicts what is registered (unknown site, taken EPC...)."""


def create_site(session: Session, *, agency_id: str, data: SiteCreate) -> Site:
    """Create a site (store, station, vehicle); sites are not logged: readers and assets name
    them, and those are."""
    site = Site(id=data.id, name=data.name, agency_id=agency_id)
    session.add(site)
    return site


def register_reader(
    session: Session, *, agency_id: str, data: ReaderCreate, now: datetime
) -> Reader:
    """Register a reader from what its agent's `enroll` printed; the key id is derived here."""
    public_key = public_key_from_raw(bytes.fromhex(data.public_key))
    reader = Reader(
        id=data.id, agency_id=agency_id, site_id=data.site_id, role=data.role, zones=data.zones,
        public_key=data.public_key, key_id=key_id(public_key), registered_at=now,
    )
    session.add(reader)
    log_registry(session, agency_id, [reader_registered(reader)], now)
    return reader


def revoke_reader(session: Session, *, reader: Reader, now: datetime) -> Reader:
    """Revoke `reader`: its messages are refused from now on; its history stays verifiable."""
    if reader.status == ReaderStatus.REVOKED:  # revoked once, logged once
        return reader
    reader.status = ReaderStatus.REVOKED
    reader.revoked_at = now
    session.add(reader)
    log_registry(session, reader.agency_id, [reader_revoked(reader)], now)
    return reader


def create_class(session: Session, *, agency_id: str, data: AssetClassCreate,
                 now: datetime) -> AssetClass:
    """Create an asset class and log its custody policy."""
    asset_class = AssetClass.model_validate(data, update={"agency_id": agency_id})
    session.add(asset_class)
    log_registry(session, agency_id, [class_policy(asset_class)], now)
    return asset_class


def update_class(session: Session, *, asset_class: AssetClass, data: AssetClassUpdate,
                 now: datetime) -> AssetClass:
    """Rename a class or change its custody policy. A changed policy is logged as a new
    class-policy record in the same transaction, so the log always holds the policy the rules
    apply. Fields not given are kept; `required_qualification` and `loan_days` given as None
    are cleared (no qualification needed, no loan period)."""
    before = class_policy(asset_class)
    for field, value in data.model_dump(exclude_unset=True).items():
        if value is not None or field in ("required_qualification", "loan_days"):
            setattr(asset_class, field, value)
    session.add(asset_class)
    after = class_policy(asset_class)
    if after != before:
        log_registry(session, asset_class.agency_id, [after], now)
    return asset_class


def update_site(session: Session, *, site: Site, data: SiteUpdate) -> Site:
    """Rename a site (its id, which custody events name, stays)."""
    if data.name is not None:
        site.name = data.name
    session.add(site)
    return site


def update_person(session: Session, *, person: Person, data: PersonUpdate) -> Person:
    """Change a person's qualifications or whether they may take kit (`active`). The log never
    holds either: the custody rules read them from here at each decision. Raise
    `RegistryError` for an erased person."""
    if session.get(PersonSecret, (person.agency_id, person.id)) is None:
        raise RegistryError("person is erased: they can no longer be changed")
    if data.qualifications is not None:
        person.qualifications = list(data.qualifications)
    if data.active is not None:
        person.active = data.active
    session.add(person)
    return person


def _check_epcs_free(session: Session, agency_id: str, epcs: Collection[str]) -> None:
    """Refuse EPCs already one of the agency's asset tags or badges: at its desks a read must
    mean one thing (a badge opens a session; an asset tag is kit). Another agency's tags are
    not looked at: EPCs are per agency, like ids, so registering one says nothing of theirs.
    The caller holds the registry's lock (`claim_log_writer(..., registry=True)`), so no
    concurrent registration can take one of them meanwhile."""
    if not epcs:
        return
    if session.exec(select(Asset.id).where(
            Asset.agency_id == agency_id, col(Asset.epc_hex).in_(epcs))).first() is not None:
        raise RegistryError("EPC already belongs to an asset")
    if session.exec(select(Badge.epc_hex).where(
            Badge.agency_id == agency_id, col(Badge.epc_hex).in_(epcs))).first() is not None:
        raise RegistryError("EPC is already a staff badge")


def create_person(
    session: Session, *, agency_id: str, data: PersonCreate, now: datetime,
    salt: bytes | None = None,
) -> Person:
    """Register a person under a fresh random salt; the log will only ever see the commitment.
    Raise `RegistryError` if one of their badges is an asset's EPC or another badge."""
    # The registry's EPCs change one transaction at a time; a person writes no log.
    claim_log_writer(session, now, (), registry=True)
    _check_epcs_free(session, agency_id, set(data.badges))
    salt = salt if salt is not None else secrets.token_bytes(MIN_SALT_BYTES * 2)
    person = Person(
        id=data.id, agency_id=agency_id, qualifications=list(data.qualifications),
        active=data.active, commitment=commit(PERSON, data.id, salt), created_at=now,
    )
    session.add(person)
    session.flush()  # no ORM relationships: the person row must exist before its children
    session.add(PersonSecret(agency_id=agency_id, person_id=data.id, salt=salt, value=data.id))
    session.add_all(Badge(agency_id=agency_id, epc_hex=epc, person_id=data.id)
                    for epc in data.badges)
    return person


def erase_person(session: Session, *, person: Person) -> None:
    """Forget who `person` is: their secret and badges go; the log and its proofs stay valid."""
    secret = session.get(PersonSecret, (person.agency_id, person.id))
    if secret is not None:
        session.delete(secret)
    for badge in session.exec(select(Badge).where(Badge.agency_id == person.agency_id,
                                                  Badge.person_id == person.id)):
        session.delete(badge)
    person.active = False
    person.qualifications = []
    session.add(person)


def create_asset(
    session: Session, *, agency_id: str, data: AssetCreate, now: datetime
) -> Asset:
    """Register an asset in its home store and write its genesis event to chain and log.
    Raise `RegistryError` if its EPC is another asset's or a badge."""
    claim_log_writer(session, now, [agency_id], registry=True)
    _check_epcs_free(session, agency_id, {data.epc_hex})
    asset = Asset(
        id=data.id, agency_id=agency_id, class_id=data.class_id, epc_hex=data.epc_hex,
        epc_uri=data.epc_uri, home_site_id=data.home_site_id, status=AssetStatus.IN_STORE,
        holder_kind=HolderKind.LOCATION, holder_ref=data.home_site_id,
        holder_agency_id=agency_id, created_at=now,
    )
    session.add(asset)
    session.flush()
    shared = sorted(set(data.shared_with))
    session.add_all(AssetShare(owner_id=agency_id, asset_id=data.id, agency_id=a)
                    for a in shared)
    with appending_log(session) as log:
        append_registry(session, log, agency_id, [
            asset_registered(asset), *(share(asset.id, a, granted=True) for a in shared)], now)
        append_change(session, log, asset, CustodyChange(
            action="register", holder_kind=HolderKind.LOCATION, holder_ref=data.home_site_id,
            new_status=AssetStatus.IN_STORE, time=now,
        ))
    return asset


def set_shares(session: Session, *, asset: Asset, shared_with: Collection[str],
               now: datetime) -> None:
    """Share `asset` with exactly the agencies `shared_with`, logging each share granted or
    ended."""
    current = set(session.exec(select(AssetShare.agency_id).where(
        AssetShare.owner_id == asset.agency_id, AssetShare.asset_id == asset.id)).all())
    wanted = set(shared_with)
    for agency in current - wanted:
        share_row = session.get(AssetShare, (asset.agency_id, asset.id, agency))
        if share_row is not None:
            session.delete(share_row)
    session.add_all(AssetShare(owner_id=asset.agency_id, asset_id=asset.id, agency_id=a)
                    for a in sorted(wanted - current))
    changes = [*(share(asset.id, a, granted=False) for a in sorted(current - wanted)),
               *(share(asset.id, a, granted=True) for a in sorted(wanted - current))]
    if changes:
        log_registry(session, asset.agency_id, changes, now)


def update_asset(session: Session, *, asset: Asset, data: AssetUpdate, now: datetime) -> Asset:
    """Change an asset's URI, home store or sharing (custody changes go through readers); the
    caller has checked that the site and agencies named exist. Raise `RegistryError` for a
    retired asset or a URI that is not its EPC's."""
    if asset.status == AssetStatus.RETIRED:  # its log chain ended with its retirement
        raise RegistryError("asset is retired: it can no longer be changed")
    if data.epc_uri is not None:
        try:
            asset.epc_uri = checked_epc_uri(asset.epc_hex, data.epc_uri)
        except ValueError as exc:
            raise RegistryError(str(exc)) from None
    if data.home_site_id is not None:
        asset.home_site_id = data.home_site_id
    if data.shared_with is not None:
        set_shares(session, asset=asset, shared_with=data.shared_with, now=now)
    session.add(asset)
    return asset
