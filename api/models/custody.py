"""Custody outcomes: accepted events (log leaves), refusals, alerts, decisions, desk sessions,
and the Merkle log's stored nodes.

`custody_event` holds the exact canonical bytes of each `ledger.core.records.CustodyEvent`, its
place in the asset's hash chain and its leaf index in the Merkle log; `log_node` holds the hash
of every perfect subtree, addressed (level, index) as in `ledger.core.merkle_plan`. Both are
written in the transaction that changes the asset, so state and log can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_REASON_CHARS: Final = 200
"""A refusal or alert reason shown on a reader's display and in reports."""


class CustodyEventRow(SQLModel, table=True):
    __tablename__ = "custody_event"
    __table_args__ = (UniqueConstraint("asset_id", "seq", name="uq_custody_event_asset_seq"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(max_length=MAX_ID_CHARS)
    seq: int = Field(sa_type=BigInt)
    action: str = Field(max_length=32)
    record: bytes = Field(sa_type=Bytes)
    event_hash: bytes = Field(sa_type=Bytes)
    leaf_index: int = Field(unique=True, sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Refusal(SQLModel, table=True):
    """A custody change that was asked for (by a read or an API call) and refused, with why."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    asset_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    reader_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    action: str = Field(max_length=32)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    """Something a person should look at: unauthorised removal, unexpected site, overdue loan."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    kind: str = Field(index=True, max_length=32)
    asset_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    reader_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    site_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    detail: str = Field(max_length=MAX_REASON_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    """The answer to one observation, published to the reader's decisions topic after commit.

    `published_at` stays empty until the broker has it, so a crash between commit and publish
    leaves the decision to be sent on restart rather than lost.
    """

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    reader_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    topic: str = Field(max_length=512)
    seq: int = Field(sa_type=BigInt)
    decision: str = Field(max_length=8)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    asset_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    action: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class DeskSession(SQLModel, table=True):
    """A badge session open at a desk reader: who badged in, and when it was last active."""

    __tablename__ = "desk_session"

    reader_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    session: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    person_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime)


class LogNode(SQLModel, table=True):
    """The hash of the perfect subtree over leaves [idx * 2**level, (idx + 1) * 2**level)."""

    __tablename__ = "log_node"

    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True, sa_type=BigInt)
    hash: bytes = Field(sa_type=Bytes)


class LogState(SQLModel, table=True):
    """The Merkle log's size: one row, locked while appending so there is one writer."""

    __tablename__ = "log_state"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=BigInt)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Transfer(SQLModel, table=True):
    """A two-sided custody change offered through the API: to another person ("transfer") or
    on loan to another agency ("loan_out"). It changes custody only when accepted, and is
    re-checked at acceptance."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    action: str = Field(max_length=32)
    from_kind: str = Field(max_length=16)
    from_ref: str = Field(max_length=MAX_ID_CHARS)
    to_kind: str = Field(max_length=16)
    to_ref: str = Field(index=True, max_length=MAX_ID_CHARS)
    loan_days: int | None = None
    status: str = Field(default="offered", index=True, max_length=16)
    offered_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
