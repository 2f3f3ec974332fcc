"""Errors as RFC 9457 problem details (`application/problem+json`).

Every error the API returns has the same shape: `type`, `title`, `status`, `detail`. Validation
errors list where the request was wrong but never echo the offending input back (it may be a
key or personal data). Unexpected errors are logged (without a database error's parameters)
and answered with a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


_TITLES: Final = {
    400: "Bad request", 401: "Not authenticated", 403: "Forbidden", 404: "Not found",
    405: "Method not allowed", 409: "Conflict", 413: "Payload too large",
    415: "Unsupported media type", 422: "Invalid request", 429: "Too many requests",
}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    slug = exc.slug if isinstance(exc, Problem) else f"http-{exc.status_code}"
    title = _TITLES.get(exc.status_code, "Error")
    response = problem_response(exc.status_code, slug, title, str(exc.detail))
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


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))[:200]}
        for err in exc.errors()[:MAX_VALIDATION_ERRORS]
    ]
    return problem_response(422, "validation", "Invalid request",
                            "the request does not match the schema", errors=errors)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The same error object is logged again by the server after this handler: redact it once.
    redact_database_values(exc)
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal", "Internal error", "an unexpected error occurred")


def install(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
