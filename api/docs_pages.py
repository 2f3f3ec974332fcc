"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc` (ReDoc), served offline.

FastAPI's own pages load both from a CDN (blank on a store network without internet) and
start Swagger UI with an inline script, which the Content Security Policy refuses. These pages
load the assets the `fastapi-offline` package ships (Swagger UI and ReDoc, MIT and Apache-2.0
licensed, served from `/docs/static`) and start Swagger UI from `swagger-init.js`, a file of
ours beside the web pages' scripts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS: Final = Path(fastapi_offline.__file__).parent / "static"
"""swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png."""

_SWAGGER: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - Swagger UI</title>
<link rel="icon" href="/docs/static/favicon.png">
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi_url}"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/web/static/swagger-init.js"></script>
</body>
</html>
"""

_REDOC: Final = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - ReDoc</title>
<link rel="icon" href="/docs/static/favicon.png">
</head>
<body>
<redoc spec-url="{openapi_url}"></redoc>
<script src="/docs/static/redoc.standalone.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Add `/docs`, `/redoc` and their assets (create the app with `docs_url=None` and
    `redoc_url=None`)."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.format(title=title, openapi_url=openapi_url))

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.format(title=title, openapi_url=openapi_url))

    app.mount("/docs/static", StaticFiles(directory=ASSETS), name="docs-static")
