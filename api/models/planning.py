"""Unmet demand: an officer at the desk told "none in store" for a class.

Nothing changes custody when the store has nothing to give, so this is no custody-log record:
it is operational data, like a booking, kept so pool planning (`api.planning.history`) can
count the requests the pool did not meet. A refusal at the desk is kept as it was told; it is
never edited.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS


class NoneInStore(SQLModel, table=True):
    """At `at`, someone asked site `site_id` for an item of class `class_id` and none was in
    store; entered by API client `client_id` or staff account `account_id`."""

    __tablename__ = "none_in_store"
    __table_args__ = (Index("ix_none_in_store_agency_class_at", "agency_id", "class_id", "at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    class_id: str = Field(max_length=MAX_ID_CHARS)
    at: datetime = Field(sa_type=UTCDateTime)
    client_id: str | None = Field(default=None, max_length=32)
    account_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
