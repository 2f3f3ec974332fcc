"""The custody rules as one pure function: current state + one observation -> a ruling.

No database, no clock: `apply` loads the state, calls `decide`, and writes what the ruling
says. A reader speaks for its own agency: a tag its agency may not see (another agency's asset
not shared with it, another agency's badge) is "not ours" and nothing more, whatever the state
behind it, and rules nothing of the owner's. Which reader role makes which action is
`ledger.core.custody_rules`, the table the auditor's verifier holds logged events to. Keeping
the rules pure lets the property tests drive them through long random histories and check the
invariants (a disposed asset never moves; a check-out always names a qualified, active holder;
dual sign-off always has two distinct people; another agency's unshared asset is never
described, moved or alerted on).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

from api.models.assets import AssetStatus, HolderKind
from api.models.registry import ReaderRole
from ledger.core.custody_rules import (
    DESK_ROLES,
    DUAL_SIGNOFF_PEOPLE,
    ISSUE_ROLES,
    RETURN_ROLES,
)


class Verdict(StrEnum):
    ACCEPT = "accept"
    REFUSE = "refuse"


NOT_OURS: Final = "not ours"
"""All a reader is told of a tag its agency may not see: not whose it is, not its state, not
even that it is an asset or a badge (the REST API answers 404 for such an asset)."""


class AlertKind(StrEnum):
    UNAUTHORISED_REMOVAL = "unauthorised_removal"
    UNEXPECTED_SITE = "unexpected_site"
    OVERDUE_LOAN = "overdue_loan"
    READER_DOWN = "reader_down"
    ANTENNA_FAULT = "antenna_fault"
    DISK_LOW = "disk_low"
    OUTBOX_FULL = "outbox_full"
    READER_OVERHEAT = "reader_overheat"
    INVENTORY_DUE = "inventory_due"


@dataclass(frozen=True, slots=True)
class PersonView:
    person_id: str
    agency_id: str
    qualifications: frozenset[str]
    active: bool


@dataclass(frozen=True, slots=True)
class AssetView:
    asset_id: str
    agency_id: str
    shared_with: frozenset[str]
    status: AssetStatus
    holder_kind: HolderKind
    holder_ref: str
    holder_agency_id: str
    """The agency of the site or person `holder_ref` names (ids are per agency)."""
    required_qualification: str | None = None
    dual_signoff: bool = False


@dataclass(frozen=True, slots=True)
class ReaderView:
    reader_id: str
    agency_id: str
    site_id: str
    role: ReaderRole


@dataclass(frozen=True, slots=True)
class Ruling:
    """What to do about one observation. `action` is a `CustodyEvent` action when custody
    changes; `verdict` is None when the reader needs no answer (a plain sighting)."""

    verdict: Verdict | None = None
    reason: str = ""
    action: str | None = None
    holder_kind: HolderKind | None = None
    holder_ref: str | None = None
    new_status: AssetStatus | None = None
    authorisers: tuple[str, ...] = ()
    alert: AlertKind | None = None
    opens_session_for: str | None = None
    foreign: bool = False
    """The tag is an asset the reader's agency may not see: the answer names no asset, and the
    read is only a foreign sighting for the owner (`visible_to`)."""


def _refuse(reason: str, alert: AlertKind | None = None) -> Ruling:
    return Ruling(verdict=Verdict.REFUSE, reason=reason, alert=alert)


def decide_badge(reader: ReaderView, person: PersonView, session: str | None) -> Ruling:
    """A staff badge read: at a desk it opens (or joins) the badge session."""
    if reader.role not in DESK_ROLES:
        return Ruling()
    if person.agency_id != reader.agency_id:  # before anything that describes the person
        return _refuse(NOT_OURS)
    if not person.active:
        return _refuse("badge holder is not active")
    if session is None:
        return _refuse("badge read without a session id")
    return Ruling(verdict=Verdict.ACCEPT, reason="session open", opens_session_for=person.person_id)


def visible_to(owner: str, shared_with: frozenset[str], agency_id: str) -> bool:
    """Whether agency `agency_id` may see an asset of `owner` shared with `shared_with`: the
    REST API's rule (`api.scoping`). A share (a loan gives one) is also the owner's trust in
    that agency's readers: their reads of the asset rule, move it and raise alerts as the
    owner's own do; without one they are foreign sightings, which rule nothing."""
    return owner == agency_id or agency_id in shared_with


def _foreign(reader: ReaderView, departing: bool) -> Ruling:
    """Another agency's asset, not shared with the reader's: "not ours" to readers that answer
    kit (a vehicle bay answers none, and neither does a tag leaving the field)."""
    if departing or reader.role == ReaderRole.VEHICLE_BAY:
        return Ruling(foreign=True)
    return Ruling(verdict=Verdict.REFUSE, reason=NOT_OURS, foreign=True)


