"""Security headers on every response, API and pages alike: a Content Security Policy,
`X-Content-Type-Options: nosniff`, `Referrer-Policy`, and no framing.

The pages have no inline script or style (htmx and `pages.js` are files under /web/static),
so the policy allows scripts and styles from this origin only. ReDoc builds its styles at run
time (styled-components inserts `<style>` elements) and runs its search in a worker made from
a blob, so `/redoc` alone also allows inline styles and blob workers; scripts stay 'self'
everywhere. The HTML custody report is one document with its print styles inline: its path
allows inline styles and no script at all. Swagger UI needs nothing more than the default.
"""

from __future__ import annotations

from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'")
"""The policy of every response but ReDoc's."""
REDOC_CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                    "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; "
                    "worker-src 'self' blob:; form-action 'self'; base-uri 'none'; "
                    "frame-ancestors 'none'")
"""ReDoc's page: inline styles and a blob worker, and still no script but our files."""
REDOC_PATH: Final = "/redoc"
REPORT_CSP: Final = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                     "form-action 'none'; base-uri 'none'; frame-ancestors 'none'")
"""The HTML custody report (`api.web.audit.collection_report`): one self-contained document
whose print styles are inline (the same template makes the PDF), so inline styles and no
script at all."""
REPORT_PATH: Final = "/web/audit/report"

HEADERS: Final = (
    ("x-content-type-options", "nosniff"),
    # Not no-referrer: under it browsers send `Origin: null` with our own forms, which the
    # sign-in's Origin check must refuse. same-origin sends nothing to any other site.
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
)


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = {REDOC_PATH: REDOC_CSP, REPORT_PATH: REPORT_CSP}.get(scope.get("path", ""), CSP)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["content-security-policy"] = policy
                for name, value in HEADERS:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
