"""The FastAPI application factory: settings and engine in, app out; nothing at import time."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine

from api import docs_pages, problems, web
from api.accounts.oidc import ProviderDirectory
from api.auth_limits import FailedAuthLimiter
from api.config import Settings, load_settings
from api.db import make_engine
from api.routes import (
    accounts,
    assets,
    audit,
    clients,
    custody,
    evidence,
    health,
    inventories,
    maintenance,
    operations,
    planning,
    property_room,
    receipts,
    registry,
    reservations,
    tiles,
    webhooks,
)
from api.security_headers import SecurityHeaders
from api.storable_text import StorableTextGuard

API_VERSION = "1.0.0"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The API for `settings` (default: from the environment) on `engine` (default: built
    from the settings)."""
    settings = settings or load_settings()
    app = FastAPI(
        title="kitledger API", version=API_VERSION,
        description="Chain of custody for shared public-safety kit.",
        docs_url=None, redoc_url=None,  # served offline by api.docs_pages
    )
    app.state.settings = settings
    app.state.engine = engine or make_engine(settings)
    app.state.auth_limiter = FailedAuthLimiter(settings.auth_failure_limit,
                                               settings.auth_failure_window_s)
    app.state.oidc = ProviderDirectory(settings.oidc_providers)
    problems.install(app)
    app.add_middleware(StorableTextGuard)  # NUL and lone surrogates: 422 on every route
    app.add_middleware(SecurityHeaders)  # CSP, nosniff, Referrer-Policy on every answer
    app.include_router(health.router)
    docs_pages.install(app)
    for module in (registry, assets, custody, evidence, property_room, receipts, maintenance,
                   reservations, inventories, audit, tiles, operations, webhooks, clients,
                   accounts, planning):
        app.include_router(module.router, responses=problems.ERROR_RESPONSES)
    web.install(app)  # the server-rendered pages under /web (api.web)
    return app
