"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-28 17:59:57.244015
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "agency",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=True),
        sa.Column("reader_id", sa.String(length=128), nullable=True),
        sa.Column("site_id", sa.String(length=128), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alert_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_asset_id"), ["asset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_alert_kind"), ["kind"], unique=False)

    op.create_table(
        "custody_event",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("record", sa.LargeBinary(), nullable=False),
        sa.Column("event_hash", sa.LargeBinary(), nullable=False),
        sa.Column(
            "leaf_index", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("asset_id", "seq", name="uq_custody_event_asset_seq"),
        sa.UniqueConstraint("leaf_index"),
    )
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_custody_event_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "decision",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reader_id", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("decision", sa.String(length=8), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_decision_published_at"), ["published_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_decision_reader_id"), ["reader_id"], unique=False)

    op.create_table(
        "desk_session",
        sa.Column("reader_id", sa.String(length=128), nullable=False),
        sa.Column("session", sa.String(length=128), nullable=False),
        sa.Column("person_ids", sa.JSON(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("reader_id", "session"),
    )
    op.create_table(
        "device_cursor",
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("high_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id"),
    )
    op.create_table(
        "log_node",
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx"),
    )
    op.create_table(
        "log_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "observation",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("envelope_hash", sa.LargeBinary(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("epc_hex", sa.String(length=124), nullable=False),
        sa.Column("session", sa.String(length=128), nullable=True),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("device_id", "seq", name="uq_observation_device_seq"),
    )
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_observation_epc_hex"), ["epc_hex"], unique=False)
        batch_op.create_index(batch_op.f("ix_observation_site_id"), ["site_id"], unique=False)

    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("payload_size", sa.Integer(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_device_id"), ["device_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_quarantine_reason"), ["reason"], unique=False)

    op.create_table(
        "refusal",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("asset_id", sa.String(length=128), nullable=True),
        sa.Column("reader_id", sa.String(length=128), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("refusal", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_refusal_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_refusal_asset_id"), ["asset_id"], unique=False)

    op.create_table(
        "sequence_gap",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column(
            "first_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sequence_gap", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sequence_gap_closed_at"), ["closed_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_sequence_gap_device_id"), ["device_id"], unique=False)

    op.create_table(
        "sighting",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("epc_hex", sa.String(length=124), nullable=False),
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("reader_id", sa.String(length=128), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("epc_hex", "site_id", name="uq_sighting_epc_site"),
    )
    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sighting_site_id"), ["site_id"], unique=False)

    op.create_table(
        "asset_class",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("required_qualification", sa.String(length=128), nullable=True),
        sa.Column("loan_days", sa.Integer(), nullable=True),
        sa.Column("dual_signoff", sa.Boolean(), nullable=False),
        sa.Column("disposal_final", sa.Boolean(), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("asset_class", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_class_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "person",
        sa.Column("qualifications", sa.JSON(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("commitment", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("commitment"),
    )
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "site",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_agency_id"), ["agency_id"], unique=False)

    op.create_table(
        "asset",
        sa.Column("class_id", sa.String(length=128), nullable=False),
        sa.Column("epc_hex", sa.String(length=124), nullable=False),
        sa.Column("epc_uri", sa.String(length=256), nullable=True),
        sa.Column("home_site_id", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("holder_kind", sa.String(length=16), nullable=False),
        sa.Column("holder_ref", sa.String(length=128), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_reader_id", sa.String(length=128), nullable=True),
        sa.Column("last_seen_site_id", sa.String(length=128), nullable=True),
        sa.Column(
            "chain_next_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("chain_prev", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.ForeignKeyConstraint(
            ["class_id"],
            ["asset_class.id"],
        ),
        sa.ForeignKeyConstraint(
            ["home_site_id"],
            ["site.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("epc_hex"),
    )
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_asset_class_id"), ["class_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_asset_due_at"), ["due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_asset_holder_ref"), ["holder_ref"], unique=False)
        batch_op.create_index(batch_op.f("ix_asset_home_site_id"), ["home_site_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_asset_last_seen_site_id"), ["last_seen_site_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_asset_status"), ["status"], unique=False)

    op.create_table(
        "badge",
        sa.Column("epc_hex", sa.String(length=124), nullable=False),
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("epc_hex"),
    )
    with op.batch_alter_table("badge", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_badge_person_id"), ["person_id"], unique=False)

    op.create_table(
        "person_secret",
        sa.Column("person_id", sa.String(length=128), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["person.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("person_id"),
    )
    op.create_table(
        "reader",
        sa.Column("site_id", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("zones", sa.JSON(), nullable=False),
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("public_key", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["site.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_id"),
    )
    with op.batch_alter_table("reader", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reader_agency_id"), ["agency_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reader_site_id"), ["site_id"], unique=False)

    op.create_table(
        "asset_share",
        sa.Column("asset_id", sa.String(length=128), nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["agency_id"],
            ["agency.id"],
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"],
            ["asset.id"],
        ),
        sa.PrimaryKeyConstraint("asset_id", "agency_id"),
    )
    with op.batch_alter_table("asset_share", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_share_agency_id"), ["agency_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("asset_share", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_share_agency_id"))

    op.drop_table("asset_share")
    with op.batch_alter_table("reader", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_reader_site_id"))
        batch_op.drop_index(batch_op.f("ix_reader_agency_id"))

    op.drop_table("reader")
    op.drop_table("person_secret")
    with op.batch_alter_table("badge", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_badge_person_id"))

    op.drop_table("badge")
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_status"))
        batch_op.drop_index(batch_op.f("ix_asset_last_seen_site_id"))
        batch_op.drop_index(batch_op.f("ix_asset_home_site_id"))
        batch_op.drop_index(batch_op.f("ix_asset_holder_ref"))
        batch_op.drop_index(batch_op.f("ix_asset_due_at"))
        batch_op.drop_index(batch_op.f("ix_asset_class_id"))
        batch_op.drop_index(batch_op.f("ix_asset_agency_id"))

    op.drop_table("asset")
    with op.batch_alter_table("site", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_agency_id"))

    op.drop_table("site")
    with op.batch_alter_table("person", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_agency_id"))

    op.drop_table("person")
    with op.batch_alter_table("asset_class", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_asset_class_agency_id"))

    op.drop_table("asset_class")
    with op.batch_alter_table("sighting", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sighting_site_id"))

    op.drop_table("sighting")
    with op.batch_alter_table("sequence_gap", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sequence_gap_device_id"))
        batch_op.drop_index(batch_op.f("ix_sequence_gap_closed_at"))

    op.drop_table("sequence_gap")
    with op.batch_alter_table("refusal", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_refusal_asset_id"))
        batch_op.drop_index(batch_op.f("ix_refusal_agency_id"))

    op.drop_table("refusal")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_reason"))
        batch_op.drop_index(batch_op.f("ix_quarantine_device_id"))

    op.drop_table("quarantine")
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observation_site_id"))
        batch_op.drop_index(batch_op.f("ix_observation_epc_hex"))

    op.drop_table("observation")
    op.drop_table("log_state")
    op.drop_table("log_node")
    op.drop_table("device_cursor")
    op.drop_table("desk_session")
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_decision_reader_id"))
        batch_op.drop_index(batch_op.f("ix_decision_published_at"))

    op.drop_table("decision")
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_custody_event_agency_id"))

    op.drop_table("custody_event")
    with op.batch_alter_table("alert", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_kind"))
        batch_op.drop_index(batch_op.f("ix_alert_asset_id"))
        batch_op.drop_index(batch_op.f("ix_alert_agency_id"))

    op.drop_table("alert")
    op.drop_table("agency")
