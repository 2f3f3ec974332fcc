"""webhook subscriptions, the delivery outbox and its feed cursors

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import Bytes, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "webhook_subscription",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("agency_id", sa.String(length=128), sa.ForeignKey("agency.id"), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("sealed_secret", Bytes(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_webhook_subscription_agency_id", "webhook_subscription", ["agency_id"])
    op.create_table(
        "webhook_delivery",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(length=32),
                  sa.ForeignKey("webhook_subscription.id"), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=32), nullable=False),
        sa.Column("body", Bytes(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=300), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("delivered_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("subscription_id", "event_id"),
    )
    for column in ("subscription_id", "status", "next_attempt_at"):
        op.create_index(f"ix_webhook_delivery_{column}", "webhook_delivery", [column])
    op.create_table(
        "webhook_cursor",
        sa.Column("source", sa.String(length=32), primary_key=True),
        sa.Column("last_id", _BIGINT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("webhook_cursor")
    op.drop_table("webhook_delivery")
    op.drop_index("ix_webhook_subscription_agency_id", "webhook_subscription")
    op.drop_table("webhook_subscription")
