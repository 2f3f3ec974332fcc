"""indexes ingest writes on every read only where something looks rows up by them

Every accepted read stores an observation, a decision and usually a custody event, and each
index on those tables is one more entry written per row. Dropped: custody_event's index on
agency_id (its unique index on agency_id, leaf_index serves the same look-ups) and
observation's on epc_hex and site_id (nothing queries observations by either: where tags are
seen is kept in assets and sightings). Added: observation's envelope_hash, by which an audit
bundle finds the observations its events cite (without it, a scan of every read ever
stored). decision's index on published_at becomes a partial index of the unpublished ones,
which is all the publisher asks for: as small as the backlog, and a decision marked sent
leaves it rather than adding an entry. asset's indexes on agency_id and on status become one
on both (status is only asked for within an agency): each custody change rewrites its
asset's row and adds an entry to every index of the table.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNPUBLISHED = sa.text("published_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.create_index("ix_asset_agency_id_status", ["agency_id", "status"], unique=False)
        batch_op.drop_index("ix_asset_agency_id")
        batch_op.drop_index("ix_asset_status")
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.drop_index("ix_custody_event_agency_id")
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_index("ix_observation_epc_hex")
        batch_op.drop_index("ix_observation_site_id")
        batch_op.create_index("ix_observation_envelope_hash", ["envelope_hash"], unique=False)
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_published_at")
        batch_op.create_index("ix_decision_unpublished", ["id"], unique=False,
                              postgresql_where=_UNPUBLISHED, sqlite_where=_UNPUBLISHED)


def downgrade() -> None:
    with op.batch_alter_table("decision", schema=None) as batch_op:
        batch_op.drop_index("ix_decision_unpublished")
        batch_op.create_index("ix_decision_published_at", ["published_at"], unique=False)
    with op.batch_alter_table("observation", schema=None) as batch_op:
        batch_op.drop_index("ix_observation_envelope_hash")
        batch_op.create_index("ix_observation_site_id", ["site_id"], unique=False)
        batch_op.create_index("ix_observation_epc_hex", ["epc_hex"], unique=False)
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.create_index("ix_custody_event_agency_id", ["agency_id"], unique=False)
    with op.batch_alter_table("asset", schema=None) as batch_op:
        batch_op.create_index("ix_asset_status", ["status"], unique=False)
        batch_op.create_index("ix_asset_agency_id", ["agency_id"], unique=False)
        batch_op.drop_index("ix_asset_agency_id_status")
