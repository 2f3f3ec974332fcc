"""Reader health: the reader_overheat alert kind joins the one-open-alert-per-reader-and-kind
index

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 07:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("reader_down", "antenna_fault", "disk_low", "outbox_full")
_AFTER = (*_BEFORE, "reader_overheat")


def _open_reader_alert(kinds: tuple[str, ...]) -> sa.TextClause:
    return sa.text("resolved_at IS NULL AND kind IN ("
                   + ", ".join(f"'{kind}'" for kind in kinds) + ")")


def _index(kinds: tuple[str, ...]) -> None:
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index("ix_alert_open_reader_kind")
    where = _open_reader_alert(kinds)
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index("ix_alert_open_reader_kind", ["reader_id", "kind"], unique=True,
                              postgresql_where=where, sqlite_where=where)


def upgrade() -> None:
    _index(_AFTER)


def downgrade() -> None:
    # Overheat alerts are not covered by the older index: resolve any still open first.
    alert = sa.table("alert", sa.column("kind", sa.String()),
                     sa.column("resolved_at", UTCDateTime()))
    op.execute(alert.update().where(alert.c.kind == "reader_overheat",
                                    alert.c.resolved_at.is_(None))
               .values(resolved_at=datetime.now(UTC)))
    _index(_BEFORE)
