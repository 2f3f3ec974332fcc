"""Alert actions: who acknowledged or resolved an alert, when, and their note

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_action",
        sa.Column("id", _BIG_ID, primary_key=True),
        sa.Column("alert_id", _BIG_ID, sa.ForeignKey("alert.id"), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=1000), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=128), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("alert_id", "action", name="uq_alert_action_once"),
    )


def downgrade() -> None:
    op.drop_table("alert_action")
