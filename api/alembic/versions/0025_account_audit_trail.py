"""Staff accounts' audit trail: who made, re-roled, disabled or reset each account, and when

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "account_audit",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), sa.ForeignKey("agency.id"),
                  nullable=False),
        sa.Column("account_id", sa.String(length=32), sa.ForeignKey("staff_account.id"),
                  nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=2052), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_account_audit_account", "account_audit", ["agency_id", "account_id"])


def downgrade() -> None:
    op.drop_index("ix_account_audit_account", table_name="account_audit")
    op.drop_table("account_audit")
