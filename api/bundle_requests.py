"""An audit bundle asked for: the assets, site, case or time range a caller names, checked against
what the caller may see, the agency whose log proves them, and the bundle made for them.

The one path of `GET /v1/audit/bundles` and `kitledger export`: both call
`export_requested_bundle`, and each turns its typed errors (`BundleScopeError`,
`BundleUnavailable`) into its own answer (a problem document, a JSON verdict).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from sqlmodel import Session

from api.auth import Caller
from api.bundles import (
    MAX_BUNDLE_ASSETS,
    case_assets,
    export_agency_bundle,
    range_assets,
    site_assets,
)
from api.errors import ApiServiceError
from api.models.assets import Asset
from api.models.evidence import MAX_REFERENCE_CHARS
from api.scoping import AmbiguousAsset, find_visible_asset
from ledger.core.bundle import Scope
from ledger.core.errors import LedgerError
from ledger.core.heads import HeadMap
from ledger.core.records import parse_time

MAX_ASSET_PARAM_CHARS: Final = 128
"""Longest asset id or site id a bundle request may name."""

CASE_REFERENCE: Final = re.compile(rf"[!-~]([ -~]{{0,{MAX_REFERENCE_CHARS - 2}}}[!-~])?")
"""A case reference as the evidence routes accept one (`api.routes.evidence.Reference`)."""


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


def _visible(session: Session, caller: Caller, asset_id: str, owner: str | None) -> Asset:
    """The asset `asset_id` the caller may see (`api.scoping.find_visible_asset`)."""
    try:
        asset = find_visible_asset(session, caller, asset_id, owner)
    except AmbiguousAsset as exc:
        raise BadBundleScope("asset-ambiguous", str(exc)) from None
    if asset is None:
        raise NoVisibleAssets
    return asset


def resolve_bundle_scope(
    session: Session, caller: Caller, assets: list[str] | None, site: str | None,
    start: str | None, end: str | None, case: str | None = None, owner: str | None = None,
) -> tuple[Scope, str, list[str], HeadMap | None]:
    """What the bundle covers, the agency whose log proves it, its assets, and the head map
    read to find them (if one was).

    Assets are named by id: the caller's own, else those another agency shared with it
    (`owner` names that agency where the ids alone do not). A site or case is the caller's.

    A site's assets are those the log leaves there at the newest checkpoint (its head map
    proves which), a time range's those of every leaf between the checkpoints bracketing it,
    its end moved back to the newest checkpoint, a case's the exhibits the log's latest
    references put in it (the head map's case entries): what the verifier checks the bundle
    against."""
    if sum(map(bool, (assets, site, start or end, case))) > 1:
        raise BadBundleScope("bad-scope", "give assets, or a site, or a case, or a time range")
    if assets:
        found = [_visible(session, caller, a, owner) for a in dict.fromkeys(assets)]
        owners = {a.agency_id for a in found}
        if len(owners) != 1:
            raise BadBundleScope("bad-scope", "a bundle proves one agency's log: ask per owner")
        kind = "asset" if len(found) == 1 else "assets"
        ids = [a.id for a in found]
        return Scope(kind, tuple(ids)), owners.pop(), ids, None
    head_map = None
    if site:
        ids, head_map = site_assets(session, caller.agency_id, site)
        scope = Scope("site", tuple(ids), site=site)
    elif case:
        if not CASE_REFERENCE.fullmatch(case):
            raise BadBundleScope("bad-case", "a case reference is 1 to "
                                 f"{MAX_REFERENCE_CHARS} printable ASCII characters")
        ids, head_map = case_assets(session, caller.agency_id, case)
        scope = Scope("case", tuple(ids), case=case)
    elif start and end:
        _time(start, "start")
        _time(end, "end")
        ids, end = range_assets(session, caller.agency_id, start, end)
        scope = Scope("time-range", tuple(ids), start=start, end=end)
    else:
        raise BadBundleScope("bad-scope", "give asset=..., site=..., case=..., or start=... "
                             "and end=...")
    if len(ids) > MAX_BUNDLE_ASSETS:
        raise BadBundleScope("too-many-assets", f"more than {MAX_BUNDLE_ASSETS} assets: narrow it")
    if not ids:
        raise NoVisibleAssets
    return scope, caller.agency_id, ids, head_map


@dataclass(frozen=True, slots=True)
class ExportedBundle:
    owner: str
    """The agency whose log proves the bundle."""
    asset_ids: list[str]
    body: bytes


def export_requested_bundle(
    session: Session, caller: Caller, *, assets: list[str] | None, site: str | None,
    start: str | None, end: str | None, now: datetime, since_size: int | None = None,
    case: str | None = None, owner: str | None = None,
) -> ExportedBundle:
    """The bundle `caller` asks for; BundleScopeError if the question cannot be answered,
    BundleUnavailable if no checkpoint covers the assets yet (or none has size `since_size`,
    where the bundle's checkpoints must start); `owner` picks the agency of assets named by id
    (`resolve_bundle_scope`)."""
    scope, proving, asset_ids, head_map = resolve_bundle_scope(
        session, caller, assets, site, start, end, case, owner)
    body = export_agency_bundle(session, agency_id=proving, asset_ids=asset_ids, scope=scope,
                                now=now, head_map=head_map, since_size=since_size)
    return ExportedBundle(proving, asset_ids, body)
