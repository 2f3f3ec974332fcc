"""One Merkle log per agency: separate sizes and roots, the 0004 migration that splits the old
shared log, and the log key files (mode 0600, refused when open to others or malformed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, col, select

from api.agency_keys import LogKeyError, anchoring_secret, log_key
from api.checkpoints import LogKeyMismatch, bind_log_key
from api.config import load_settings
from api.db import make_engine
from api.logstore import open_log
from api.migrate import upgrade
from api.models import Agency, AssetClass, CustodyEventRow, Site
from api.models.assets import AssetCreate
from api.registry import create_asset
from tests.api.api_support import log_leaves, reference_root


def _register(engine: Engine, plan: list[tuple[str, str]]) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session:
        for agency in sorted({a for a, _ in plan}):
            session.add(Agency(id=agency, name=agency))
            session.flush()
            session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
            session.add(AssetClass(id=f"{agency}-radio", agency_id=agency, name="Radio"))
            session.flush()
        for n, (agency, asset_id) in enumerate(plan):
            create_asset(session, agency_id=agency, now=now, data=AssetCreate(
                id=asset_id, class_id=f"{agency}-radio", epc_hex=f"E2800000000000000000{n:04d}",
                home_site_id=f"{agency}-store"))
            session.commit()


def _check_logs(engine: Engine, agencies: dict[str, tuple[int, int]]) -> None:
    """Each agency's log holds its (events, registry records) and nothing else."""
    with Session(engine) as session:
        for agency, (events, registry) in agencies.items():
            rows = session.exec(select(CustodyEventRow).where(
                CustodyEventRow.agency_id == agency).order_by(col(CustodyEventRow.leaf_index)))
            assert len(list(rows)) == events
            leaves = log_leaves(session, agency)
            log = open_log(session, agency)
            assert log.size == len(leaves) == events + registry
            assert log.root() == reference_root(leaves)


PLAN = [("north", "N-1"), ("south", "S-1"), ("north", "N-2"), ("south", "S-2"),
        ("north", "N-3")]


def test_each_agency_has_its_own_log(engine: Engine) -> None:
    _register(engine, PLAN)
    # Three north events and two south ones, each after its asset's tag record (and the
    # agency's registry opened): neither size reveals the other's activity.
    _check_logs(engine, {"north": (3, 4), "south": (2, 3), "east": (0, 0)})


def test_migration_splits_the_shared_log_per_agency(tmp_path: Path) -> None:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'old.db'}"))
    upgrade(engine, "0003")
    now = datetime.now(UTC).isoformat()
    with engine.begin() as conn:  # the old shape: one log, leaves numbered across agencies
        for n, (agency, asset_id) in enumerate(PLAN):
            conn.execute(text(
                "INSERT INTO custody_event (agency_id, asset_id, seq, action, record,"
                " event_hash, leaf_index, created_at) VALUES (:a, :s, 0, 'register', :r,"
                " :h, :n, :t)"), {"a": agency, "s": asset_id, "r": f"rec-{n}".encode(),
                                   "h": bytes(32), "n": n, "t": now})
    upgrade(engine)
    _check_logs(engine, {"north": (3, 0), "south": (2, 0)})
    with engine.connect() as conn:
        north = conn.execute(text("SELECT asset_id, leaf_index FROM custody_event"
                                  " WHERE agency_id = 'north' ORDER BY leaf_index")).all()
    assert [tuple(r) for r in north] == [("N-1", 0), ("N-2", 1), ("N-3", 2)]
    engine.dispose()


def test_log_key_files_are_private_stable_and_checked(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    first = log_key(keys, "north")
    again = log_key(keys, "north")
    assert first.private_bytes_raw() == again.private_bytes_raw()
    assert (keys / "north.log.key").stat().st_mode & 0o777 == 0o600
    assert keys.stat().st_mode & 0o777 == 0o700
    assert len(anchoring_secret(keys, "north")) == 32
    for hostile in ("../evil", "a/b", "", ".", "x" * 200):
        with pytest.raises(LogKeyError):
            log_key(keys, hostile)
    (keys / "north.log.key").chmod(0o644)
    with pytest.raises(LogKeyError, match="readable by others"):
        log_key(keys, "north")
    (keys / "north.log.key").chmod(0o600)
    for garbage in (b"not hex\n", b"00" * 31 + b"\n", b"a" * 10_000):
        (keys / "south.log.key").write_bytes(garbage)
        (keys / "south.log.key").chmod(0o600)
        with pytest.raises(LogKeyError, match="does not hold"):
            log_key(keys, "south")


def test_a_replaced_log_key_is_refused(engine: Engine, tmp_path: Path) -> None:
    _register(engine, PLAN[:1])
    bind_log_key(engine, tmp_path / "keys", "north")
    bind_log_key(engine, tmp_path / "keys", "north")  # the same key again is fine
    (tmp_path / "keys" / "north.log.key").unlink()
    with pytest.raises(LogKeyMismatch):
        bind_log_key(engine, tmp_path / "keys", "north")
