"""Who and where: agencies, their sites (stores, stations, vehicles) and their readers.

A reader is registered by an administrator from what the agent's `enroll` prints: its device
id, its Ed25519 public key (the key id is derived, never trusted from the caller), its role and
the zone each antenna covers. Revoking a reader keeps its row so its history stays verifiable.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final

from pydantic import StringConstraints
from sqlalchemy import JSON, Column, ForeignKeyConstraint, Index, String
from sqlmodel import Field, SQLModel

from api.db import UTCDateTime, utcnow
from ledger.core.bounds import ID_PATTERN
from ledger.core.bounds import MAX_ID_CHARS as MAX_ID_CHARS
from ledger.core.envelope import KEY_ID_HEX_CHARS

MAX_NAME_CHARS: Final = 200
"""Human names of agencies, sites and classes: long enough for "Metropolitan Police Service -
Lambeth Custody Suite Property Store", short enough to bound every page of results."""

MAX_ANTENNAS: Final = 32
"""The largest fixed readers drive 32 antenna ports through multiplexers."""

RegistryId = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS, pattern=ID_PATTERN)
]
"""Registry ids appear in custody records, so they are the record format's ids."""
PublicKeyHex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""A raw 32-byte Ed25519 public key in lower-case hex, as the agent's `enroll` prints it."""


class ReaderRole(StrEnum):
    ISSUE_DESK = "issue_desk"
    RETURN_DESK = "return_desk"
    PORTAL = "portal"
    LOCKER = "locker"
    VEHICLE_BAY = "vehicle_bay"
    DOOR = "door"
    HANDHELD = "handheld"


class ReaderStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"


class AgencyBase(SQLModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)


class Agency(AgencyBase, table=True):
    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AgencyCreate(AgencyBase):
    id: RegistryId


class AgencyUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)


class AgencyPublic(AgencyBase):
    id: str
    created_at: datetime


class SiteBase(SQLModel):
    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)


class Site(SiteBase, table=True):
    agency_id: str = Field(foreign_key="agency.id", primary_key=True, max_length=MAX_ID_CHARS)
    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    """Unique within the agency: ids are per agency, so one agency's say nothing of another's."""
    custodian_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    """The person who answers for the site's store (a change is logged, `site-custodian`,
    and calls for a full inventory)."""


class SiteCreate(SiteBase):
    id: RegistryId


class SiteUpdate(SQLModel):
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_CHARS)


class SitePublic(SiteBase):
    id: str
    agency_id: str
    custodian_id: str | None = None


class ReaderBase(SQLModel):
    site_id: str = Field(max_length=MAX_ID_CHARS)
    role: ReaderRole = Field(sa_type=String(32))
    # Antenna port (as a decimal string: JSON object keys) -> zone name.
    zones: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Reader(ReaderBase, table=True):
    """A reader device. Its id is global: it is the device's name on the broker's topics."""

    __table_args__ = (
        ForeignKeyConstraint(["agency_id", "site_id"], ["site.agency_id", "site.id"],
                             name="fk_reader_site"),
        Index("ix_reader_agency_site", "agency_id", "site_id"),
    )

    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    agency_id: str = Field(foreign_key="agency.id", index=True, max_length=MAX_ID_CHARS)
    public_key: str = Field(max_length=64)
    key_id: str = Field(unique=True, max_length=KEY_ID_HEX_CHARS)
    status: ReaderStatus = Field(default=ReaderStatus.ACTIVE, sa_type=String(16))
    registered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ReaderCreate(ReaderBase):
    id: RegistryId
    public_key: PublicKeyHex


class ReaderUpdate(SQLModel):
    zones: dict[str, str] | None = None


class ReaderPublic(ReaderBase):
    id: str
    agency_id: str
    public_key: str
    key_id: str
    status: ReaderStatus
    registered_at: datetime
    revoked_at: datetime | None
