"""Manual desk entries: custody changes an officer entered by hand, counted per desk and officer

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 04:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "manual_entry",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("desk_id", sa.String(length=128), nullable=False),
        sa.Column("officer_id", sa.String(length=128), nullable=False),
        sa.Column("supervisor_id", sa.String(length=128), nullable=True),
        sa.Column("client_id", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_manual_entry_agency_desk", "manual_entry", ["agency_id", "desk_id"])
    op.create_index("ix_manual_entry_agency_officer", "manual_entry",
                    ["agency_id", "officer_id"])


def downgrade() -> None:
    op.drop_index("ix_manual_entry_agency_officer", table_name="manual_entry")
    op.drop_index("ix_manual_entry_agency_desk", table_name="manual_entry")
    op.drop_table("manual_entry")
