"""API clients of the caller's agency (scope `admin`): create, list, rotate, revoke, expire.

The same operations as `kitledger api-client` (`api.client_admin`), limited to the admin's own
agency: another agency's client answers 404, as if unknown. A key is in the answer that
creates or rotates it, and nowhere else, ever.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, status
from pydantic import BaseModel, Field

from api import client_admin
from api.auth import create_api_client
from api.db import utcnow
from api.deps import Admin, SessionDep, SettingsDep
from api.models.clients import ApiClient, ApiClientPublic, Scope
from api.models.registry import MAX_NAME_CHARS
from api.models.wire import DateTimeText
from api.routes.paging import IdPath
from api.scoping import agency_row

router = APIRouter(prefix="/v1/api-clients", tags=["api clients"])


class ApiClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))
    expires_at: DateTimeText | None = None


class ApiClientKey(BaseModel):
    """A client and its key: the only answer that ever holds a key."""

    client: ApiClientPublic
    key: str


class Expiry(BaseModel):
    at: DateTimeText | None = Field(default=None, description="default: now")


def _public(client: ApiClient) -> ApiClientPublic:
    return ApiClientPublic.model_validate(client, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiClientKey)
def create(data: ApiClientCreate, session: SessionDep, settings: SettingsDep,
           caller: Admin) -> ApiClientKey:
    """A new client of the caller's agency; its key is in this answer only."""
    client, key = create_api_client(
        session, agency_id=caller.agency_id, name=data.name, scopes=data.scopes,
        server_secret=settings.secret_key.get_secret_value(), now=utcnow(),
        expires_at=data.expires_at)
    session.commit()
    return ApiClientKey(client=_public(client), key=key)


@router.get("", response_model=list[ApiClientPublic])
def list_clients(session: SessionDep, caller: Admin) -> list[ApiClientPublic]:
    """The agency's clients, revoked and expired ones included; never their keys."""
    return [_public(c) for c in client_admin.list_clients(session, caller.agency_id)]


@router.post("/{client_id}/rotate", response_model=ApiClientKey)
def rotate(client_id: IdPath, session: SessionDep, settings: SettingsDep,
           caller: Admin) -> ApiClientKey:
    """A new key for the client; the old key and its web sessions stop now."""
    client = agency_row(session, ApiClient, caller.agency_id, client_id, "API client")
    key = client_admin.rotate(session, client, settings.secret_key.get_secret_value(), utcnow())
    session.commit()
    return ApiClientKey(client=_public(client), key=key)


@router.post("/{client_id}/revoke", response_model=ApiClientPublic)
def revoke(client_id: IdPath, session: SessionDep, caller: Admin) -> ApiClientPublic:
    """Refuse the client's key from now on (revoking the caller's own key is allowed)."""
    client = agency_row(session, ApiClient, caller.agency_id, client_id, "API client")
    client_admin.revoke(session, client, utcnow())
    session.commit()
    return _public(client)


@router.post("/{client_id}/expire", response_model=ApiClientPublic)
def expire(client_id: IdPath, session: SessionDep, caller: Admin,
           data: Annotated[Expiry | None, Body()] = None) -> ApiClientPublic:
    """Refuse the client's key from `at` (default now; a past time means now)."""
    client = agency_row(session, ApiClient, caller.agency_id, client_id, "API client")
    now = utcnow()
    at: datetime = data.at if data is not None and data.at is not None else now
    client_admin.expire(session, client, at, now)
    session.commit()
    return _public(client)
