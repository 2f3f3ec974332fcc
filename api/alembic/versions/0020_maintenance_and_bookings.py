"""Maintenance schedules and work (indexed from the log), and bookings with their audit trail

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_ID = 128


def upgrade() -> None:
    op.create_table(
        "maintenance_schedule",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=_ID), nullable=False),
        sa.Column("key", sa.String(length=_ID), nullable=False),
        sa.Column("class_id", sa.String(length=_ID), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("interval_days", sa.Integer(), nullable=False),
        sa.Column("blocking", sa.Boolean(), nullable=False),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agency_id", "key", name="uq_maintenance_schedule_key"),
    )
    op.create_table(
        "maintenance_work",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=_ID), nullable=False),
        sa.Column("asset_id", sa.String(length=_ID), nullable=False),
        sa.Column("schedule_key", sa.String(length=_ID), nullable=True),
        sa.Column("result", sa.String(length=8), nullable=False),
        sa.Column("officer_id", sa.String(length=_ID), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.Column("next_due", UTCDateTime(), nullable=True),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_maintenance_work_asset", "maintenance_work", ["agency_id", "asset_id"])
    op.create_table(
        "reservation",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=_ID), nullable=False),
        sa.Column("operation", sa.String(length=200), nullable=False),
        sa.Column("class_id", sa.String(length=_ID), nullable=True),
        sa.Column("quantity", sa.Integer(), nullable=True),
        sa.Column("asset_ids", sa.JSON(), nullable=False),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("cancelled_at", UTCDateTime(), nullable=True),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_reservation_agency_window", "reservation", ["agency_id", "ends_at"])
    op.create_table(
        "reservation_audit",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=_ID), nullable=False),
        sa.Column("reservation_id", _BIGINT, nullable=False),
        sa.Column("change", sa.String(length=16), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_reservation_audit_agency", "reservation_audit",
                    ["agency_id", "reservation_id"])


def downgrade() -> None:
    op.drop_index("ix_reservation_audit_agency", table_name="reservation_audit")
    op.drop_table("reservation_audit")
    op.drop_index("ix_reservation_agency_window", table_name="reservation")
    op.drop_table("reservation")
    op.drop_index("ix_maintenance_work_asset", table_name="maintenance_work")
    op.drop_table("maintenance_work")
    op.drop_table("maintenance_schedule")
