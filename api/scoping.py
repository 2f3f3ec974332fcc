"""What a caller may see: its agency's rows, and assets other agencies shared with it.

Every route reads through these helpers, so the agency rule lives in one place and the
isolation tests exercise it on every endpoint.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import exists, or_
from sqlmodel import Session, SQLModel, col, select

from api.auth import Caller
from api.models.assets import Asset, AssetShare
from api.problems import not_found

Row = TypeVar("Row", bound=SQLModel)


def agency_row(session: Session, model: type[Row], agency_id: str, row_id: str,
               what: str) -> Row:
    """The `model` row `row_id` if agency `agency_id` holds it; 404 otherwise, the same answer
    as for an unknown id (an API client, an account: ids are not confirmed across agencies)."""
    row = session.get(model, row_id)
    if row is None or getattr(row, "agency_id", None) != agency_id:
        raise not_found(what)
    return row


def asset_visible(caller: Caller) -> Any:
    """A WHERE clause: the asset is the caller agency's, or shared with it."""
    shared = exists().where(
        col(AssetShare.asset_id) == col(Asset.id), col(AssetShare.agency_id) == caller.agency_id
    )
    return or_(col(Asset.agency_id) == caller.agency_id, shared)


def visible_asset(session: Session, caller: Caller, asset_id: str) -> Asset:
    """The asset if the caller may see it; 404 otherwise (never 403: ids are not confirmed)."""
    asset = session.exec(select(Asset).where(Asset.id == asset_id, asset_visible(caller))).first()
    if asset is None:
        raise not_found("asset")
    return asset


def owned_asset(session: Session, caller: Caller, asset_id: str) -> Asset:
    """The asset if the caller's agency owns it (needed to change it); 404 otherwise."""
    asset = session.get(Asset, asset_id)
    if asset is None or asset.agency_id != caller.agency_id:
        raise not_found("asset")
    return asset