def _check_out(
    reader: ReaderView, asset: AssetView, people: list[PersonView]
) -> Ruling:
    if not people:
        return _refuse("no badge session open at this desk")
    holder = people[0]
    if asset.status == AssetStatus.CHECKED_OUT and _held_by(asset, holder):
        return Ruling(verdict=Verdict.ACCEPT, reason="already held by this person")
    if asset.status != AssetStatus.IN_STORE:
        return _refuse(f"asset is {asset.status.value}, not in store")
    if not holder.active or holder.agency_id != reader.agency_id:
        # Sessions only admit active staff of the desk's agency; refuse anyway if one slipped in.
        return _refuse("badge holder may not take kit at this desk")
    if asset.required_qualification and asset.required_qualification not in holder.qualifications:
        return _refuse(f"holder lacks qualification {asset.required_qualification}")
    distinct = tuple(dict.fromkeys(p.person_id for p in people))
    if asset.dual_signoff and len(distinct) < DUAL_SIGNOFF_PEOPLE:
        return _refuse("dual sign-off needed: a second staff badge")
    return Ruling(
        verdict=Verdict.ACCEPT, reason="checked out", action="check_out",
        holder_kind=HolderKind.PERSON, holder_ref=holder.person_id,
        new_status=AssetStatus.CHECKED_OUT, authorisers=distinct,
    )


def _check_in(reader: ReaderView, asset: AssetView, people: list[PersonView]) -> Ruling:
    if asset.status == AssetStatus.IN_STORE and _in_store_of(asset, reader):
        return Ruling(verdict=Verdict.ACCEPT, reason="already in this store")
    action = "loan_return" if asset.status == AssetStatus.ON_LOAN else "check_in"
    return Ruling(
        verdict=Verdict.ACCEPT, reason="checked in", action=action,
        holder_kind=HolderKind.LOCATION, holder_ref=reader.site_id,
        new_status=AssetStatus.IN_STORE,
        authorisers=tuple(dict.fromkeys(p.person_id for p in people)),
    )


def _held_by(asset: AssetView, person: PersonView) -> bool:
    return (asset.holder_kind == HolderKind.PERSON and asset.holder_ref == person.person_id
            and asset.holder_agency_id == person.agency_id)


def _in_store_of(asset: AssetView, reader: ReaderView) -> bool:
    """Whether the asset is held by the reader's site (ids are per agency: and agency)."""
    return (asset.holder_kind == HolderKind.LOCATION and asset.holder_ref == reader.site_id
            and asset.holder_agency_id == reader.agency_id)


def _elsewhere(reader: ReaderView, asset: AssetView) -> bool:
    return (
        asset.status == AssetStatus.IN_STORE and asset.holder_kind == HolderKind.LOCATION
        and not _in_store_of(asset, reader)
    )


def decide_asset(
    reader: ReaderView, asset: AssetView, people: list[PersonView], direction: str | None,
    departing: bool,
) -> Ruling:
    """An asset's tag seen by `reader`, with the people badged into the current session."""
    if not visible_to(asset.agency_id, asset.shared_with, reader.agency_id):
        return _foreign(reader, departing)  # first: nothing below may describe the asset
    if asset.status in (AssetStatus.DISPOSED, AssetStatus.RETIRED):
        # Disposal and retirement are final: the tag being seen at all is worth a look,
        # nothing moves.
        alert = AlertKind.UNAUTHORISED_REMOVAL if reader.role == ReaderRole.PORTAL else None
        if asset.status == AssetStatus.RETIRED:
            return _refuse("asset is retired (deleted from the register)", alert)
        return _refuse("asset is disposed", alert)
    if departing:
        return Ruling()
    if reader.role in ISSUE_ROLES:
        ruling = _check_out(reader, asset, people)
    elif reader.role in RETURN_ROLES:
        return _check_in(reader, asset, people)  # returning to another store is legitimate
    elif reader.role == ReaderRole.PORTAL:
        leaving = direction != "in"
        if leaving and asset.status == AssetStatus.IN_STORE and not people:
            return _refuse("leaving without a check-out", AlertKind.UNAUTHORISED_REMOVAL)
        ruling = Ruling(verdict=Verdict.ACCEPT, reason="passage recorded")
    else:  # vehicle bays only sight the asset
        ruling = Ruling()
    if _elsewhere(reader, asset) and ruling.alert is None:
        # The record says it sits in another store: someone moved it without a check-out.
        ruling = replace(ruling, alert=AlertKind.UNEXPECTED_SITE)
    return ruling
