"""Manual entries at the desk: a check-out, check-in or hand-over an officer enters by hand
when a tag will not read or a reader is down.

The officer (a person of the agency, entering through a signed-in client) gives the desk, the
action and why; when the asset's class asks for dual sign-off (evidence, firearms) a
supervisor, another active person of the agency, co-signs. The change is checked like the
reader-made one (state, holder, qualification) and recorded as a custody event that cites no
reads and whose evidence is the entry itself: `manual` holds the reason, `reader` the desk and
`authorised_by` the officer then the supervisor (by commitment). A `manual_entry` row beside it
lets entries be counted per desk and officer. A refusal raises `CustodyRefused`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlmodel import Session

from api import webhook_outbox
from api.custody import reservations
from api.custody.events import CustodyChange, append_change
from api.custody.transfers import CustodyRefused, qualified
from api.logstore import appending_log, claim_log_writer
from api.models.assets import Asset, AssetClass, AssetStatus, HolderKind
from api.models.custody import ManualEntry
from api.models.people import Person
from api.models.registry import Reader, ReaderStatus
from ledger.core.custody_rules import DUAL_SIGNOFF_PEOPLE, MANUAL_ROLES


@dataclass(frozen=True, slots=True)
class ManualRequest:
    """What the officer entered: `holder` is whom a check-out or hand-over goes to."""

    action: str
    desk: Reader
    officer: Person
    supervisor: Person | None
    holder: Person | None
    reason: str
    client_id: str


def _staff(person: Person | None, agency_id: str, role: str) -> Person:
    if person is None or person.agency_id != agency_id or not person.active:
        raise CustodyRefused(f"the {role} must be an active person of the owning agency")
    return person


def _check_people(session: Session, asset: Asset, request: ManualRequest) -> None:
    officer = _staff(request.officer, asset.agency_id, "officer")
    policy = session.get(AssetClass, (asset.agency_id, asset.class_id))
    supervisor = request.supervisor
    if supervisor is not None:
        _staff(supervisor, asset.agency_id, "supervisor")
        if supervisor.id == officer.id:
            raise CustodyRefused("the supervisor must be another person than the officer")
    elif policy is not None and policy.dual_signoff:
        raise CustodyRefused(f"dual sign-off needed: a supervisor co-signs a manual entry "
                             f"({DUAL_SIGNOFF_PEOPLE} people)")


def _change(asset: Asset, request: ManualRequest, now: datetime) -> CustodyChange:
    desk = request.desk
    if request.action == "check_in":
        if asset.status != AssetStatus.CHECKED_OUT:
            raise CustodyRefused(f"asset is {asset.status}, not checked out")
        return CustodyChange(action="check_in", holder_kind=HolderKind.LOCATION,
                             holder_ref=desk.site_id, new_status=AssetStatus.IN_STORE, time=now)
    if request.holder is None:
        raise CustodyRefused(f"a manual {request.action} names the person who takes the kit")
    if request.action == "check_out":
        if asset.status != AssetStatus.IN_STORE:
            raise CustodyRefused(f"asset is {asset.status}, not in store")
    elif asset.status != AssetStatus.CHECKED_OUT or (
            request.holder.id == asset.holder_ref
            and request.holder.agency_id == asset.holder_agency_id):
        raise CustodyRefused("a hand-over moves kit checked out to one person to another")
    return CustodyChange(action=request.action, holder_kind=HolderKind.PERSON,
                         holder_ref=request.holder.id, new_status=AssetStatus.CHECKED_OUT,
                         time=now, due_at=asset.due_at if request.action == "transfer" else None)


def enter_manually(session: Session, *, asset: Asset, request: ManualRequest,
                   now: datetime) -> ManualEntry:
    """Check and record `request` on `asset` in the caller's transaction."""
    roles = MANUAL_ROLES.get(request.action)
    if roles is None:
        raise CustodyRefused(f"{request.action} cannot be entered by hand")
    desk = request.desk
    if (desk.agency_id != asset.agency_id or desk.status != ReaderStatus.ACTIVE
            or desk.revoked_at is not None or str(desk.role) not in roles):
        raise CustodyRefused(f"a manual {request.action} is entered at one of the agency's "
                             f"desks in service of role {' or '.join(sorted(roles))}")
    claim_log_writer(session, now, [asset.agency_id])
    session.refresh(asset, with_for_update=True)
    if asset.status in (AssetStatus.DISPOSED, AssetStatus.RETIRED):
        raise CustodyRefused(f"asset is {asset.status}")
    _check_people(session, asset, request)
    change = _change(asset, request, now)
    if request.holder is not None:
        qualified(session, asset, request.holder)
    if request.action == "check_out" and request.holder is not None:
        blocked = reservations.issue_refusal(session, asset, request.holder.id, now)
        if blocked is not None:
            raise CustodyRefused(blocked)
    people = (request.officer.id,) + ((request.supervisor.id,) if request.supervisor else ())
    change = replace(change, authorisers=people, reader_id=desk.id, manual=request.reason)
    with appending_log(session) as log:
        leaf = append_change(session, log, asset, change)
    entry = ManualEntry(agency_id=asset.agency_id, asset_id=asset.id, action=request.action,
                        desk_id=desk.id, officer_id=request.officer.id,
                        supervisor_id=request.supervisor.id if request.supervisor else None,
                        client_id=request.client_id, reason=request.reason, leaf_index=leaf,
                        created_at=now)
    session.add(entry)
    webhook_outbox.property_room_event(session, asset.agency_id, "custody.manual", {
        "asset_id": asset.id, "action": request.action, "desk_id": desk.id,
        "leaf_index": leaf, "co_signed": request.supervisor is not None}, now)
    return entry
