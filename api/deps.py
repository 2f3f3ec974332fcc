"""FastAPI dependencies: the database session, settings, and the authenticated caller.

`Annotated` aliases keep routes short: `session: SessionDep`, `caller: Caller =
Depends(needs(Scope.ASSETS_READ))`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth import Caller, authenticate
from api.auth_limits import FailedAuthLimiter, claimed_client_id
from api.config import Settings
from api.models.clients import Scope
from api.problems import Problem


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    engine: Engine = request.app.state.engine
    with Session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


BEARER = HTTPBearer(
    scheme_name="apiKey", bearerFormat="kl_<client id>_<secret>", auto_error=False,
    description="An agency API key (`kitledger api-client create`), in the Authorization "
                "header only: keys in a URL are refused.")
"""Declares the key scheme in the OpenAPI document (`securitySchemes`) and reads the header."""

BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]


def address_of(request: Request) -> str:
    """The client address failures are counted against (the proxy's, behind one that uvicorn
    does not trust for X-Forwarded-For)."""
    return request.client.host if request.client else "unknown"


def get_limiter(request: Request) -> FailedAuthLimiter:
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    return limiter


def refuse_if_limited(request: Request, client_id: str | None = None) -> None:
    """429 with Retry-After if the address (or claimed client id) failed too often."""
    wait = get_limiter(request).retry_after(address_of(request), client_id)
    if wait is not None:
        raise Problem(429, "too-many-failures", f"too many failed sign-ins; retry in {wait} s",
                      headers={"Retry-After": str(wait)})


def get_caller(request: Request, session: SessionDep, settings: SettingsDep,
               credentials: BearerDep) -> Caller:
    key = credentials.credentials.strip() if credentials is not None else ""
    claimed = claimed_client_id(key)
    refuse_if_limited(request, claimed)
    if not key:  # nothing presented: not an attempt, and nothing to look up
        raise Problem(401, "unauthenticated", "send an API key as 'Authorization: Bearer <key>'")
    caller = authenticate(session, key, settings.secret_key.get_secret_value())
    if caller is None:
        get_limiter(request).failed(address_of(request), claimed)
        raise Problem(401, "unauthenticated", "unknown, revoked or expired API key")
    return caller


def needs(scope: Scope, *alternatives: Scope) -> Callable[[Caller], Caller]:
    """A dependency returning the caller if it holds `scope` (or one of `alternatives`),
    else answering 403."""

    def check(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
        if not any(caller.may(s) for s in (scope, *alternatives)):
            raise Problem(403, "forbidden", f"this API key lacks the {scope.value} scope")
        return caller

    return check


AssetsReader = Annotated[Caller, Depends(needs(Scope.ASSETS_READ))]
AssetsWriter = Annotated[Caller, Depends(needs(Scope.ASSETS_WRITE))]
CustodyWriter = Annotated[Caller, Depends(needs(Scope.CUSTODY_WRITE))]
Auditor = Annotated[Caller, Depends(needs(Scope.AUDIT_READ))]
Admin = Annotated[Caller, Depends(needs(Scope.ADMIN))]
WebhookManager = Annotated[Caller, Depends(needs(Scope.WEBHOOKS_WRITE, Scope.ADMIN))]
