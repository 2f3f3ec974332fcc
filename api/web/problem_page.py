"""An error as a page, for browsers: the problem's title, status and detail, and a way on.

`api.problems` answers a browser with this instead of the problem JSON an API client gets
(a mistyped asset link shows "Not found" with a link back, not raw JSON). The page carries the
same facts as the JSON and nothing more: no stack, no echoed input.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.web.templating import page


def problem_page(request: Request, status: int, title: str, detail: str,
                 **extra: Any) -> HTMLResponse:
    """The problem page; `extra["errors"]`, if any, lists where a request was wrong."""
    errors = extra.get("errors") or []
    return page(request, "problem.html", status_code=status, title=title, status=status,
                detail=detail, errors=errors)
