"""Inventories (full and sampled stocktakes, desk or handheld) and a site's custodian

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.add_column(sa.Column("custodian_id", sa.String(length=128), nullable=True))
    op.create_table(
        "inventory",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), sa.ForeignKey("site.id"), nullable=False),
        sa.Column("reader_id", sa.String(length=128), sa.ForeignKey("reader.id"),
                  nullable=False),
        sa.Column("officer_id", sa.String(length=128), sa.ForeignKey("person.id"),
                  nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("confidence_bp", sa.Integer(), nullable=False),
        sa.Column("margin_bp", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=True),
        sa.Column("population", sa.JSON(), nullable=False),
        sa.Column("lists", sa.JSON(), nullable=False),
        sa.Column("share_low_bp", sa.Integer(), nullable=True),
        sa.Column("share_high_bp", sa.Integer(), nullable=True),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("leaf_index", _BIGINT, nullable=True),
        sa.Column("record_hash", sa.String(length=64), nullable=True),
    )
    op.create_index("ix_inventory_agency_site", "inventory", ["agency_id", "site_id"])


def downgrade() -> None:
    op.drop_index("ix_inventory_agency_site", table_name="inventory")
    op.drop_table("inventory")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_column("custodian_id")
