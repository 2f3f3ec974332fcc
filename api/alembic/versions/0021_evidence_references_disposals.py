"""Evidence specifics: case and exhibit references, disposals with their recipient, and the
evidence room's access log

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import Bytes, UTCDateTime

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evidence_reference",
        sa.Column("asset_id", sa.String(length=128), sa.ForeignKey("asset.id"),
                  primary_key=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("case_ref", sa.String(length=64), nullable=False),
        sa.Column("exhibit_ref", sa.String(length=64), nullable=False),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_evidence_reference_agency_case", "evidence_reference",
                    ["agency_id", "case_ref"])
    op.create_table(
        "evidence_disposal",
        sa.Column("asset_id", sa.String(length=128), sa.ForeignKey("asset.id"),
                  primary_key=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("disposition", sa.String(length=32), nullable=False),
        sa.Column("recipient_name", sa.String(length=128), nullable=True),
        sa.Column("recipient_salt", Bytes(), nullable=True),
        sa.Column("recipient_commitment", sa.String(length=64), nullable=True),
        sa.Column("event_leaf", _BIGINT, nullable=False),
        sa.Column("leaf_index", _BIGINT, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_evidence_disposal_agency_id", "evidence_disposal", ["agency_id"])
    op.create_table(
        "evidence_room_access",
        sa.Column("id", _BIGINT, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("reader_id", sa.String(length=128), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=True),
        sa.Column("admitted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("observation_hash", Bytes(), nullable=False),
        sa.Column("read_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_evidence_room_access_agency_read", "evidence_room_access",
                    ["agency_id", "read_at"])


def downgrade() -> None:
    op.drop_index("ix_evidence_room_access_agency_read", table_name="evidence_room_access")
    op.drop_table("evidence_room_access")
    op.drop_index("ix_evidence_disposal_agency_id", table_name="evidence_disposal")
    op.drop_table("evidence_disposal")
    op.drop_index("ix_evidence_reference_agency_case", table_name="evidence_reference")
    op.drop_table("evidence_reference")
