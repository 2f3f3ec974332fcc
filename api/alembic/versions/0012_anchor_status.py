"""anchoring status, the contracts anchored on, and anchors that no longer count

Revision ID: 0012
Revises: 0011
Create Date: 2027-01-10 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "anchoring_status",
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("chain_id", _BIGINT, nullable=True),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("agency_id"),
    )
    op.create_table(
        "anchor_contract",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("chain_id", _BIGINT, nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("genesis_hash", sa.LargeBinary(), nullable=False),
        sa.Column("seen_block_number", _BIGINT, nullable=False),
        sa.Column("seen_block_hash", sa.LargeBinary(), nullable=False),
        sa.Column("deployed", sa.Boolean(), nullable=False),
        sa.Column("adopted_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("chain_id", "address", "genesis_hash", name="uq_anchor_contract"),
    )
    op.create_table(
        "anchor_history",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("tree_size", _BIGINT, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("chain_id", _BIGINT, nullable=True),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", _BIGINT, nullable=True),
        sa.Column("block_hash", sa.LargeBinary(), nullable=True),
        sa.Column("anchorer", sa.String(length=42), nullable=True),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("receipt_address", sa.String(length=42), nullable=True),
        sa.Column("receipt_topics", sa.JSON(), nullable=True),
        sa.Column("receipt_data", sa.LargeBinary(), nullable=True),
        sa.Column("anchored_at", UTCDateTime(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("anchor_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_anchor_history_agency_id"), ["agency_id"])


def downgrade() -> None:
    op.drop_table("anchor_history")
    op.drop_table("anchor_contract")
    op.drop_table("anchoring_status")
