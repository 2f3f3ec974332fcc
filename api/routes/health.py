"""Liveness, readiness and Prometheus metrics.

Liveness and readiness need no key: they say only that the service runs. `/metrics` does:
its labels name every agency with a log, so it is served only with the operator's metrics key
(setting `metrics_key`, sent as a bearer token) and answers 404 when none is set.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from api.deps import BearerDep, SettingsDep, address_of, get_limiter, refuse_if_limited
from api.errors import MigrationError
from api.migrate import current_revision, head_revision
from api.problems import Problem

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> dict[str, str]:
    """The database answers and its schema is the one this code expects."""
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
    except (SQLAlchemyError, MigrationError):
        raise Problem(503, "not-ready", "database unavailable") from None
    if revision != head_revision(engine):
        raise Problem(503, "not-ready", "database schema is not at the current revision")
    return {"status": "ready", "revision": str(revision)}


@router.get("/metrics", responses={401: {"description": "No or a wrong metrics key"},
                                    404: {"description": "No metrics key is set"}})
def metrics(request: Request, settings: SettingsDep, credentials: BearerDep) -> Response:
    """Prometheus exposition of the process's metrics (bearer: the metrics key)."""
    if settings.metrics_key is None:
        raise Problem(404, "not-found", "metrics are off: set KITLEDGER_METRICS_KEY to serve them")
    refuse_if_limited(request)
    presented = credentials.credentials.encode() if credentials is not None else b""
    if not hmac.compare_digest(presented, settings.metrics_key.get_secret_value().encode()):
        if presented:
            get_limiter(request).failed(address_of(request))
        raise Problem(401, "unauthenticated", "send the metrics key as 'Authorization: Bearer'")
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
