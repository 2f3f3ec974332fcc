"""decisions looked up by (reader, seq): an index on both, replacing the one on reader_id

Whether a stored read has been answered is asked by (reader, seq) each time a desk session
opens or a missing number arrives; indexed by reader alone, each question read every decision
that reader ever received.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 21:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index("ix_decision_reader_id_seq", ["reader_id", "seq"], unique=False)
        batch_op.drop_index("ix_decision_reader_id")


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index("ix_decision_reader_id", ["reader_id"], unique=False)
        batch_op.drop_index("ix_decision_reader_id_seq")
