"""API clients expire and rotate; web sessions live on the server so signing out ends them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.add_column(sa.Column("expires_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", UTCDateTime(), nullable=True))
    op.create_table(
        "web_session",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("client_id", sa.String(length=32), sa.ForeignKey("api_client.id"),
                  nullable=False),
        sa.Column("csrf", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_client_id"), ["client_id"])
        batch_op.create_index(batch_op.f("ix_web_session_expires_at"), ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_session")
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("expires_at")
