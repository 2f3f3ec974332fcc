"""Keyset pagination shared by every list route: `?limit=&after=` and a `next_after` cursor.

Keyset (not offset) pagination keeps deep pages as cheap as the first one and stable while
rows are being added.
"""

from __future__ import annotations

from typing import Annotated, Final, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel

MAX_PAGE: Final = 200
"""Rows per page: enough for a stocktake screen, bounded so one request stays cheap."""

T = TypeVar("T")

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]
After = Annotated[str | None, Query(max_length=128, description="cursor from `next_after`")]
IdPath = Annotated[str, Path(min_length=1, max_length=128)]
"""A registry id in the path (asset, reader, person, site): bounded like the ids themselves, so
an oversized one is refused before any query."""
OwnerQuery = Annotated[str | None, Query(
    min_length=1, max_length=128,
    description="the agency that owns the asset: ids are per agency, so an asset shared with "
                "yours is named by its owner too when another agency's has the same id")]


AfterOwner = Annotated[str | None, Query(
    min_length=1, max_length=128,
    description="cursor from `next_after_owner`, with `after`: ids are per agency, so an "
                "asset shared with yours may have the id of one of your own")]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_after: str | None = None
    next_after_owner: str | None = None
    """Asset lists only: the owner of the last item, for `after_owner`."""


def page_of(items: list[T], limit: int, key: str, owner_key: str | None = None) -> Page[T]:
    """A page from up to `limit + 1` fetched rows: the extra row only says there is more.
    `owner_key` names the last item's owner as well (rows ordered by key, then owner)."""
    more = len(items) > limit
    items = items[:limit]
    if not more:
        return Page[T](items=items)
    return Page[T](items=items, next_after=str(getattr(items[-1], key)),
                   next_after_owner=str(getattr(items[-1], owner_key)) if owner_key else None)
