"""webhook event ids never reused on SQLite (AUTOINCREMENT)

SQLite hands a deleted rowid out again unless the table is declared AUTOINCREMENT, and the
dispatcher deletes every fanned-out event: the next event would be `evt-1` again and collide
with its delivery's unique (subscription, event) pair. The table is rebuilt with AUTOINCREMENT
and its counter started above every event id a delivery already names. PostgreSQL's identity
sequence never goes back, so nothing changes there.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("webhook_event", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}):
        pass
    # Start the counter past every id already handed out, including those whose event rows
    # were deleted after fan-out (their ids live on in `webhook_delivery.event_id`).
    # (`sqlite_sequence` has no key on its name: delete, then insert, never two rows.)
    op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'webhook_event'"))
    op.execute(sa.text(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'webhook_event', max("
        " coalesce((SELECT max(id) FROM webhook_event), 0),"
        " coalesce((SELECT max(CAST(substr(event_id, 5) AS INTEGER)) FROM webhook_delivery"
        "           WHERE event_id LIKE 'evt-%'), 0))"))


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("webhook_event", recreate="always",
                              table_kwargs={"sqlite_autoincrement": False}):
        pass
