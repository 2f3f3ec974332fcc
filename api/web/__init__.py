"""The web pages for stores staff, auditors and agencies: server-rendered HTML with htmx.

`install(app)` adds the sign-in pages, the working pages (the desk with its live stream and
alert buttons and its "none in store" form, the auditor's, the asset page, the agency page and
its pool planning page), the registry's lists and forms
(`registry_lists`, `registry_forms`: assets, classes, people, readers, sites, with CSV import
and export), the property room's maintenance and bookings (`property_room`), the agency
admin's accounts page (`accounts_page`) and `/web/static` (htmx is vendored there: no CDN,
nothing fetched at run time). Pages use the REST API's scoping (`api.scoping`) through the
same `Caller`, and the same scopes (`api.web.session`), so a page never shows more than the API
would. No page has inline script or style: the Content Security Policy
(`api.security_headers`) allows only files served from here.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from api.web import (
    accounts_page,
    agency,
    asset_page,
    audit,
    desk,
    desk_alerts,
    desk_stream,
    inventories,
    login,
    planning,
    property_room,
    registry_forms,
    registry_lists,
    sso,
)
from api.web.session import CrossSiteForm, PageForbidden, SignInRequired
from api.web.templating import page

STATIC_DIR = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Add the web routes and static files to `app`."""

    async def to_sign_in(request: Request, exc: Exception) -> Response:
        return RedirectResponse("/web/login", status_code=303)

    async def forbidden(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageForbidden)
        return page(request, "forbidden.html", status_code=403, scope=exc.scope.value)

    async def cross_site(request: Request, exc: Exception) -> Response:
        return Response("form posted from another site", status_code=403)

    app.add_exception_handler(SignInRequired, to_sign_in)
    app.add_exception_handler(PageForbidden, forbidden)
    app.add_exception_handler(CrossSiteForm, cross_site)
    for module in (login, sso, desk, desk_stream, desk_alerts, audit, asset_page, agency,
                   inventories, planning, registry_forms, registry_lists, property_room,
                   accounts_page):
        app.include_router(module.router)
    app.mount("/web/static", StaticFiles(directory=STATIC_DIR), name="web-static")
