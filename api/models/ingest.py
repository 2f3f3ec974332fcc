"""What arrived from readers: accepted observations, quarantined messages, gaps and sightings
(of unknown tags, and of assets by readers of agencies that may not see them).

`observation` is the idempotency record: (device, seq) is unique, so a redelivered message is
recognised and acknowledged without changing state. Rejected messages never reach it; they are
kept in `quarantine` with the reason, their payload truncated to a bound.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS
from ledger.core.bounds import MAX_EPC_HEX_CHARS

MAX_QUARANTINE_PAYLOAD_BYTES: Final = 4096
"""Kept bytes of a rejected payload: enough to diagnose a bad reader, while a flood of
oversized junk cannot fill the database at the rate it arrives."""

MAX_TOPIC_CHARS: Final = 512
"""MQTT topics we publish are about 100 characters; longer ones are truncated when quarantined."""

MAX_DETAIL_CHARS: Final = 500
"""A rejection's explanation: the typed error's message, truncated."""


class DeviceCursor(SQLModel, table=True):
    """The highest sequence number accepted from a device (gaps below it are in `sequence_gap`)."""

    __tablename__ = "device_cursor"

    device_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    high_seq: int = Field(sa_type=BigInt)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IngestedObservation(SQLModel, table=True):
    """One accepted, verified observation with the exact envelope bytes that were signed."""

    __tablename__ = "observation"
    __table_args__ = (UniqueConstraint("device_id", "seq", name="uq_observation_device_seq"),)
    # Indexed only where it is looked up: by (device, seq) for replays and held reads, by
    # envelope hash for the observations an audit bundle cites. Where tags are seen is asked
    # of assets and sightings, not of this table, which grows by every accepted read.

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    device_id: str = Field(max_length=MAX_ID_CHARS)
    seq: int = Field(sa_type=BigInt)
    envelope: bytes = Field(sa_type=Bytes)
    envelope_hash: bytes = Field(sa_type=Bytes, index=True)
    kind: str = Field(max_length=16)
    epc_hex: str = Field(max_length=MAX_EPC_HEX_CHARS)
    session: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    observed_at: datetime = Field(sa_type=UTCDateTime)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class QuarantinedMessage(SQLModel, table=True):
    """A message that was refused, with why; never an accepted observation."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    reason: str = Field(index=True, max_length=32)
    detail: str = Field(max_length=MAX_DETAIL_CHARS)
    topic: str = Field(max_length=MAX_TOPIC_CHARS)
    device_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    payload: bytes = Field(sa_type=Bytes)
    payload_size: int
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SequenceGap(SQLModel, table=True):
    """Sequence numbers [first_seq, last_seq] of a device not yet received.

    When the agent re-sends part of a gap, the row is closed and what is still missing is
    opened as new rows, so the history of every gap stays readable.
    """

    __tablename__ = "sequence_gap"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    device_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    first_seq: int = Field(sa_type=BigInt)
    last_seq: int = Field(sa_type=BigInt)
    opened_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class Sighting(SQLModel, table=True):
    """An EPC that is neither an asset nor a badge, seen at a site: input to stocktake."""

    __table_args__ = (
        UniqueConstraint("agency_id", "site_id", "epc_hex", name="uq_sighting_site_epc"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    """The site's agency (the reader's)."""
    epc_hex: str = Field(max_length=MAX_EPC_HEX_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    reader_id: str = Field(max_length=MAX_ID_CHARS)
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    count: int = Field(default=1, sa_type=BigInt)


class ForeignSighting(SQLModel, table=True):
    """An asset seen by a reader of an agency that may not see it (neither its owner nor shared
    with): where, when and which agency reported it, for the owner alone.

    Such a read rules nothing: it moves no custody, raises no alert and is not the asset's last
    sighting (`api.custody.foreign`). One row per (asset, reader), counted, so a reader that
    repeats a tag without end adds no rows.
    """

    __tablename__ = "foreign_sighting"
    __table_args__ = (
        UniqueConstraint("owner_id", "asset_id", "reader_id",
                         name="uq_foreign_sighting_asset_reader"),
        ForeignKeyConstraint(["owner_id", "asset_id"], ["asset.agency_id", "asset.id"],
                             name="fk_foreign_sighting_asset"),
        Index("ix_foreign_sighting_agency_site", "reporting_agency_id", "site_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    owner_id: str = Field(max_length=MAX_ID_CHARS)
    asset_id: str = Field(max_length=MAX_ID_CHARS)
    reporting_agency_id: str = Field(foreign_key="agency.id", max_length=MAX_ID_CHARS)
    reader_id: str = Field(max_length=MAX_ID_CHARS)
    site_id: str = Field(max_length=MAX_ID_CHARS)
    """The reader's site: the reporting agency's stocktake of it lists the tag as not its own."""
    first_seen_at: datetime = Field(sa_type=UTCDateTime)
    last_seen_at: datetime = Field(sa_type=UTCDateTime)
    count: int = Field(default=1, sa_type=BigInt)
