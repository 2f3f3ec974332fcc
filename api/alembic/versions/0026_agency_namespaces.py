"""Ids per agency: sites, people, classes, assets and badges are keyed (agency, id)

One agency's ids say nothing about another's: two agencies may each register a site, person,
class or asset called "R-100", or tag kit with the same EPC, and neither learns of the other.
Rows that point at them carry the agency (an asset's share its owner, a sighting its agency).
Existing ids were unique across agencies, so every row keeps its id and gains its agency.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.String(length=128)

# SQLite's constraints have no names: these give the reflected ones names to drop them by
# (PostgreSQL's are its defaults, `_name`).
_SQLITE_NAMES = {
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "pk": "pk_%(table_name)s",
}

_OLD_KEYS = (  # (table, column, referred table): the single-column keys this replaces
    ("asset", "class_id", "asset_class"), ("asset", "home_site_id", "site"),
    ("asset_share", "asset_id", "asset"), ("badge", "person_id", "person"),
    ("evidence_disposal", "asset_id", "asset"), ("evidence_reference", "asset_id", "asset"),
    ("foreign_sighting", "asset_id", "asset"), ("inventory", "officer_id", "person"),
    ("inventory", "site_id", "site"), ("person_secret", "person_id", "person"),
    ("reader", "site_id", "site"), ("staff_account", "person_id", "person"),
)

_NEW_KEYS = (  # (table, name, local columns, referred table, ondelete)
    ("asset", "fk_asset_class", ["agency_id", "class_id"], "asset_class", None),
    ("asset", "fk_asset_home_site", ["agency_id", "home_site_id"], "site", None),
    ("asset_share", "fk_asset_share_asset", ["owner_id", "asset_id"], "asset", None),
    ("badge", "fk_badge_person", ["agency_id", "person_id"], "person", "CASCADE"),
    ("evidence_disposal", "fk_evidence_disposal_asset", ["agency_id", "asset_id"], "asset",
     None),
    ("evidence_reference", "fk_evidence_reference_asset", ["agency_id", "asset_id"], "asset",
     None),
    ("foreign_sighting", "fk_foreign_sighting_asset", ["owner_id", "asset_id"], "asset", None),
    ("inventory", "fk_inventory_officer", ["agency_id", "officer_id"], "person", None),
    ("inventory", "fk_inventory_site", ["agency_id", "site_id"], "site", None),
    ("person_secret", "fk_person_secret_person", ["agency_id", "person_id"], "person",
     "CASCADE"),
    ("reader", "fk_reader_site", ["agency_id", "site_id"], "site", None),
    ("staff_account", "fk_staff_account_person", ["agency_id", "person_id"], "person", None),
)

_FILLS = (  # (table, new column, parent table, the parent's id = this column)
    ("asset_share", "owner_id", "asset", "asset_id"),
    ("badge", "agency_id", "person", "person_id"),
    ("foreign_sighting", "owner_id", "asset", "asset_id"),
    ("person_secret", "agency_id", "person", "person_id"),
    ("sighting", "agency_id", "site", "site_id"),
)


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _batch(table: str):  # type: ignore[no-untyped-def]
    return op.batch_alter_table(table, naming_convention=_SQLITE_NAMES)


def _fk_name(table: str, column: str, referred: str) -> str:
    return f"{table}_{column}_fkey" if _postgres() else f"fk_{table}_{column}_{referred}"


def _pk_name(table: str) -> str:
    return f"{table}_pkey" if _postgres() else f"pk_{table}"


def _fill(table: str, column: str, parent: str, via: str) -> None:
    # Names from `_FILLS` above, never input.
    op.execute(f"UPDATE {table} SET {column} = (SELECT {parent}.agency_id "  # noqa: S608
               f"FROM {parent} WHERE {parent}.id = {table}.{via})")


def _fill_holder_agencies() -> None:
    """A holder's agency: a site's or person's own (ids were unique across agencies until
    now), an agency holder itself; the owner's if the row is gone."""
    op.execute("""
        UPDATE asset SET holder_agency_id = COALESCE(
            CASE holder_kind
                WHEN 'location' THEN (SELECT site.agency_id FROM site
                                      WHERE site.id = asset.holder_ref)
                WHEN 'person' THEN (SELECT person.agency_id FROM person
                                    WHERE person.id = asset.holder_ref)
                ELSE holder_ref
            END, agency_id)
    """)


