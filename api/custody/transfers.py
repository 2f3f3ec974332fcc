"""Custody changes made through the API: person-to-person transfers, loans to another agency
(both offered, then accepted, rejected or cancelled), and final disposal.

An offer changes nothing. Acceptance re-checks everything (the holder has not changed, the
recipient is still qualified, a reader saw the tag within `SIGHTING_WINDOW`, so the kit is
physically where the hand-over is claimed) and then appends the event to the asset's chain and
the Merkle log in the caller's transaction. A refusal raises `CustodyRefused` with the reason.
An accepted loan shares the asset with the borrower; the share ends when a return desk or locker
reads the asset back in (`end_loan_shares`, called from the batch's writes). Both are logged as
registry records (`api.registry_log`) beside the custody event.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import Connection, delete, tuple_
from sqlmodel import Session, col

from api import webhook_outbox
from api.custody.events import CustodyChange, append_change
from api.logstore import appending_log, claim_log_writer
from api.models.assets import Asset, AssetClass, AssetShare, AssetStatus, HolderKind
from api.models.custody import Transfer
from api.models.people import Person
from api.models.registry import Agency
from api.registry_log import append_registry, share

SIGHTING_WINDOW: Final = timedelta(minutes=15)
"""A hand-over is accepted only if a reader saw the tag this recently: long enough to walk from
the desk to a terminal, short enough that a remote click cannot move kit nobody has seen."""

OFFERED, ACCEPTED, REJECTED, CANCELLED = "offered", "accepted", "rejected", "cancelled"


class CustodyRefused(ValueError):
    """A custody change that the rules do not allow; the message is the reason."""


def qualified(session: Session, asset: Asset, person: Person) -> None:
    if not person.active:
        raise CustodyRefused("recipient is not active")
    policy = session.get(AssetClass, (asset.agency_id, asset.class_id))
    if policy and policy.required_qualification and (
        policy.required_qualification not in person.qualifications
    ):
        raise CustodyRefused(f"recipient lacks qualification {policy.required_qualification}")


def _recently_seen(asset: Asset, now: datetime) -> None:
    if asset.last_seen_at is None or asset.last_seen_at < now - SIGHTING_WINDOW:
        raise CustodyRefused("no reader has seen the asset recently")


def offer_transfer(session: Session, *, asset: Asset, to_person: Person, now: datetime) -> Transfer:
    """Offer `asset`, checked out to someone, to `to_person` of the same agency."""
    if asset.status != AssetStatus.CHECKED_OUT or asset.holder_kind != HolderKind.PERSON \
            or asset.holder_agency_id != asset.agency_id:
        raise CustodyRefused("only kit checked out to a person of the owning agency can be "
                             "transferred")
    if to_person.agency_id != asset.agency_id or to_person.id == asset.holder_ref:
        raise CustodyRefused("recipient must be another person of the owning agency")
    qualified(session, asset, to_person)
    return _offer(session, asset, "transfer", HolderKind.PERSON, to_person.id, None, now)


def offer_loan(session: Session, *, asset: Asset, to_agency: str, days: int,
               now: datetime) -> Transfer:
    """Offer `asset`, in store, on loan to agency `to_agency` for `days`."""
    if asset.status != AssetStatus.IN_STORE:
        raise CustodyRefused("only kit in store can be lent")
    if to_agency == asset.agency_id or session.get(Agency, to_agency) is None:
        raise CustodyRefused("a loan goes to another registered agency")
    return _offer(session, asset, "loan_out", HolderKind.AGENCY, to_agency, days, now)


def _offer(session: Session, asset: Asset, action: str, to_kind: HolderKind, to_ref: str,
           days: int | None, now: datetime) -> Transfer:
    transfer = Transfer(
        agency_id=asset.agency_id, asset_id=asset.id, action=action,
        from_kind=str(asset.holder_kind), from_ref=asset.holder_ref, to_kind=to_kind.value,
        to_ref=to_ref, loan_days=days, offered_at=now,
    )
    session.add(transfer)
    webhook_outbox.transfer_offered(session, transfer)
    return transfer


def accepting_agency(transfer: Transfer) -> str:
    """Who accepts or rejects: the receiving agency of a loan, the owner for a transfer."""
    return transfer.to_ref if transfer.action == "loan_out" else transfer.agency_id


def accept(session: Session, *, transfer: Transfer, now: datetime) -> Asset:
    """Re-check and carry out an offered transfer or loan."""
    if transfer.status != OFFERED:
        raise CustodyRefused(f"offer is {transfer.status}")
    claim_log_writer(session, now, [transfer.agency_id])  # the asset's owner: its log
    asset = session.get(Asset, (transfer.agency_id, transfer.asset_id), with_for_update=True)
    if asset is None or (str(asset.holder_kind), asset.holder_ref, asset.holder_agency_id) != (
        transfer.from_kind, transfer.from_ref, transfer.agency_id
    ):  # offers name the owner's people and sites only
        raise CustodyRefused("the asset changed hands since the offer")
    _recently_seen(asset, now)
    if transfer.action == "transfer":
        person = session.get(Person, (transfer.agency_id, transfer.to_ref))
        if person is None:
            raise CustodyRefused("recipient no longer registered")
        qualified(session, asset, person)
        change = CustodyChange(action="transfer", holder_kind=HolderKind.PERSON,
                               holder_ref=person.id, new_status=AssetStatus.CHECKED_OUT,
                               time=now, due_at=asset.due_at)
    else:
        if asset.status != AssetStatus.IN_STORE:
            raise CustodyRefused("the asset is no longer in store")
        change = CustodyChange(action="loan_out", holder_kind=HolderKind.AGENCY,
                               holder_ref=transfer.to_ref, new_status=AssetStatus.ON_LOAN,
                               time=now, due_at=now + timedelta(days=transfer.loan_days or 1))
    with appending_log(session) as log:
        if change.action == "loan_out" and session.get(
                AssetShare, (asset.agency_id, asset.id, transfer.to_ref)) is None:
            session.add(AssetShare(owner_id=asset.agency_id, asset_id=asset.id,
                                   agency_id=transfer.to_ref))
            append_registry(session, log, asset.agency_id,
                            [share(asset.id, transfer.to_ref, granted=True)], now)
        append_change(session, log, asset, change)
    transfer.status, transfer.decided_at = ACCEPTED, now
    session.add(transfer)
    return asset


def end_loan_shares(connection: Connection, loans: Collection[tuple[str, str, str]]) -> None:
    """End the shares `accept` gave the borrowers of `loans` ((owner, asset id, borrower),
    returned): a borrower sees lent kit while it holds it, not after. A standing share given
    before the loan ends too; the owner grants it again if it is still wanted."""
    if loans:
        connection.execute(delete(AssetShare).where(tuple_(
            col(AssetShare.owner_id), col(AssetShare.asset_id), col(AssetShare.agency_id),
        ).in_(list(loans))))


def close(session: Session, *, transfer: Transfer, status: str, now: datetime) -> Transfer:
    """Reject or cancel an offer that is still open."""
    if transfer.status != OFFERED:
        raise CustodyRefused(f"offer is {transfer.status}")
    transfer.status, transfer.decided_at = status, now
    session.add(transfer)
    return transfer


def dispose(session: Session, *, asset: Asset, now: datetime) -> Asset:
    """Dispose of `asset`, in store; final when its class says so (it never moves again)."""
    if asset.status == AssetStatus.DISPOSED:
        raise CustodyRefused("asset is already disposed")
    if asset.status != AssetStatus.IN_STORE:
        raise CustodyRefused("only kit in store can be disposed of")
    claim_log_writer(session, now, [asset.agency_id])
    with appending_log(session) as log:
        append_change(session, log, asset, CustodyChange(
            action="dispose", holder_kind=HolderKind(asset.holder_kind),
            holder_ref=asset.holder_ref, new_status=AssetStatus.DISPOSED, time=now,
        ))
    return asset
