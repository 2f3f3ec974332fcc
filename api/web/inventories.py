"""The inventory pages: the agency's stocktakes (of one site, if asked) and one inventory's
result, as `GET /v1/inventories` and `GET /v1/inventories/{id}` give them (scope
`assets:read`), reached from the agency page's sites.

Reading only: sessions are opened, completed and uploaded through the REST API, by the desk
or handheld that reads them (`api.routes.inventories`)."""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import col, select

from api.deps import SessionDep
from api.inventories import looked_for
from api.models.inventories import Inventory
from api.problems import not_found
from api.web.session import AssetsUser
from api.web.templating import page
from ledger.core.bounds import MAX_ID_CHARS
from ledger.core.sampling import BASIS_POINTS

router = APIRouter(prefix="/web", include_in_schema=False)

MAX_LISTED: Final = 100
"""Inventories listed, newest first; older ones through `GET /v1/inventories`."""


def percent(basis_points: int | None) -> str:
    """A share in basis points as the pages print it."""
    return "—" if basis_points is None else f"{100 * basis_points / BASIS_POINTS:.2f} %"


@router.get("/inventories", response_class=HTMLResponse)
def inventories(request: Request, session: SessionDep, user: AssetsUser,
                site: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None
                ) -> Response:
    """The agency's inventories, newest first."""
    query = select(Inventory).where(Inventory.agency_id == user.caller.agency_id)
    if site:
        query = query.where(Inventory.site_id == site)
    rows = list(session.exec(query.order_by(col(Inventory.id).desc()).limit(MAX_LISTED)))
    return page(request, "inventories.html", user=user, rows=rows, site=site,
                percent=percent)


@router.get("/inventories/{inventory_id}", response_class=HTMLResponse)
def inventory(request: Request, session: SessionDep, user: AssetsUser,
              inventory_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> Response:
    """One inventory: how it was taken, its figures, and its lists."""
    row = session.get(Inventory, inventory_id)
    if row is None or row.agency_id != user.caller.agency_id:
        raise not_found("inventory")
    return page(request, "inventory.html", user=user, row=row, looked_for=looked_for(row),
                percent=percent)
