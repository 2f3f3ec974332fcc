"""Maintenance schedules, the work done on items and their service state, and bookings.

A schedule, the work done and an item taken out of or back into service are logged (registry
records, `api.custody.maintenance`); the rows here are the API's index of them, so the desk
and the due list read them without reading the log. Bookings (`api.custody.reservations`) are
operational data: rows only, each change kept in `reservation_audit`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime, utcnow
from api.models.custody import MAX_REASON_CHARS
from api.models.registry import MAX_ID_CHARS


class MaintenanceSchedule(SQLModel, table=True):
    """A check every item of a class needs every `interval_days`; a `blocking` one is a safety
    check: an item overdue for it is not issued."""

    __tablename__ = "maintenance_schedule"
    __table_args__ = (UniqueConstraint("agency_id", "key", name="uq_maintenance_schedule_key"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    key: str = Field(max_length=MAX_ID_CHARS)
    class_id: str = Field(max_length=MAX_ID_CHARS)
    name: str = Field(max_length=MAX_REASON_CHARS)
    interval_days: int
    blocking: bool
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class MaintenanceWork(SQLModel, table=True):
    """Work logged on an item: a check done (`schedule_key`, `result`, `next_due`) or the item
    taken out of service (`result` "out") or back in ("in")."""

    __tablename__ = "maintenance_work"
    __table_args__ = (Index("ix_maintenance_work_asset", "agency_id", "asset_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    asset_id: str = Field(max_length=MAX_ID_CHARS)
    schedule_key: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    result: str = Field(max_length=8)
    officer_id: str = Field(max_length=MAX_ID_CHARS)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
    next_due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Reservation(SQLModel, table=True):
    """A booking for a planned operation: `quantity` items of class `class_id`, or the named
    `asset_ids`, from `starts_at` to `ends_at`, for the `people` on it."""

    __tablename__ = "reservation"
    __table_args__ = (Index("ix_reservation_agency_window", "agency_id", "ends_at"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    operation: str = Field(max_length=MAX_REASON_CHARS)
    class_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    quantity: int | None = None
    asset_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    people: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    client_id: str = Field(max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ReservationAudit(SQLModel, table=True):
    """One change of a booking (created, cancelled), by which client, when."""

    __tablename__ = "reservation_audit"
    __table_args__ = (Index("ix_reservation_audit_agency", "agency_id", "reservation_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    reservation_id: int = Field(sa_type=BigInt)
    change: str = Field(max_length=16)
    client_id: str = Field(max_length=32)
    detail: str = Field(max_length=MAX_REASON_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
