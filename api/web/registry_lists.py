"""The registry's list pages: assets, asset classes, people, readers and sites, each with its
filters, a page at a time, and the same list (with the same filters) as a CSV export.

Each list needs the scope its REST list needs: assets `assets:read` (`GET /v1/assets`, and
with the same scoping: the agency's own assets and those shared with it), the others `admin`
(`GET /v1/sites`, `/v1/readers`, `/v1/asset-classes`). Pages are keyset-paged by id, as the
API's lists are.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any, Final
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import and_, or_
from sqlmodel import col, select

from api.auth import Caller
from api.db import utcnow
from api.deps import SessionDep
from api.models.assets import Asset, AssetClass, AssetStatus, HolderKind
from api.models.clients import Scope
from api.models.people import Badge, Person
from api.models.registry import Reader, ReaderRole, ReaderStatus, Site
from api.registry_csv import export_csv
from api.routes.assets import seen_by_own_reader
from api.scoping import asset_visible
from api.web.session import CurrentUser, PageForbidden, WebUser
from api.web.templating import owner_query, page
from ledger.core.bounds import ID_PATTERN, MAX_ID_CHARS

router = APIRouter(prefix="/web/registry", include_in_schema=False)

PAGE_ROWS: Final = 50
"""Rows on one page; the next page starts after the last id shown."""
MAX_EXPORT_ROWS: Final = 20_000
"""Rows in one export: a force's whole kit list; past it, narrow the filters."""
OUT: Final = (AssetStatus.CHECKED_OUT.value, AssetStatus.ON_LOAN.value)


class FilterError(ValueError):
    """A filter value the list cannot use (an unknown status, a malformed date)."""


@dataclass(frozen=True, slots=True)
class Filter:
    name: str
    label: str
    kind: str = "text"  # text, select, date or check
    options: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Listing:
    """One registry list: who may see it, its filters, its query and its columns."""

    kind: str
    title: str
    table: Any
    scope: Scope
    write_scope: Scope
    filters: tuple[Filter, ...]
    columns: tuple[str, ...]
    query: Callable[[Caller, Mapping[str, str], datetime], Any]
    cells: Callable[[Any], tuple[object, ...]]
    links: Mapping[str, str] = field(default_factory=dict)
    """Column -> page its value links to (`{}` is the value)."""


