"""Liveness, readiness and Prometheus metrics.

Liveness and readiness need no key: they say only that the service runs. `/metrics` does:
its labels name every agency with a log, so it is served only with the operator's metrics key
(setting `metrics_key`, sent as a bearer token) and answers 404 when none is set.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from api.anchor_status import not_ready_reason
from api.deps import BearerDep, SettingsDep, address_of, get_limiter, refuse_if_limited
from api.errors import MigrationError
from api.migrate import current_revision, head_revision
from api.node import node_id
from api.problems import ERROR_RESPONSES, Problem, problem_documented
from api.roles import roles_of_node

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem_documented("Not ready, and why")})
def readyz(request: Request) -> dict[str, str | list[str]]:
    """The database answers, its schema is the one this code expects, and anchoring (when it
    has reported) needs no operator: configured but unusable, a contract gone, a chain
    replaced, anchors lost or a log halted answer 503 with the reason (`api.anchor_status`).
    With this node's id and the roles it holds (`api.roles`: the anchorer, the webhook
    dispatcher, the scans)."""
    engine: Engine = request.app.state.engine
    node = node_id(request.app.state.settings)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        revision = current_revision(engine)
        roles = roles_of_node(engine, node)
    except (SQLAlchemyError, MigrationError):
        raise Problem(503, "not-ready", "database unavailable") from None
    if revision != head_revision(engine):
        raise Problem(503, "not-ready", "database schema is not at the current revision")
    try:
        with Session(engine) as session:
            anchoring = not_ready_reason(session)
    except SQLAlchemyError:
        raise Problem(503, "not-ready", "database unavailable") from None
    if anchoring is not None:
        raise Problem(503, "not-ready", f"anchoring: {anchoring}")
    return {"status": "ready", "revision": str(revision), "node": node, "roles": roles}


@router.get("/metrics", response_class=PlainTextResponse, responses={
    200: {"description": "Prometheus text exposition format",
          "content": {"text/plain": {"schema": {"type": "string"}}}},
    401: problem_documented("No or a wrong metrics key"),
    404: problem_documented("No metrics key is set"),
    429: ERROR_RESPONSES[429]})
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
