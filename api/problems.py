"""Errors as RFC 9457 problem details (`application/problem+json`), or as a page for browsers.

Every error the API returns has the same shape: `type`, `title`, `status`, `detail`. A
browser (a request whose Accept prefers `text/html`, as every browser's navigation does) gets
the same fields as an HTML page instead (`api.web.problem_page`); API clients, which ask for
JSON or send no preference, keep the problem JSON. Validation
errors list where the request was wrong but never echo the offending input back (it may be a
key or personal data). Unexpected errors are logged (without a database error's parameters)
and answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.json_logging import redact_database_values

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
TYPE_BASE: Final = "https://kitledger.example/problems/"
_METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
MAX_VALIDATION_ERRORS: Final = 20
"""Problems listed for one bad request: enough to fix it, bounded for hostile bodies."""


class ProblemDetail(BaseModel):
    """The documented shape of every error answer (validation errors add `errors`)."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


def problem_documented(description: str) -> dict[str, Any]:
    # Inline under the problem media type (a `model` would be filed under application/json).
    return {"description": description,
            "content": {PROBLEM_JSON: {"schema": ProblemDetail.model_json_schema()}}}


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: problem_documented("The body is not parseable"),
    401: problem_documented("No or an unknown API key"),
    403: problem_documented("The API key lacks the scope"),
    404: problem_documented("Not found, or not visible to the caller's agency"),
    409: problem_documented("Conflicts with the current state or an existing record"),
    413: problem_documented("The body is larger than any route accepts (32 MiB)"),
    422: problem_documented("The request does not match the schema"),
    429: problem_documented("Too many failed authentications from this address or for this key; "
                     "see Retry-After"),
}
"""Errors every authenticated /v1 route can answer, documented in the OpenAPI document so
clients (and schemathesis) know them."""


class Problem(HTTPException):
    """An HTTP error with a problem type slug, raised by routes."""

    def __init__(self, status: int, slug: str, detail: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(status_code=status, detail=detail, headers=headers)
        self.slug = slug


def not_found(what: str) -> Problem:
    # The same answer whether the thing does not exist or belongs to another agency, so
    # callers cannot probe other agencies' ids.
    return Problem(404, "not-found", f"{what} not found")


def problem_response(
    status: int, slug: str, title: str, detail: str, **extra: Any
) -> JSONResponse:
    body = {"type": TYPE_BASE + slug, "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON)


MAX_ACCEPT_CHARS: Final = 1024
"""Accept headers longer than this are not parsed: the answer is the problem JSON."""


def wants_html(request: Request) -> bool:
    """Whether the client prefers `text/html` to JSON: a browser's navigation does
    (`text/html,...,*/*;q=0.8`); an API client sends JSON, `*/*` or nothing."""
    accept = request.headers.get("accept", "")
    if not accept or len(accept) > MAX_ACCEPT_CHARS:
        return False
    html = json = 0.0
    for part in accept.split(","):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0
        media = media.strip().lower()
        if media in ("text/html", "application/xhtml+xml"):
            html = max(html, quality)
        elif media in ("application/json", PROBLEM_JSON):
            json = max(json, quality)
    return html > 0 and html > json


def answer_problem(request: Request, status: int, slug: str, title: str, detail: str,
                   **extra: Any) -> Response:
    """The problem as JSON, or as a page if the client is a browser."""
    if wants_html(request):
        from api.web.problem_page import problem_page  # the pages import this module

        return problem_page(request, status, title, detail, **extra)
    return problem_response(status, slug, title, detail, **extra)


_TITLES: Final = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
    415: "Unsupported media type", 422: "Invalid request", 429: "Too many requests",
}


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    slug = exc.slug if isinstance(exc, Problem) else f"http-{exc.status_code}"
    title = _TITLES.get(exc.status_code, "Error")
    response = answer_problem(request, exc.status_code, slug, title, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = ", ".join(_allowed_methods(request))
    return response


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path answers. Starlette's 405 names only the methods of the
    first route whose path matched, but FastAPI makes one route per method (GET and POST on
    /v1/sites are two), so its `Allow` would leave the others out: ask the router, method by
    method, which would take the request."""
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
                   for route in routes)]


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))[:200]}
        for err in exc.errors()[:MAX_VALIDATION_ERRORS]
    ]
    return answer_problem(request, 422, "validation", "Invalid request",
                          "the request does not match the schema", errors=errors)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # The same error object is logged again by the server after this handler: redact it once.
    redact_database_values(exc)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return answer_problem(request, 500, "internal", "Internal error",
                          "an unexpected error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