def _day(value: str, name: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise FilterError(f"{name} must be a date, YYYY-MM-DD") from None


def _assets(caller: Caller, f: Mapping[str, str], now: datetime) -> Any:
    query = select(Asset).where(asset_visible(caller))
    if q := f.get("q"):
        query = query.where(or_(col(Asset.id).contains(q, autoescape=True),
                                col(Asset.epc_hex) == q.upper()))
    if status := f.get("status"):
        if status not in set(AssetStatus):
            raise FilterError(f"status must be one of {', '.join(AssetStatus)}")
        query = query.where(Asset.status == status)
    # Classes, sites and people are the caller's own, as on `GET /v1/assets`: kit shared with
    # it is of its owner's classes and home sites, and is at the caller's sites or with its
    # people only while lent to it (`holder_agency_id`).
    mine = caller.agency_id
    if class_id := f.get("class"):
        query = query.where(Asset.agency_id == mine, Asset.class_id == class_id)
    if site := f.get("site"):
        query = query.where(or_(
            and_(col(Asset.agency_id) == mine, col(Asset.home_site_id) == site),
            and_(col(Asset.holder_agency_id) == mine, col(Asset.holder_ref) == site),
            and_(col(Asset.last_seen_site_id) == site, seen_by_own_reader(caller))))
    if holder := f.get("holder"):
        query = query.where(Asset.holder_ref == holder, or_(
            col(Asset.holder_kind) == HolderKind.AGENCY.value,
            col(Asset.holder_agency_id) == mine))
    if f.get("overdue"):
        query = query.where(col(Asset.status).in_(OUT), col(Asset.due_at) < now)
    if after := f.get("seen_after"):
        query = query.where(col(Asset.last_seen_at) >= _day(after, "seen after"))
    if before := f.get("seen_before"):
        query = query.where(col(Asset.last_seen_at) < _day(before, "seen before"))
    return query


def _own(table: Any) -> Callable[[Caller, Mapping[str, str], datetime], Any]:
    """An agency-owned table searched by id (and name, where it has one)."""

    def query(caller: Caller, f: Mapping[str, str], now: datetime) -> Any:
        found = select(table).where(table.agency_id == caller.agency_id)
        if q := f.get("q"):
            named = [col(table.name).contains(q, autoescape=True)] if hasattr(table, "name") \
                else []
            found = found.where(or_(col(table.id).contains(q, autoescape=True), *named))
        if (status := f.get("status")) and table is Reader:
            found = found.where(Reader.status == status)
        if (site := f.get("site")) and table is Reader:
            found = found.where(Reader.site_id == site)
        if (wanted := f.get("active")) and table is Person:
            found = found.where(Person.active == (wanted == "yes"))
        return found

    return query


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else ""


LISTINGS: Final = {x.kind: x for x in (
    Listing("assets", "Assets", Asset, Scope.ASSETS_READ, Scope.ASSETS_WRITE,
            (Filter("q", "Id or EPC"), Filter("status", "Status", "select", tuple(AssetStatus)),
             Filter("class", "Class"), Filter("site", "Site"), Filter("holder", "Holder"),
             Filter("overdue", "Overdue only", "check"),
             Filter("seen_after", "Last seen on or after", "date"),
             Filter("seen_before", "Last seen before", "date")),
            ("id", "class", "status", "held by", "holder", "home site", "due", "last seen",
             "seen at site", "EPC"),
            _assets,
            lambda a: (a.id, a.class_id, a.status, a.holder_kind, a.holder_ref, a.home_site_id,
                       _when(a.due_at), _when(a.last_seen_at), a.last_seen_site_id, a.epc_hex),
            {"id": "/web/assets/{}"}),
    Listing("classes", "Asset classes", AssetClass, Scope.ADMIN, Scope.ADMIN,
            (Filter("q", "Id or name"),),
            ("id", "name", "required qualification", "loan days", "dual sign-off",
             "disposal final"),
            _own(AssetClass),
            lambda c: (c.id, c.name, c.required_qualification, c.loan_days,
                       "yes" if c.dual_signoff else "no", "yes" if c.disposal_final else "no"),
            {"id": "/web/registry/assets?class={}"}),
    Listing("people", "People", Person, Scope.ADMIN, Scope.ADMIN,
            (Filter("q", "Id"), Filter("active", "Active", "select", ("yes", "no"))),
            ("id", "qualifications", "badges", "active"),
            _own(Person),
            lambda p: (p.id, "; ".join(p.qualifications), "", "yes" if p.active else "no"),
            {"id": "/web/registry/assets?holder={}"}),
    Listing("readers", "Readers", Reader, Scope.ADMIN, Scope.ADMIN,
            (Filter("q", "Id"), Filter("site", "Site"),
             Filter("status", "Status", "select", tuple(ReaderStatus))),
            ("id", "site", "role", "zones", "status", "key id", "registered", "revoked"),
            _own(Reader),
            lambda r: (r.id, r.site_id, r.role,
                       "; ".join(f"{k}={v}" for k, v in sorted(r.zones.items())), r.status,
                       r.key_id, _when(r.registered_at), _when(r.revoked_at))),
    Listing("sites", "Sites", Site, Scope.ADMIN, Scope.ADMIN, (Filter("q", "Id or name"),),
            ("id", "name", "custodian"), _own(Site), lambda s: (s.id, s.name, s.custodian_id),
            {"id": "/web/registry/assets?site={}", "custodian": "/web/registry/people?q={}"}),
)}
ROLES: Final = tuple(ReaderRole)


def listing_for(kind: str, user: WebUser) -> Listing:
    """The list `kind` if `user` may see it: 404 for no such list, 403 without its scope."""
    listing = LISTINGS.get(kind)
    if listing is None:
        raise HTTPException(404, "no such registry list")
    if not user.caller.may(listing.scope):
        raise PageForbidden(listing.scope)
    return listing


def _filters(request: Request, listing: Listing) -> dict[str, str]:
    """The list's filters from the query string: known names only, each bounded."""
    values = {}
    for f in listing.filters:
        value = request.query_params.get(f.name, "").strip()
        if len(value) > MAX_ID_CHARS:
            raise FilterError(f"{f.label} is longer than {MAX_ID_CHARS} characters")
        if value:
            values[f.name] = value
    return values


def _badges(session: SessionDep, agency_id: str, people: list[Person]) -> dict[str, list[str]]:
    badges: dict[str, list[str]] = {p.id: [] for p in people}
    for badge in session.exec(select(Badge).where(
            Badge.agency_id == agency_id, col(Badge.person_id).in_(list(badges)))):
        badges[badge.person_id].append(badge.epc_hex)
    return badges


def _rows(session: SessionDep, caller: Caller, listing: Listing,
          rows: list[Any]) -> list[tuple[object, ...]]:
    cells = [listing.cells(r) for r in rows]
    if listing.kind == "people":  # badges are rows of their own
        badges = _badges(session, caller.agency_id, rows)
        cells = [(c[0], c[1], "; ".join(sorted(badges[str(c[0])])), c[3]) for c in cells]
    return cells


def _links(caller: Caller, listing: Listing, row: Any,
           cells: tuple[object, ...]) -> dict[str, str]:
    """Column -> where its value links to, and "edit" -> the row's change form if the
    caller's agency owns the row. An asset another agency shared links to its page with
    `?owner=` (ids are per agency: the id alone would name the caller's own asset first)."""
    links = {"edit": f"/web/registry/{listing.kind}/{cells[0]}/edit"} \
        if row.agency_id == caller.agency_id else {}
    for column, target in listing.links.items():
        value = cells[listing.columns.index(column)]
        if value:
            links[column] = target.format(quote(str(value)))
            if column == "id" and listing.table is Asset:
                links[column] += owner_query(row.agency_id, caller.agency_id)
    return links


def _order(listing: Listing) -> tuple[Any, ...]:
    """Rows by id, then by agency (an asset shared with the caller may have the id of one of
    its own)."""
    return col(listing.table.id), col(listing.table.agency_id)


def _after(table: Any, after: str, owner: str) -> Any:
    """Rows after the last one shown (id `after` of agency `owner`), in `_order`."""
    if not owner:
        return col(table.id) > after
    return or_(col(table.id) > after,
               and_(col(table.id) == after, col(table.agency_id) > owner))


@router.get("/{kind}", response_class=HTMLResponse)
def registry_list(kind: str, request: Request, session: SessionDep,
                  user: CurrentUser) -> Response:
    """A registry list, filtered, one page of it."""
    listing = listing_for(kind, user)
    after = request.query_params.get("after", "")[:MAX_ID_CHARS]
    after_owner = request.query_params.get("after_owner", "")[:MAX_ID_CHARS]
    error, rows, links, more, found = None, [], [], False, []
    try:
        filters = _filters(request, listing)
        query = listing.query(user.caller, filters, utcnow())
        if after:
            query = query.where(_after(listing.table, after, after_owner))
        found = list(session.exec(query.order_by(*_order(listing)).limit(PAGE_ROWS + 1)))
        shown_rows = found[:PAGE_ROWS]
        rows, more = _rows(session, user.caller, listing, shown_rows), len(found) > PAGE_ROWS
        links = [_links(user.caller, listing, r, c) for r, c in zip(shown_rows, rows, strict=True)]
    except FilterError as exc:
        filters, error = {}, str(exc)
    shown = {k: v for k, v in request.query_params.items()
             if k in {f.name for f in listing.filters}}
    return page(request, "registry_list.html", status_code=422 if error else 200, user=user,
                listing=listing, listings=LISTINGS, filters=filters, shown=shown, rows=rows,
                more=more, error=error, query=request.url.query, links=links,
                next_after=str(rows[-1][0]) if more else None,
                next_owner=found[PAGE_ROWS - 1].agency_id if more else None,
                done=_shown_id(request.query_params.get("done", "")))


def _shown_id(value: str) -> str:
    """The id a form just saved, echoed only if it is an id (never free text from a link)."""
    return value if len(value) <= MAX_ID_CHARS and re.fullmatch(ID_PATTERN, value) else ""


@router.get("/{kind}/export.csv")
def registry_export(kind: str, request: Request, session: SessionDep,
                    user: CurrentUser) -> Response:
    """The list with its current filters as CSV (every page, up to `MAX_EXPORT_ROWS`)."""
    listing = listing_for(kind, user)
    try:
        query = listing.query(user.caller, _filters(request, listing), utcnow())
    except FilterError as exc:
        raise HTTPException(422, str(exc)) from None
    found = list(session.exec(query.order_by(*_order(listing)).limit(MAX_EXPORT_ROWS + 1)))
    if len(found) > MAX_EXPORT_ROWS:
        raise HTTPException(422, f"more than {MAX_EXPORT_ROWS} rows: narrow the filters")
    body = export_csv(listing.columns, _rows(session, user.caller, listing, found))
    return Response(body, media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{kind}.csv"',
        "Cache-Control": "no-store"})
