"""registry records: the registry changes logged as leaves of each agency's Merkle log

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-20 10:00:00.000000

The table only: the rows that exist before it get their records from `kitledger migrate`
(`api.registry_log.backfill_registry`, run after the upgrade), which appends them to the logs
with the Merkle code the migrations do not import.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "registry_record",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("subject_kind", sa.String(length=16), nullable=False),
        sa.Column("subject_id", sa.String(length=128), nullable=False),
        sa.Column("seq", _BIGINT, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("record_hash", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("agency_id", "leaf_index", name="uq_registry_record_agency_leaf"),
        sa.UniqueConstraint("agency_id", "subject_kind", "subject_id", "seq",
                            name="uq_registry_record_subject_seq"),
    )


def downgrade() -> None:
    op.drop_table("registry_record")
