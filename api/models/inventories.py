"""Inventories: a stocktake session of one site, its reconciliation, and what the log holds of
it (`api.inventories`).

A session opens with the site's expected items (a sampled one also with the seed and the
sample it drew), collects reads from a desk reader during the session or from a handheld's
uploaded batch, and on completion is reconciled and logged as an `inventory-taken` record of
the agency's registry chain. The lists are kept here (the log commits to them by hash), so an
auditor can be handed them and hold them to the record.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import JSON, Column, ForeignKeyConstraint, Index
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_INVENTORY_ITEMS: Final = 20_000
"""Items one full inventory looks for: a large force's central store, counted in one go;
beyond it, sample (a sample of 20,000 items at 95 % ± 3 % reads 1,014 of them)."""
MAX_SAMPLED_POPULATION: Final = 200_000
"""Items a sampled inventory draws from: a national store (its ids, about 2 MB, are kept with
the session so that an auditor can draw the sample again)."""


class InventoryMode(StrEnum):
    FULL = "full"
    SAMPLED = "sampled"


class InventoryStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"


class Inventory(SQLModel, table=True):
    __tablename__ = "inventory"
    __table_args__ = (
        Index("ix_inventory_agency_site", "agency_id", "site_id"),
        ForeignKeyConstraint(["agency_id", "site_id"], ["site.agency_id", "site.id"],
                             name="fk_inventory_site"),
        ForeignKeyConstraint(["agency_id", "officer_id"], ["person.agency_id", "person.id"],
                             name="fk_inventory_officer"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    reader_id: str = Field(foreign_key="reader.id", max_length=MAX_ID_CHARS)
    officer_id: str = Field(max_length=MAX_ID_CHARS)
    """Who carried out the stocktake (logged by commitment)."""
    mode: str = Field(max_length=16)
    status: str = Field(default=InventoryStatus.OPEN.value, max_length=16)
    confidence_bp: int = 0
    margin_bp: int = 0
    seed: str | None = Field(default=None, max_length=64)
    population: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """The items expected at the site when the session opened (a sample is drawn from them)."""
    lists: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """On completion: expected, found, missing, unexpected (asset ids), unknown (EPCs)."""
    share_low_bp: int | None = None
    share_high_bp: int | None = None
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leaf_index: int | None = Field(default=None, sa_type=BigInt)
    record_hash: str | None = Field(default=None, max_length=64)
