"""Managing API clients: list, rotate, revoke and expire, for `kitledger api-client` and the
admin REST routes (`api.routes.clients`) alike.

Rotating gives a client a new key and the old one stops at once (to change keys without a
gap, create a second client, move over, then revoke the first). Rotating or revoking also
ends the client's web sessions: a key changed because it leaked must not live on in a cookie.
Expiry is a time after which the key is refused; it can be set at creation or later, and a
time in the past expires the key now.
"""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select, update

from api.auth import key_hash, new_key
from api.models.clients import ApiClient, WebSession

MAX_LISTED: int = 1000
"""Clients one `list` shows: an agency has a handful; a longer list is a sign to clean up."""


def end_web_sessions(session: Session, client_id: str, now: datetime) -> None:
    """Sign out every browser signed in as `client_id`."""
    session.execute(update(WebSession).where(
        col(WebSession.client_id) == client_id, col(WebSession.ended_at).is_(None))
        .values(ended_at=now))


def list_clients(session: Session, agency_id: str | None = None) -> list[ApiClient]:
    """Clients of one agency (or all), oldest first, revoked and expired ones included."""
    query = select(ApiClient)
    if agency_id is not None:
        query = query.where(ApiClient.agency_id == agency_id)
    return list(session.exec(query.order_by(col(ApiClient.created_at), col(ApiClient.id))
                             .limit(MAX_LISTED)))


def rotate(session: Session, client: ApiClient, server_secret: str, now: datetime) -> str:
    """Give `client` a new key (returned once); the old key and its web sessions end now."""
    key = new_key(client.id)
    client.key_hash = key_hash(server_secret, key)
    client.rotated_at = now
    session.add(client)
    end_web_sessions(session, client.id, now)
    return key


def revoke(session: Session, client: ApiClient, now: datetime) -> None:
    """Refuse `client`'s key from now on (kept for the record, never reused)."""
    if client.revoked_at is None:
        client.revoked_at = now
        session.add(client)
    end_web_sessions(session, client.id, now)


def expire(session: Session, client: ApiClient, at: datetime, now: datetime) -> None:
    """Refuse `client`'s key from `at` (now, if `at` is past); sessions end with it."""
    client.expires_at = at
    session.add(client)
    if at <= now:
        end_web_sessions(session, client.id, now)
