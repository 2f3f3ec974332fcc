"""The Jinja2 environment of the web pages (autoescaping on) and the page renderer."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def owner_query(owner: str, viewer: str) -> str:
    """What a link to an asset of agency `owner` adds for a page of agency `viewer`: nothing
    for its own, `?owner=` for one another agency shared with it (ids are per agency, so the
    id alone may name the viewer's own asset)."""
    return "" if owner == viewer else f"?owner={quote(owner, safe='')}"


TEMPLATES.env.globals["owner_query"] = owner_query


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render template `name`; pages are never cached (they show live custody state)."""
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response
