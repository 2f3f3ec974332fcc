"""foreign sightings: an asset seen by a reader of an agency that may not see it

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "foreign_sighting",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("asset_id", sa.String(length=128), nullable=False),
        sa.Column("reporting_agency_id", sa.String(length=128), nullable=False),
        sa.Column("reader_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("count", _BIGINT, nullable=False),
        sa.ForeignKeyConstraint(["asset_id"], ["asset.id"]),
        sa.ForeignKeyConstraint(["reporting_agency_id"], ["agency.id"]),
        sa.UniqueConstraint("asset_id", "reader_id", name="uq_foreign_sighting_asset_reader"),
    )
    with op.batch_alter_table("foreign_sighting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_foreign_sighting_site_id"), ["site_id"])


def downgrade() -> None:
    op.drop_table("foreign_sighting")
