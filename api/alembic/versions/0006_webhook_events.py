"""webhook events written with the event itself, replacing the polling feed's cursors

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_event",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.drop_table("webhook_cursor")


def downgrade() -> None:
    op.create_table(
        "webhook_cursor",
        sa.Column("source", sa.String(length=32), primary_key=True),
        sa.Column("last_id", _BIGINT, nullable=False),
    )
    op.drop_table("webhook_event")
