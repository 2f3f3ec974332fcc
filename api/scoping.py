"""What a caller may see: its agency's rows, and assets other agencies shared with it.

Every route reads through these helpers, so the agency rule lives in one place and the
isolation tests exercise it on every endpoint.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import exists, or_
from sqlalchemy import inspect as sql_inspect
from sqlmodel import Session, SQLModel, col, select

from api.auth import Caller
from api.models.assets import Asset, AssetShare
from api.problems import Problem, not_found

Row = TypeVar("Row", bound=SQLModel)


def own_row(session: Session, model: type[Row], agency_id: str, row_id: str) -> Row | None:
    """Agency `agency_id`'s `model` row `row_id`, or None. Sites, people, classes, assets and
    badges are keyed (agency, id): each agency has its own ids. Other rows (API clients,
    accounts, readers) have global ids and are the agency's only if they say so."""
    keys = {column.name for column in sql_inspect(model).primary_key}
    if keys == {"agency_id", "id"}:
        return session.get(model, {"agency_id": agency_id, "id": row_id})
    row = session.get(model, row_id)
    return row if row is not None and getattr(row, "agency_id", None) == agency_id else None


def agency_row(session: Session, model: type[Row], agency_id: str, row_id: str,
               what: str) -> Row:
    """The `model` row `row_id` if agency `agency_id` holds it; 404 otherwise, the same answer
    as for an unknown id (an API client, an account: ids are not confirmed across agencies)."""
    row = own_row(session, model, agency_id, row_id)
    if row is None:
        raise not_found(what)
    return row


def asset_visible(caller: Caller) -> Any:
    """A WHERE clause: the asset is the caller agency's, or shared with it."""
    shared = exists().where(
        col(AssetShare.owner_id) == col(Asset.agency_id),
        col(AssetShare.asset_id) == col(Asset.id), col(AssetShare.agency_id) == caller.agency_id
    )
    return or_(col(Asset.agency_id) == caller.agency_id, shared)


class AmbiguousAsset(LookupError):
    """More than one agency shared an asset of this id with the caller, none its own, and no
    owner was named."""


def find_visible_asset(session: Session, caller: Caller, asset_id: str,
                       owner: str | None = None) -> Asset | None:
    """The asset `asset_id` the caller may see, or None. Ids are per agency: the caller's own
    asset comes first, then one another agency shared with it; `owner` names the agency when
    the id alone does not (raise `AmbiguousAsset` when it had to and did not)."""
    if owner is None or owner == caller.agency_id:
        own = own_row(session, Asset, caller.agency_id, asset_id)
        if own is not None or owner is not None:
            return own
    query = select(Asset).where(Asset.id == asset_id, asset_visible(caller))
    if owner is not None:
        query = query.where(Asset.agency_id == owner)
    shared = session.exec(query.order_by(col(Asset.agency_id)).limit(2)).all()
    if len(shared) > 1:
        raise AmbiguousAsset(f"more than one agency shared an asset {asset_id!r} with yours: "
                             f"name its owner")
    return shared[0] if shared else None


def visible_asset(session: Session, caller: Caller, asset_id: str,
                  owner: str | None = None) -> Asset:
    """The asset `asset_id` the caller may see (`find_visible_asset`); 404 otherwise (never
    403: ids are not confirmed), 409 if two agencies shared one of that id and `owner` does not
    say whose."""
    try:
        return _found(find_visible_asset(session, caller, asset_id, owner))
    except AmbiguousAsset as exc:
        raise Problem(409, "asset-ambiguous", f"{exc} (?owner=)") from None


def _found(asset: Asset | None) -> Asset:
    if asset is None:
        raise not_found("asset")
    return asset


def owned_asset(session: Session, caller: Caller, asset_id: str) -> Asset:
    """The asset if the caller's agency owns it (needed to change it); 404 otherwise."""
    return _found(own_row(session, Asset, caller.agency_id, asset_id))