def upgrade() -> None:
    for table, column, referred in _OLD_KEYS:
        with _batch(table) as batch_op:
            batch_op.drop_constraint(_fk_name(table, column, referred), type_="foreignkey")
    for table in ("site", "person", "asset_class", "asset"):
        with _batch(table) as batch_op:
            batch_op.drop_constraint(_pk_name(table), type_="primary")
            batch_op.create_primary_key(f"pk_{table}", ["agency_id", "id"])
            if table != "asset":
                batch_op.drop_index(f"ix_{table}_agency_id")
    with _batch("asset") as batch_op:
        batch_op.drop_constraint("asset_epc_hex_key" if _postgres() else "uq_asset_epc_hex",
                                 type_="unique")
        batch_op.create_unique_constraint("uq_asset_epc_agency", ["epc_hex", "agency_id"])
        batch_op.drop_index("ix_asset_class_id")
        batch_op.drop_index("ix_asset_home_site_id")
        batch_op.create_index("ix_asset_agency_class", ["agency_id", "class_id"])
        batch_op.create_index("ix_asset_agency_home_site", ["agency_id", "home_site_id"])
        batch_op.add_column(sa.Column("holder_agency_id", _ID, nullable=True))
    _fill_holder_agencies()
    with _batch("asset") as batch_op:
        batch_op.alter_column("holder_agency_id", existing_type=_ID, nullable=False)
    for table, column, parent, via in _FILLS:
        with _batch(table) as batch_op:
            batch_op.add_column(sa.Column(column, _ID, nullable=True))
        _fill(table, column, parent, via)
        with _batch(table) as batch_op:
            batch_op.alter_column(column, existing_type=_ID, nullable=False)
    _children_keys()
    for table, name, columns, referred, ondelete in _NEW_KEYS:
        with _batch(table) as batch_op:
            batch_op.create_foreign_key(name, referred, columns, ["agency_id", "id"],
                                        ondelete=ondelete)


def _children_keys() -> None:
    """The keys, unique constraints and indexes of the rows that point at the four."""
    for table, key in (("asset_share", ["owner_id", "asset_id", "agency_id"]),
                       ("person_secret", ["agency_id", "person_id"]),
                       ("badge", ["agency_id", "epc_hex"]),
                       ("evidence_reference", ["agency_id", "asset_id"]),
                       ("evidence_disposal", ["agency_id", "asset_id"])):
        with _batch(table) as batch_op:
            batch_op.drop_constraint(_pk_name(table), type_="primary")
            batch_op.create_primary_key(f"pk_{table}", key)
    with _batch("badge") as batch_op:
        batch_op.drop_index("ix_badge_person_id")
        batch_op.create_index("ix_badge_agency_person", ["agency_id", "person_id"])
    with _batch("evidence_disposal") as batch_op:
        batch_op.drop_index("ix_evidence_disposal_agency_id")
    with _batch("foreign_sighting") as batch_op:
        batch_op.drop_constraint("uq_foreign_sighting_asset_reader", type_="unique")
        batch_op.create_unique_constraint("uq_foreign_sighting_asset_reader",
                                          ["owner_id", "asset_id", "reader_id"])
        batch_op.drop_index("ix_foreign_sighting_site_id")
        batch_op.create_index("ix_foreign_sighting_agency_site",
                              ["reporting_agency_id", "site_id"])
    with _batch("sighting") as batch_op:
        batch_op.drop_constraint("uq_sighting_epc_site", type_="unique")
        batch_op.create_unique_constraint("uq_sighting_site_epc",
                                          ["agency_id", "site_id", "epc_hex"])
        batch_op.drop_index("ix_sighting_site_id")
    with _batch("custody_event") as batch_op:
        batch_op.drop_constraint("uq_custody_event_asset_seq", type_="unique")
        batch_op.create_unique_constraint("uq_custody_event_asset_seq",
                                          ["asset_id", "agency_id", "seq"])
    with _batch("reader") as batch_op:
        batch_op.drop_index("ix_reader_site_id")
        batch_op.create_index("ix_reader_agency_site", ["agency_id", "site_id"])


def downgrade() -> None:
    raise NotImplementedError(
        "ids per agency cannot be folded back into one namespace: two agencies may now hold "
        "the same id; restore the backup taken before upgrading instead")
