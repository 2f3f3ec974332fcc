"""What a stocktake compares, shared by the agency page's rolling stocktake
(`GET /v1/sites/{id}/stocktake`) and inventories (`api.inventories`): the items
expected at a site, and the reconciliation of the items looked for against what was read."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, select

from api.auth import Caller
from api.models.assets import Asset, AssetStatus, HolderKind
from api.scoping import asset_visible

MAX_STOCKTAKE_ASSETS: Final = 10_000
"""Assets compared in one rolling stocktake answer: a large store; bigger sites page by class."""


def expected_at(session: Session, caller: Caller, site_id: str,
                limit: int = MAX_STOCKTAKE_ASSETS) -> set[str]:
    """The assets the caller may see that the register holds in store at its site
    `site_id`."""
    return set(session.exec(select(Asset.id).where(
        asset_visible(caller), Asset.status == AssetStatus.IN_STORE.value,
        Asset.holder_kind == HolderKind.LOCATION.value, Asset.holder_ref == site_id,
        Asset.holder_agency_id == caller.agency_id,
    ).limit(limit)))


@dataclass(frozen=True, slots=True)
class Reconciled:
    """Five lists that add up: `expected` = `found` + `missing`; `unexpected` are the caller's
    items read that the site was not expected to hold; `unknown` are tags read that are not
    the caller's (unregistered, or another agency's kit not shared with it)."""

    expected: list[str]
    found: list[str]
    missing: list[str]
    unexpected: list[str]
    unknown: list[str]


def reconcile(looked_for: Collection[str], here: Collection[str], read: Collection[str],
              unknown: Iterable[str]) -> Reconciled:
    """`looked_for` (all the site's items `here`, or a sample of them) against the items
    `read`, with the `unknown` tags read."""
    wanted, held, seen = set(looked_for), set(here), set(read)
    return Reconciled(expected=sorted(wanted), found=sorted(wanted & seen),
                      missing=sorted(wanted - seen), unexpected=sorted(seen - held),
                      unknown=sorted(set(unknown)))
