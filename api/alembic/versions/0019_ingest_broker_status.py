"""broker status: whether each ingest worker of a node is subscribed to the broker

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broker_status",
        sa.Column("node_id", sa.String(length=48), nullable=False),
        sa.Column("worker", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("checked_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "worker"),
    )


def downgrade() -> None:
    op.drop_table("broker_status")
