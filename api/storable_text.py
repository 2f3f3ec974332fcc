"""Refuses, before any route runs, request text that the database cannot store, and bodies
larger than any route takes.

PostgreSQL `text` holds no NUL (U+0000), and no database driver encodes an unpaired UTF-16
surrogate (U+D800 to U+DFFF, which JSON's `\\ud800` escapes and Python's JSON decoder let
through). Such a character in any string a route accepts would reach the database and fail
there as an unexpected error. One ASGI middleware checks every request's decoded path, query
string and body (JSON or an HTML form) and answers 422 with a problem that says which part was
wrong, so routes added later are covered without listing them.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import answer_problem

UNSTORABLE: Final = re.compile("[\x00\ud800-\udfff]")
"""Characters no stored text may hold: NUL and unpaired surrogates."""

_JSON_MAY_HOLD_UNSTORABLE: Final = re.compile(rb"\\u|\xed[\xa0-\xbf]")
"""Raw NUL is not valid JSON, so a NUL or surrogate arrives escaped (`\\u0000`) or as the
surrogate's own UTF-8 bytes (which Python's decoder passes): bodies with neither skip parsing."""

MAX_BODY_BYTES: Final = 32 * 1024 * 1024
"""The largest request body any route is given. This guard reads a body whole before a route
sees it, so it bounds what one request can make the server hold; the largest route limit
below it is a handheld's stocktake upload (24 MiB, `api.inventories`)."""

MAX_JSON_DEPTH: Final = 64
"""Nesting searched in a JSON body; deeper bodies are the schema's to refuse."""


def _has_unstorable(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        return UNSTORABLE.search(value) is not None
    if depth > MAX_JSON_DEPTH:
        return False
    if isinstance(value, dict):
        return any(_has_unstorable(k, depth + 1) or _has_unstorable(v, depth + 1)
                   for k, v in value.items())
    if isinstance(value, list):
        return any(_has_unstorable(v, depth + 1) for v in value)
    return False


def _form_has_nul(encoded: bytes) -> bool:
    # Percent-decoding bytes never makes a surrogate (the parser replaces invalid UTF-8).
    return b"\x00" in unquote_to_bytes(encoded)


def _body_has_unstorable(content_type: str, body: bytes) -> bool:
    if "json" in content_type:
        if not (_JSON_MAY_HOLD_UNSTORABLE.search(body) or b"%00" in body or b"\x00" in body):
            return False
        try:
            return _has_unstorable(json.loads(body))  # "%00" inside a JSON string is storable
        except (ValueError, RecursionError):
            pass  # not JSON: the route's own parsing answers 422, or reads it as a form
    # The pages read any body as a form whatever its declared type, and no route takes binary
    # uploads, so any other body is checked as a form (which finds raw NULs too).
    return _form_has_nul(body)


class StorableTextGuard:
    """ASGI middleware: a request whose path, query or body holds a character the database
    cannot store gets 422 (`unstorable-character`) and never reaches a route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if UNSTORABLE.search(scope["path"]):
            await self._refuse("path", scope, receive, send)
            return
        if _form_has_nul(scope.get("query_string", b"")):
            await self._refuse("query", scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: nothing to check, nothing to answer
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                await self._too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = dict(scope.get("headers", ()))
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if body and _body_has_unstorable(content_type, body):
            await self._refuse("body", scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    @staticmethod
    async def _too_large(scope: Scope, receive: Receive, send: Send) -> None:
        response = answer_problem(
            Request(scope), 413, "body-too-large", "Payload too large",
            f"the request body is over {MAX_BODY_BYTES // (1024 * 1024)} MiB, "
            "more than any route accepts")
        response.headers["Connection"] = "close"  # the rest of the body is not read
        await response(scope, receive, send)

    @staticmethod
    async def _refuse(where: str, scope: Scope, receive: Receive, send: Send) -> None:
        # A browser gets the problem as a page, as every other refusal of the pages is answered.
        response = answer_problem(
            Request(scope), 422, "unstorable-character", "Invalid request",
            f"the request {where} holds a NUL or an unpaired surrogate character, "
            "which cannot be stored",
            errors=[{"loc": [where], "msg": "NUL and unpaired surrogates are not accepted"}],
        )
        await response(scope, receive, send)
