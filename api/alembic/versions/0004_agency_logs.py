"""one Merkle log per agency, signed checkpoints and their anchors

Until now every agency's custody events were leaves of one shared log, so a log's size leaked
other agencies' activity. Each agency now has its own log: the existing events are re-sequenced
per agency (in their old leaf order, so each asset's chain order is kept) and each agency's
tree is rebuilt from the stored records. No checkpoint was ever signed or anchored for the
shared log, so no published root is invalidated.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 10:00:00.000000
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from ledger.merkle_log import MerkleLog, Node

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UNIQUE_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
"""Names the unnamed unique constraint of 0001 on SQLite, so batch mode can drop it."""


class _NodeCollector:
    """A write-only node store: the nodes of a tree built from scratch, in order."""

    def __init__(self) -> None:
        self.nodes: list[Node] = []

    def size(self) -> int:
        return 0

    def get_many(self, coords: Sequence[tuple[int, int]]) -> list[bytes]:
        if coords:  # an empty log's frontier is empty; a rebuilt log reads nothing else
            raise LookupError("a rebuilt log never reads stored nodes")
        return []

    def put_many(self, nodes: Sequence[Node]) -> None:
        self.nodes.extend(nodes)


def upgrade() -> None:
    op.create_table(
        "agency_log",
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("size", _BIGINT, nullable=False),
        sa.Column("log_id", sa.String(length=32), nullable=True),
        sa.Column("public_key", sa.LargeBinary(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency_id"),
        sa.UniqueConstraint("log_id"),
    )
    op.create_table(
        "log_checkpoint",
        sa.Column("id", _BIGINT, nullable=False),
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("log_id", sa.String(length=32), nullable=False),
        sa.Column("tree_size", _BIGINT, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("chain_id", _BIGINT, nullable=True),
        sa.Column("contract", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.LargeBinary(), nullable=True),
        sa.Column("block_number", _BIGINT, nullable=True),
        sa.Column("block_hash", sa.LargeBinary(), nullable=True),
        sa.Column("anchorer", sa.String(length=42), nullable=True),
        sa.Column("receipt_address", sa.String(length=42), nullable=True),
        sa.Column("receipt_topics", sa.JSON(), nullable=True),
        sa.Column("receipt_data", sa.LargeBinary(), nullable=True),
        sa.Column("anchored_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("agency_id", "tree_size", name="uq_log_checkpoint_agency_size"),
    )
    with op.batch_alter_table("log_checkpoint", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_log_checkpoint_agency_id"), ["agency_id"])

    op.drop_table("log_node")
    op.create_table(
        "log_node",
        sa.Column("agency_id", sa.String(length=128), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("idx", _BIGINT, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "level", "idx"),
    )
    with op.batch_alter_table("custody_event", naming_convention=_UNIQUE_NAMES) as batch_op:
        if op.get_bind().dialect.name == "sqlite":
            batch_op.drop_constraint("uq_custody_event_leaf_index", type_="unique")
        else:
            batch_op.drop_constraint("custody_event_leaf_index_key", type_="unique")
    _resequence()
    with op.batch_alter_table("custody_event", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_custody_event_agency_leaf", ["agency_id", "leaf_index"])


def _resequence() -> None:
    """Give each agency its own leaf numbering and tree, from the stored event records."""
    bind = op.get_bind()
    events = sa.table("custody_event", sa.column("id"), sa.column("agency_id"),
                      sa.column("leaf_index"), sa.column("record"))
    nodes = sa.table("log_node", sa.column("agency_id"), sa.column("level"), sa.column("idx"),
                     sa.column("hash"))
    sizes = sa.table("agency_log", sa.column("agency_id"), sa.column("size"),
                     sa.column("updated_at"))
    rows = bind.execute(sa.select(events.c.id, events.c.agency_id, events.c.record)
                        .order_by(events.c.leaf_index)).all()
    by_agency: dict[str, list[tuple[int, bytes]]] = {}
    for event_id, agency_id, record in rows:
        by_agency.setdefault(agency_id, []).append((event_id, bytes(record)))
    # Move every index out of the way first: renumbering in place could collide mid-update.
    bind.execute(sa.update(events).values(leaf_index=-events.c.leaf_index - 1))
    now = datetime.now(UTC)
    for agency_id, items in by_agency.items():
        for index, (event_id, _) in enumerate(items):
            bind.execute(sa.update(events).where(events.c.id == event_id)
                         .values(leaf_index=index))
        collector = _NodeCollector()
        MerkleLog(collector).append_many(record for _, record in items)
        bind.execute(sa.insert(nodes), [
            {"agency_id": agency_id, "level": lv, "idx": ix, "hash": h}
            for lv, ix, h in collector.nodes
        ])
        bind.execute(sa.insert(sizes),
                     {"agency_id": agency_id, "size": len(items), "updated_at": now})
    bind.execute(sa.update(sa.table("log_state", sa.column("size"))).values(size=0))


def downgrade() -> None:
    # The shared log cannot be rebuilt without re-sequencing every agency's events together;
    # refuse rather than leave proofs that do not verify.
    raise NotImplementedError("0004 (per-agency logs) cannot be downgraded")
