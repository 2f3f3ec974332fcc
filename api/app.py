"""The FastAPI application factory: settings and engine in, app out; nothing at import time."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from api import problems, web
from api.config import Settings, load_settings
from api.db import make_engine
from api.routes import assets, audit, custody, health, operations, registry, webhooks
from api.storable_text import StorableTextGuard

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment) on `engine` (default: built
    from the settings)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="kitledger API", version=API_VERSION,
        description="Chain of custody for shared public-safety kit.",
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings)
    problems.install(app)
    app.add_middleware(StorableTextGuard)  # NUL and lone surrogates: 422 on every route
    app.include_router(health.router)
    for module in (registry, assets, custody, audit, operations, webhooks):
        app.include_router(module.router, responses=problems.ERROR_RESPONSES)
    web.install(app)  # the server-rendered pages under /web (api.web)
    return app
