"""Security headers on every response, API and pages alike: a Content Security Policy,
`X-Content-Type-Options: nosniff`, `Referrer-Policy`, and no framing.

The pages have no inline script or style (htmx and `pages.js` are files under /web/static),
so the policy allows scripts and styles from this origin only. ReDoc builds its styles at run
time (styled-components inserts `<style>` elements) and runs its search in a worker made from
a blob, so `/redoc` alone also allows inline styles and blob workers; scripts stay 'self'
everywhere. Swagger UI needs nothing more than the default.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Final

from starlette.datastructures import MutableHeaders
from starlette.responses import HTMLResponse
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

_STYLE_BLOCK: Final = re.compile(r"<style>(.*?)</style>", re.DOTALL)

HEADERS: Final = (
    ("x-content-type-options", "nosniff"),
    # Not no-referrer: under it browsers send `Origin: null` with our own forms, which the
    # sign-in's Origin check must refuse. same-origin sends nothing to any other site.
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
)


def self_contained_page(html: str) -> HTMLResponse:
    """A document made to stand alone (a receipt, kept as a file or printed) served as a page:
    its own `<style>` blocks are allowed by their SHA-256, and nothing else inline is."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in _STYLE_BLOCK.findall(html))
    policy = CSP.replace("style-src 'self';", f"style-src 'self' {hashes};") if hashes else CSP
    return HTMLResponse(html, headers={"content-security-policy": policy})


class SecurityHeaders:
    """ASGI middleware adding the headers to every HTTP response (errors included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = REDOC_CSP if scope.get("path") == REDOC_PATH else CSP

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A self-contained page brings the policy that allows its own styles.
                if "content-security-policy" not in headers:
                    headers["content-security-policy"] = policy
                for name, value in HEADERS:
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
