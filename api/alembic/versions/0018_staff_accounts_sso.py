"""Staff accounts (local and single sign-on) and the sign-on attempts in flight; a web session
acts as an API client or as a staff account

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 04:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from api.db import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_account",
        sa.Column("id", sa.String(length=32), primary_key=True),
        sa.Column("agency_id", sa.String(length=128), sa.ForeignKey("agency.id"),
                  nullable=False),
        sa.Column("username", sa.String(length=320), nullable=False),
        sa.Column("display_name", sa.String(length=128), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("password_hash", sa.String(length=256), nullable=True),
        sa.Column("oidc_provider", sa.String(length=32), nullable=True),
        sa.Column("oidc_subject", sa.String(length=255), nullable=True),
        sa.Column("person_id", sa.String(length=128), sa.ForeignKey("person.id"),
                  nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_sign_in_at", UTCDateTime(), nullable=True),
        sa.Column("disabled_at", UTCDateTime(), nullable=True),
        sa.UniqueConstraint("agency_id", "username", name="uq_staff_account_username"),
        sa.UniqueConstraint("oidc_provider", "oidc_subject", name="uq_staff_account_subject"),
    )
    op.create_index(op.f("ix_staff_account_agency_id"), "staff_account", ["agency_id"])
    op.create_table(
        "sso_attempt",
        sa.Column("id", sa.String(length=64), primary_key=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("browser", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("code_verifier", sa.String(length=128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
    )
    op.create_index(op.f("ix_sso_attempt_expires_at"), "sso_attempt", ["expires_at"])
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.add_column(sa.Column("account_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key("fk_web_session_account_id", "staff_account",
                                    ["account_id"], ["id"])
        batch_op.create_index(batch_op.f("ix_web_session_account_id"), ["account_id"])


def downgrade() -> None:
    op.execute("DELETE FROM web_session WHERE client_id IS NULL")
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_account_id"))
        batch_op.drop_constraint("fk_web_session_account_id", type_="foreignkey")
        batch_op.drop_column("account_id")
        batch_op.alter_column("client_id", existing_type=sa.String(length=32), nullable=False)
    op.drop_index(op.f("ix_sso_attempt_expires_at"), table_name="sso_attempt")
    op.drop_table("sso_attempt")
    op.drop_index(op.f("ix_staff_account_agency_id"), table_name="staff_account")
    op.drop_table("staff_account")
