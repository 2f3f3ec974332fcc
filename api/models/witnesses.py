"""Witness cosignatures the service collected on its checkpoints (api.cosigning).

One row per (agency log, checkpoint size, witness key): the C2SP cosignature line exactly as
the witness returned it, after it was verified against the witness's configured key. An audit
bundle copies these lines onto its checkpoints (api.bundles).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime
from api.models.registry import MAX_ID_CHARS

MAX_WITNESS_NAME_CHARS: Final = 256
MAX_COSIGNATURE_LINE_CHARS: Final = 1024


class CheckpointCosignature(SQLModel, table=True):
    """A witness's verified cosignature of one checkpoint of an agency's log."""

    __tablename__ = "checkpoint_cosignature"
    __table_args__ = (
        UniqueConstraint("agency_id", "tree_size", "witness", "key_id",
                         name="uq_checkpoint_cosignature"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    tree_size: int = Field(sa_type=BigInt)
    witness: str = Field(max_length=MAX_WITNESS_NAME_CHARS)
    key_id: str = Field(max_length=8)
    line: str = Field(max_length=MAX_COSIGNATURE_LINE_CHARS)
    cosigned_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(sa_type=UTCDateTime)
