"""Pool planning: the desk's "none in store" refusals (unmet demand)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "none_in_store",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("class_id", sa.String(length=128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("client_id", sa.String(length=32), nullable=True),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_none_in_store_agency_class_at", "none_in_store",
                    ["agency_id", "class_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_none_in_store_agency_class_at", table_name="none_in_store")
    op.drop_table("none_in_store")
