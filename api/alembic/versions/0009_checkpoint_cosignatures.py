"""witness cosignatures collected on each agency log's checkpoints

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "checkpoint_cosignature",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("tree_size", _BIGINT, nullable=False),
        sa.Column("witness", sa.String(length=256), nullable=False),
        sa.Column("key_id", sa.String(length=8), nullable=False),
        sa.Column("line", sa.String(length=1024), nullable=False),
        sa.Column("cosigned_at", UTCDateTime(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agency_id", "tree_size", "witness", "key_id",
                            name="uq_checkpoint_cosignature"),
    )
    with op.batch_alter_table("checkpoint_cosignature", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkpoint_cosignature_agency_id"), ["agency_id"])


def downgrade() -> None:
    op.drop_table("checkpoint_cosignature")
