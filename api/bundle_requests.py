"""An audit bundle asked for: the assets, site or time range a caller names, checked against
what the caller may see, the agency whose log proves them, and the bundle made for them.

The one path of `GET /v1/audit/bundles` and `kitledger export`: both call
`export_requested_bundle`, and each turns its typed errors (`BundleScopeError`,
`BundleUnavailable`) into its own answer (a problem document, a JSON verdict).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select

from api.auth import Caller
from api.bundles import MAX_BUNDLE_ASSETS, export_agency_bundle
from api.errors import ApiServiceError
from api.models.assets import Asset
from api.models.custody import CustodyEventRow
from api.scoping import asset_visible
from ledger.core.bundle import Scope
from ledger.core.errors import LedgerError
from ledger.core.records import parse_time

MAX_ASSET_PARAM_CHARS: Final = 128
"""Longest asset id or site id a bundle request may name."""


class BundleScopeError(ApiServiceError):
    """The bundle asked for cannot be made; `slug` names why (the HTTP problem type)."""

    def __init__(self, slug: str, detail: str) -> None:
        super().__init__(detail)
        self.slug = slug


class BadBundleScope(BundleScopeError):
    """The question is malformed or too wide: mixed kinds, a bad time, too many assets."""


class NoVisibleAssets(BundleScopeError):
    """An asset asked for does not exist or is not visible to the caller (never told apart),
    or the site or time range holds none."""

    def __init__(self) -> None:
        super().__init__("not-found", "asset not found")


def _time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except LedgerError:
        raise BadBundleScope("bad-time", f"{name} must be RFC 3339 UTC, e.g. "
                             "2026-01-02T03:04:05.000Z") from None


def _visible(session: Session, caller: Caller, asset_id: str) -> Asset:
    asset = session.exec(select(Asset).where(Asset.id == asset_id, asset_visible(caller))).first()
    if asset is None:
        raise NoVisibleAssets
    return asset


def resolve_bundle_scope(
    session: Session, caller: Caller, assets: list[str] | None, site: str | None,
    start: str | None, end: str | None,
) -> tuple[Scope, str, list[str]]:
    """What the bundle covers, the agency whose log proves it, and its assets."""
    if assets:
        if site or start or end:
            raise BadBundleScope("bad-scope", "give assets, or a site, or a time range")
        found = [_visible(session, caller, a) for a in dict.fromkeys(assets)]
        owners = {a.agency_id for a in found}
        if len(owners) != 1:
            raise BadBundleScope("bad-scope", "a bundle proves one agency's log: ask per owner")
        kind = "asset" if len(found) == 1 else "assets"
        ids = [a.id for a in found]
        return Scope(kind, tuple(ids)), owners.pop(), ids
    query = select(Asset.id).where(Asset.agency_id == caller.agency_id)
    if site:
        if start or end:
            raise BadBundleScope("bad-scope", "give a site or a time range, not both")
        ids = list(session.exec(query.where(Asset.home_site_id == site)
                                .order_by(col(Asset.id)).limit(MAX_BUNDLE_ASSETS + 1)))
        scope = Scope("site", tuple(ids), site=site)
    elif start and end:
        begin, finish = _time(start, "start"), _time(end, "end")
        ids = list(session.exec(select(CustodyEventRow.asset_id).where(
            CustodyEventRow.agency_id == caller.agency_id,
            col(CustodyEventRow.created_at) >= begin, col(CustodyEventRow.created_at) < finish,
        ).distinct().order_by(col(CustodyEventRow.asset_id)).limit(MAX_BUNDLE_ASSETS + 1)))
        scope = Scope("time-range", tuple(ids), start=start, end=end)
    else:
        raise BadBundleScope("bad-scope", "give asset=..., site=..., or start=... and end=...")
    if len(ids) > MAX_BUNDLE_ASSETS:
        raise BadBundleScope("too-many-assets", f"more than {MAX_BUNDLE_ASSETS} assets: narrow it")
    if not ids:
        raise NoVisibleAssets
    return scope, caller.agency_id, ids


@dataclass(frozen=True, slots=True)
class ExportedBundle:
    owner: str
    """The agency whose log proves the bundle."""
    asset_ids: list[str]
    body: bytes


def export_requested_bundle(
    session: Session, caller: Caller, *, assets: list[str] | None, site: str | None,
    start: str | None, end: str | None, now: datetime, since_size: int | None = None,
) -> ExportedBundle:
    """The bundle `caller` asks for; BundleScopeError if the question cannot be answered,
    BundleUnavailable if no checkpoint covers the assets yet (or none has size `since_size`,
    where the bundle's checkpoints must start)."""
    scope, owner, asset_ids = resolve_bundle_scope(session, caller, assets, site, start, end)
    body = export_agency_bundle(session, agency_id=owner, asset_ids=asset_ids, scope=scope,
                                now=now, since_size=since_size)
    return ExportedBundle(owner, asset_ids, body)
