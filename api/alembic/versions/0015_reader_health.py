"""Reader health: the latest health of each reader, and one open health alert per kind

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN_READER_ALERT = sa.text(
    "resolved_at IS NULL AND kind IN"
    " ('reader_down', 'antenna_fault', 'disk_low', 'outbox_full')")


def upgrade() -> None:
    op.create_table(
        "reader_health",
        sa.Column("reader_id", sa.String(length=128), sa.ForeignKey("reader.id"),
                  primary_key=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("online", sa.Boolean(), nullable=True),
        sa.Column("status_at", UTCDateTime(), nullable=True),
        sa.Column("seen_at", UTCDateTime(), nullable=True),
        sa.Column("reader_connected", sa.Boolean(), nullable=True),
        sa.Column("mqtt_connected", sa.Boolean(), nullable=True),
        sa.Column("reads_per_s", sa.Float(), nullable=True),
        sa.Column("antennas_down", sa.Integer(), nullable=True),
        sa.Column("antenna_faults", sa.Integer(), nullable=True),
        sa.Column("temperature_c", sa.Float(), nullable=True),
        sa.Column("disk_state", sa.String(length=16), nullable=True),
        sa.Column("outbox_depth", sa.Integer(), nullable=True),
        sa.Column("outbox_max", sa.Integer(), nullable=True),
        sa.Column("outbox_alarm", sa.Boolean(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
    )
    with op.batch_alter_table("reader_health", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reader_health_agency_id"), ["agency_id"])
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_open_reader_kind", ["reader_id", "kind"], unique=True,
                              postgresql_where=_OPEN_READER_ALERT,
                              sqlite_where=_OPEN_READER_ALERT)


def downgrade() -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_open_reader_kind")
    op.drop_table("reader_health")
