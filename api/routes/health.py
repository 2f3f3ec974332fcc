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
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from api.deps import BearerDep, SettingsDep, address_of, get_limiter, refuse_if_limited
from api.node import node_id
from api.problems import ERROR_RESPONSES, Problem, problem_documented
from api.readiness import check
from api.roles import roles_of_node

router = APIRouter(tags=["operations"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: problem_documented("Not ready, and why")})
def readyz(request: Request) -> dict[str, str | list[str]]:
    """Every condition of `api.readiness` holds: the database answers at the current schema,
    this node's ingest workers are subscribed to the broker, and anchoring needs no operator
    (settings and log keys that work, a log the consortium has authorised, a chain not
    replaced or unreachable for long, its process reporting, its backlog under
    `anchor_backlog_max`); else 503 with the reasons. With this node's id and the roles it
    holds (`api.roles`: the anchorer, the webhook dispatcher, the scans)."""
    engine: Engine = request.app.state.engine
    settings = request.app.state.settings
    node = node_id(settings)
    readiness = check(engine, settings, node)
    if not readiness.ready:
        raise Problem(503, "not-ready", readiness.reason())
    try:
        roles = roles_of_node(engine, node)
    except SQLAlchemyError:
        raise Problem(503, "not-ready", "database unavailable") from None
    return {"status": "ready", "revision": str(readiness.revision), "node": node,
            "roles": roles}


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
