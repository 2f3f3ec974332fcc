"""FastAPI dependencies: the database session, settings, and the authenticated caller.

`Annotated` aliases keep routes short: `session: SessionDep`, `caller: Caller =
Depends(needs(Scope.ASSETS_READ))`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth import Caller, authenticate
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


def get_caller(request: Request, session: SessionDep, settings: SettingsDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Problem(401, "unauthenticated", "send an API key as 'Authorization: Bearer <key>'")
    caller = authenticate(session, key.strip(), settings.secret_key.get_secret_value())
    if caller is None:
        raise Problem(401, "unauthenticated", "unknown or revoked API key")
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
