"""Migration 0026 on a database with rows in it: ids become each agency's own, every row keeps
its id and gains its agency (a holder's, a share's owner, a sighting's), nothing points at
nothing, and afterwards another agency may take the same ids and EPCs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Asset, AssetShare, Badge, ForeignSighting, PersonSecret, Sighting
from tests.fixtures.postgres import create_database, database_url, drop_database

T = "2026-12-01 10:00:00+00:00"
EPC = "E28011606000020500000001"
BADGE = "E28011606000020500000002"

# As a version-0025 database holds them: north's radio R-1, shared with south and checked in at
# south's store; north's p-1 with a badge and an account; a stranger tag and a foreign sighting.
ROWS_0025 = [
    f"INSERT INTO agency (id, name, created_at) VALUES ('north', 'North', '{T}'), "
    f"('south', 'South', '{T}')",
    "INSERT INTO site (id, agency_id, name) VALUES ('north-store', 'north', 'N'), "
    "('south-store', 'south', 'S')",
    f"INSERT INTO person (id, agency_id, qualifications, active, commitment, created_at) "
    f"VALUES ('p-1', 'north', '[]', true, '{'ab' * 32}', '{T}')",
    "INSERT INTO person_secret (person_id, salt, value) VALUES ('p-1', 'salt', 'p-1')",
    f"INSERT INTO badge (epc_hex, person_id) VALUES ('{BADGE}', 'p-1')",
    f"INSERT INTO staff_account (id, agency_id, username, role, person_id, created_at) "
    f"VALUES ('acct-1', 'north', 'nina', 'stores_officer', 'p-1', '{T}')",
    "INSERT INTO asset_class (id, agency_id, name, dual_signoff, disposal_final) "
    "VALUES ('radio', 'north', 'Radio', false, true)",
    f"INSERT INTO asset (id, agency_id, class_id, epc_hex, home_site_id, status, holder_kind, "
    f"holder_ref, chain_next_seq, chain_prev, created_at) VALUES ('R-1', 'north', 'radio', "
    f"'{EPC}', 'north-store', 'in_store', 'location', 'south-store', 1, '{'00' * 32}', '{T}')",
    "INSERT INTO asset_share (asset_id, agency_id) VALUES ('R-1', 'south')",
    f"INSERT INTO reader (id, agency_id, site_id, role, zones, public_key, key_id, status, "
    f"registered_at) VALUES ('s-desk', 'south', 'south-store', 'return_desk', '{{}}', "
    f"'{'11' * 32}', '{'22' * 16}', 'active', '{T}')",
    f"INSERT INTO sighting (epc_hex, site_id, reader_id, first_seen_at, last_seen_at, count) "
    f"VALUES ('E28011606000020500000009', 'south-store', 's-desk', '{T}', '{T}', 2)",
    f"INSERT INTO foreign_sighting (asset_id, reporting_agency_id, reader_id, site_id, "
    f"first_seen_at, last_seen_at, count) VALUES ('R-1', 'south', 's-desk', 'south-store', "
    f"'{T}', '{T}', 1)",
]


@pytest.fixture(params=["sqlite", "postgresql"])
def at_0025(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database migrated to 0025 only, with `ROWS_0025` in it."""
    name = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'api.db'}"
    else:
        name = create_database()
        url = database_url(name)
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine, "0025")
    with engine.begin() as connection:
        for statement in ROWS_0025:
            connection.execute(text(statement))
    yield engine
    engine.dispose()
    if name is not None:
        drop_database(name)


def test_every_row_keeps_its_id_and_gains_its_agency(at_0025: Engine) -> None:
    upgrade(at_0025)
    with Session(at_0025) as session:
        radio = session.get(Asset, ("north", "R-1"))
        assert radio is not None
        assert (radio.holder_ref, radio.holder_agency_id) == ("south-store", "south")
        share = session.exec(select(AssetShare)).one()
        assert (share.owner_id, share.asset_id, share.agency_id) == ("north", "R-1", "south")
        badge = session.exec(select(Badge)).one()
        assert (badge.agency_id, badge.epc_hex, badge.person_id) == ("north", BADGE, "p-1")
        secret = session.exec(select(PersonSecret.agency_id, PersonSecret.person_id)).one()
        assert tuple(secret) == ("north", "p-1")
        assert session.exec(select(Sighting.agency_id)).one() == "south"
        assert session.exec(select(ForeignSighting.owner_id)).one() == "north"


def test_after_it_another_agency_takes_the_same_ids_and_epcs(at_0025: Engine) -> None:
    upgrade(at_0025)
    with at_0025.begin() as connection:
        connection.execute(text(
            "INSERT INTO site (id, agency_id, name) VALUES ('north-store', 'south', 'S2')"))
        connection.execute(text(
            "INSERT INTO asset_class (id, agency_id, name, dual_signoff, disposal_final) "
            "VALUES ('radio', 'south', 'Radio', false, true)"))
        connection.execute(text(
            f"INSERT INTO asset (id, agency_id, class_id, epc_hex, home_site_id, status, "
            f"holder_kind, holder_ref, holder_agency_id, chain_next_seq, chain_prev, "
            f"created_at) VALUES ('R-1', 'south', 'radio', '{EPC}', 'north-store', "
            f"'in_store', 'location', 'north-store', 'south', 0, '{'00' * 32}', '{T}')"))
    with Session(at_0025) as session:
        owners = session.exec(select(Asset.agency_id).where(Asset.id == "R-1")).all()
    assert sorted(owners) == ["north", "south"]


def test_a_key_to_nothing_is_still_refused(at_0025: Engine) -> None:
    """The composite keys hold: an asset of a class its agency does not have is refused, even
    if another agency has a class of that id."""
    upgrade(at_0025)
    with pytest.raises(IntegrityError, match=r"(?i)foreign key"), \
            at_0025.begin() as connection:
        connection.execute(text(
            f"INSERT INTO asset (id, agency_id, class_id, epc_hex, home_site_id, status, "
            f"holder_kind, holder_ref, holder_agency_id, chain_next_seq, chain_prev, "
            f"created_at) VALUES ('R-2', 'south', 'radio', '{EPC}', 'south-store', "
            f"'in_store', 'location', 'south-store', 'south', 0, '{'00' * 32}', '{T}')"))
