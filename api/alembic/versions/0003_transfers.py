"""transfers

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 18:21:12.147546
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "transfer",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("from_kind", sa.String(length=16), nullable=False),
        sa.Column("from_ref", sa.String(length=128), nullable=False),
        sa.Column("to_kind", sa.String(length=16), nullable=False),
        sa.Column("to_ref", sa.String(length=128), nullable=False),
        sa.Column("loan_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("transfer", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfer_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfer_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_transfer_to_ref"), ["to_ref"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("transfer", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_to_ref"))
        batch_op.drop_index(batch_op.f("ix_transfer_status"))
        batch_op.drop_index(batch_op.f("ix_transfer_asset_id"))
        batch_op.drop_index(batch_op.f("ix_transfer_agency_id"))

    op.drop_table("transfer")
