"""What the anchoring process tells everyone else: its state, its contracts, its past anchors.

The anchoring process (`api.anchoring`) runs apart from the HTTP workers, so whatever `/readyz`,
`/metrics` and the alerts report about it is written here:

- `AnchoringStatus`: one row per agency log (and one, `agency_id = ""`, for the service as a
  whole) with its state (`api.anchoring.AnchorState`), the reason in words, since when, and
  when the process last checked (a row nobody refreshes goes stale, which is itself reported).
- `AnchorContract`: every CustodyAnchor contract the service has used, with what identifies
  the chain it lives on: the genesis block's hash and a block seen when the contract was first
  used (its number and hash). A chain reset to an empty one, even with a contract re-deployed
  at the same address, no longer has that block (anvil's genesis is the same on every start,
  so the genesis alone would not tell). A contract the service deployed itself (no
  `anchor_contract` setting) is remembered here and reused on the next start.
- `AnchorHistory`: anchors that no longer count: `lost` when the chain stopped holding them
  (a replaced chain, a vanished block), `superseded` when the same checkpoint was anchored
  again on another contract. `LogCheckpoint` keeps only the current anchor, so nothing that
  reads it (API, web pages, bundles) can show one of these as anchored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_STATUS_REASON_CHARS: Final = 500
"""A reason is one line for an operator; a node's longer error text is cut to fit."""

SERVICE_SCOPE: Final = ""
"""`AnchoringStatus.agency_id` of the row about the whole service (settings, chain, contract)."""


class AnchoringStatus(SQLModel, table=True):
    """The anchoring state of one agency log, or of the service (`SERVICE_SCOPE`)."""

    __tablename__ = "anchoring_status"

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    state: str = Field(max_length=32)
    reason: str = Field(default="", max_length=MAX_STATUS_REASON_CHARS)
    chain_id: int | None = Field(default=None, sa_type=BigInt)
    contract: str | None = Field(default=None, max_length=42)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AnchorContract(SQLModel, table=True):
    """A CustodyAnchor contract the service anchored on, and which chain it belongs to."""

    __tablename__ = "anchor_contract"
    __table_args__ = (
        UniqueConstraint("chain_id", "address", "genesis_hash", name="uq_anchor_contract"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    chain_id: int = Field(sa_type=BigInt)
    address: str = Field(max_length=42)
    genesis_hash: bytes = Field(sa_type=Bytes)
    seen_block_number: int = Field(sa_type=BigInt)
    seen_block_hash: bytes = Field(sa_type=Bytes)
    deployed: bool = False
    adopted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AnchorHistory(SQLModel, table=True):
    """A former anchor of a checkpoint, kept with why it no longer counts."""

    __tablename__ = "anchor_history"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    tree_size: int = Field(sa_type=BigInt)
    root: bytes = Field(sa_type=Bytes)
    status: str = Field(max_length=16)
    reason: str = Field(max_length=MAX_STATUS_REASON_CHARS)
    chain_id: int | None = Field(default=None, sa_type=BigInt)
    contract: str | None = Field(default=None, max_length=42)
    tx_hash: bytes = Field(sa_type=Bytes)
    block_number: int | None = Field(default=None, sa_type=BigInt)
    block_hash: bytes | None = Field(default=None, sa_type=Bytes)
    anchorer: str | None = Field(default=None, max_length=42)
    envelope: bytes = Field(sa_type=Bytes)
    receipt_address: str | None = Field(default=None, max_length=42)
    receipt_topics: list[str] | None = Field(default=None, sa_column=Column(JSON))
    receipt_data: bytes | None = Field(default=None, sa_type=Bytes)
    anchored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
