"""Evidence specifics: an exhibit's case and exhibit references, and how it left the store.

`evidence_reference` mirrors the latest `evidence-referenced` record of an asset, indexed by
case so a property officer can find every exhibit of a case. `evidence_disposal` keeps what the
log holds only by commitment: the recipient's name and the salt of its commitment (deleting
those two erases the recipient; the log still verifies).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import ForeignKeyConstraint, Index
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_REFERENCE_CHARS: Final = 64
"""A case or exhibit reference (`24-001234`, `JD/1`): force numbering schemes fit in well
under this; it is printed on receipts and reports, so it is kept short."""

MAX_RECIPIENT_CHARS: Final = 128
"""A recipient's name as written on the disposal form."""


class EvidenceReference(SQLModel, table=True):
    __tablename__ = "evidence_reference"
    __table_args__ = (
        Index("ix_evidence_reference_agency_case", "agency_id", "case_ref"),
        ForeignKeyConstraint(["agency_id", "asset_id"], ["asset.agency_id", "asset.id"],
                             name="fk_evidence_reference_asset"),
    )

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    case_ref: str = Field(max_length=MAX_REFERENCE_CHARS)
    exhibit_ref: str = Field(max_length=MAX_REFERENCE_CHARS)
    leaf_index: int = Field(sa_type=BigInt)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EvidenceDisposal(SQLModel, table=True):
    __tablename__ = "evidence_disposal"
    __table_args__ = (
        ForeignKeyConstraint(["agency_id", "asset_id"], ["asset.agency_id", "asset.id"],
                             name="fk_evidence_disposal_asset"),
    )

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    disposition: str = Field(max_length=32)
    recipient_name: str | None = Field(default=None, max_length=MAX_RECIPIENT_CHARS)
    recipient_salt: bytes | None = Field(default=None, sa_type=Bytes)
    recipient_commitment: str | None = Field(default=None, max_length=64)
    event_leaf: int = Field(sa_type=BigInt)
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class EvidenceRoomAccess(SQLModel, table=True):
    """A staff badge read at an evidence room's door (`api.custody.door`): not custody, not in
    the log. `person_id` is null for another agency's badge (it is not ours to name)."""

    __tablename__ = "evidence_room_access"
    __table_args__ = (Index("ix_evidence_room_access_agency_read", "agency_id", "read_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    reader_id: str = Field(max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    person_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    admitted: bool
    reason: str = Field(max_length=200)
    observation_hash: bytes = Field(sa_type=Bytes)
    read_at: datetime = Field(sa_type=UTCDateTime)
