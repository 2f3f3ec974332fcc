"""What is tracked: asset classes with their custody policies, and the assets themselves.

An asset's row is its *current* state (status, holder, last sighting, head of its hash chain);
its history is the custody events in the log. The chain head lives here so that appending an
event and moving the head happen in one transaction and can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BeforeValidator, StrictBool, StringConstraints, model_validator
from sqlalchemy import ForeignKeyConstraint, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS, MAX_NAME_CHARS, RegistryId
from api.models.wire import number_not_text
from ledger.core.bounds import EPC_HEX_PATTERN, HASH_HEX_CHARS, MAX_EPC_HEX_CHARS, MAX_URI_CHARS
from ledger.core.records import GENESIS_PREV
from ledger.epcis import gs1_uri

LoanDays = Annotated[int, Field(ge=1, le=3650), BeforeValidator(number_not_text)]
"""A class's loan period as callers send it: a JSON integer, never `true` or `"7"`."""

EpcHex = Annotated[str, StringConstraints(pattern=EPC_HEX_PATTERN)]
"""Upper-case hex in whole 16-bit words, as `Observation.epc`."""


class AssetStatus(StrEnum):
    IN_STORE = "in_store"
    CHECKED_OUT = "checked_out"
    ON_LOAN = "on_loan"
    DISPOSED = "disposed"
    RETIRED = "retired"
    """Deleted: its custody ended with a logged `asset-retired` record; its events stay."""


class HolderKind(StrEnum):
    LOCATION = "location"
    PERSON = "person"
    AGENCY = "agency"


class AssetClassBase(SQLModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    required_qualification: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    loan_days: int | None = Field(default=None, ge=1, le=3650)
    dual_signoff: bool = False
    disposal_final: bool = True


class AssetClass(AssetClassBase, table=True):
    """A class of kit, one agency's: its id is unique within the agency (ids are per agency,
    so that one agency's ids say nothing about another's)."""

    __tablename__ = "asset_class"

    agency_id: str = Field(foreign_key="agency.id", primary_key=True, max_length=MAX_ID_CHARS)
    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)


class AssetClassCreate(AssetClassBase):
    id: RegistryId
    # As the document says (`api.models.wire`): no 0 for false, no "7" for 7.
    dual_signoff: StrictBool = False
    disposal_final: StrictBool = True
    loan_days: LoanDays | None = None


class AssetClassUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)
    required_qualification: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    loan_days: LoanDays | None = None
    dual_signoff: StrictBool | None = None


class AssetClassPublic(AssetClassBase):
    id: str
    agency_id: str


class AssetBase(SQLModel):
    class_id: str = Field(max_length=MAX_ID_CHARS)
    epc_hex: str = Field(max_length=MAX_EPC_HEX_CHARS)
    epc_uri: str | None = Field(default=None, max_length=MAX_URI_CHARS)
    home_site_id: str = Field(max_length=MAX_ID_CHARS)


class Asset(AssetBase, table=True):
    # Every custody change rewrites the row, and so adds an entry to each of its indexes:
    # status is only ever asked for within an agency, so one index serves both.
    # An EPC is unique within its agency: another agency may tag its own kit with the same
    # one (a reader rules its own agency's first, `api.custody.facts`). EPC first, as ingest
    # looks EPCs up across agencies.
    __table_args__ = (
        Index("ix_asset_agency_id_status", "agency_id", "status"),
        UniqueConstraint("epc_hex", "agency_id", name="uq_asset_epc_agency"),
        ForeignKeyConstraint(["agency_id", "class_id"],
                             ["asset_class.agency_id", "asset_class.id"],
                             name="fk_asset_class"),
        ForeignKeyConstraint(["agency_id", "home_site_id"], ["site.agency_id", "site.id"],
                             name="fk_asset_home_site"),
        Index("ix_asset_agency_class", "agency_id", "class_id"),
        Index("ix_asset_agency_home_site", "agency_id", "home_site_id"),
    )

    agency_id: str = Field(foreign_key="agency.id", primary_key=True, max_length=MAX_ID_CHARS)
    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    status: AssetStatus = Field(default=AssetStatus.IN_STORE, sa_type=String(16))
    holder_kind: HolderKind = Field(default=HolderKind.LOCATION, sa_type=String(16))
    holder_ref: str = Field(index=True, max_length=MAX_ID_CHARS)
    holder_agency_id: str = Field(max_length=MAX_ID_CHARS)
    """The agency whose site or person `holder_ref` names (a borrower's, for kit shared with
    it); an agency holder is itself. Ids are per agency: the ref alone may name either."""
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_seen_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen_reader_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    last_seen_site_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    chain_next_seq: int = Field(default=0, sa_type=BigInt)
    chain_prev: str = Field(default=GENESIS_PREV, max_length=HASH_HEX_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AssetShare(SQLModel, table=True):
    """Asset `asset_id` of agency `owner_id` is visible to (and may be loaned to) agency
    `agency_id`."""

    __tablename__ = "asset_share"
    __table_args__ = (
        ForeignKeyConstraint(["owner_id", "asset_id"], ["asset.agency_id", "asset.id"],
                             name="fk_asset_share_asset"),
    )

    owner_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    agency_id: str = Field(
        foreign_key="agency.id", primary_key=True, index=True, max_length=MAX_ID_CHARS
    )


def checked_epc_uri(epc_hex: str, epc_uri: str | None) -> str | None:
    """The asset's URI: a GS1-encoded EPC's own pure-identity URI (a different one given is
    refused: it would name another item), else the one given (a chip-default EPC has none)."""
    derived = gs1_uri(epc_hex)
    if derived is not None and epc_uri is not None and epc_uri != derived:
        raise ValueError(f"epc_uri must be {derived}, the URI the EPC encodes")
    return derived or epc_uri


class AssetCreate(AssetBase):
    id: RegistryId
    epc_hex: EpcHex
    shared_with: list[str] = Field(default_factory=list, max_length=64)

    @model_validator(mode="after")
    def _epc_uri(self) -> Self:
        self.epc_uri = checked_epc_uri(self.epc_hex, self.epc_uri)
        return self


class AssetUpdate(SQLModel):
    epc_uri: str | None = Field(default=None, max_length=MAX_URI_CHARS)
    home_site_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    shared_with: list[str] | None = Field(default=None, max_length=64)


class AssetPublic(AssetBase):
    id: str
    agency_id: str
    status: AssetStatus
    holder_kind: HolderKind
    holder_ref: str
    due_at: datetime | None
    last_seen_at: datetime | None
    last_seen_reader_id: str | None
    last_seen_site_id: str | None

    @model_validator(mode="after")
    def _epc_uri(self) -> Self:
        """Assets registered before URIs were derived show their EPC's URI all the same."""
        if self.epc_uri is None:
            self.epc_uri = gs1_uri(self.epc_hex)
        return self
