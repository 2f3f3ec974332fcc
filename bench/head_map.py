"""Benchmark: the head map a checkpoint commits to, built from the database at 1,000,000 assets.

    .venv/bin/python bench/head_map.py            # 1,000,000 assets on a fresh PostgreSQL db
    .venv/bin/python bench/head_map.py --quick    # 20,000 assets, for the test suite

The store: every asset registered (two in three still in the store, so with a site entry too),
and 1,000 of them moved again after the checkpoint's size, so building the map at that size
walks 1,000 events back. Timed: `api.head_maps.head_map_at` as the anchoring process calls it
for each checkpoint (one read of the asset table with the log size, the walk back, the map),
and, apart, the map's hashing alone from the same heads in memory. Seeding is not timed.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from api_bench_setup import database  # type: ignore[import-not-found]  # sibling script module
from sqlalchemy import Engine
from sqlmodel import Session

from api.bulk import insert_rows
from api.config import load_settings
from api.db import make_engine, table
from api.head_maps import head_map_at
from api.models import Agency, AssetClass, Site
from api.models.assets import Asset
from api.models.custody import AgencyLog, CustodyEventRow
from ledger.core import hashing
from ledger.core.bundle import fast_canonical
from ledger.core.heads import Head, HeadMap
from ledger.core.records import GENESIS_PREV

MOVED = 1_000
BATCH = 10_000


def _record(asset: str, seq: int, prev: str, to: dict[str, str]) -> bytes:
    return fast_canonical({
        "type": "custody-event", "v": 1, "agency": "north", "asset": asset, "seq": seq,
        "prev": prev, "action": "register" if seq == 0 else "check_out",
        "time": "2026-01-01T00:00:00.000Z", "from": None if seq == 0 else {
            "kind": "location", "ref": "north-store"}, "to": to, "observations": [],
        "authorised_by": [], "reader": None})


def seed(engine: Engine, assets: int) -> list[Head]:
    """`assets` registered assets, the first MOVED of them moved again after leaf `assets`;
    returns the heads at size `assets` (what the map must hold)."""
    now = datetime.now(UTC)
    store, person = {"kind": "location", "ref": "north-store"}, {"kind": "person", "ref": "a" * 64}
    expected: list[Head] = []
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.commit()
    connection_engine = engine.connect()
    with connection_engine as connection:
        for start in range(0, assets, BATCH):
            rows, events = [], []
            for i in range(start, min(start + BATCH, assets)):
                asset = f"A-{i:07d}"
                located = i % 3 != 0
                first = _record(asset, 0, GENESIS_PREV, store if located else person)
                head = hashing.domain_hash(hashing.CUSTODY_EVENT, first)
                expected.append((asset, 0, head, "north-store" if located else None))
                seq, prev, holder = 1, head.hex(), ("location" if located else "person",
                                                    "north-store" if located else "p-1")
                if i < MOVED:
                    second = _record(asset, 1, head.hex(), person)
                    prev = hashing.domain_hash(hashing.CUSTODY_EVENT, second).hex()
                    seq, holder = 2, ("person", "p-1")
                    events += [_event(asset, 0, first, i, now),
                               _event(asset, 1, second, assets + i, now)]
                rows.append({"id": asset, "agency_id": "north", "class_id": "radio",
                             "epc_hex": f"E280{i:020X}", "epc_uri": None,
                             "home_site_id": "north-store", "status": "in_store",
                             "holder_kind": holder[0], "holder_ref": holder[1],
                             "holder_agency_id": "north", "due_at": None,
                             "last_seen_at": None, "last_seen_reader_id": None,
                             "last_seen_site_id": None, "chain_next_seq": seq,
                             "chain_prev": prev, "created_at": now})
            insert_rows(connection, table(Asset), rows)
            if events:
                insert_rows(connection, table(CustodyEventRow), events)
            connection.commit()
        insert_rows(connection, table(AgencyLog), [{
            "agency_id": "north", "size": assets + MOVED, "log_id": None, "public_key": None,
            "updated_at": now}])
        connection.commit()
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("ANALYZE")
            connection.commit()
    return expected


def _event(asset: str, seq: int, record: bytes, leaf: int, now: datetime) -> dict[str, object]:
    return {"agency_id": "north", "asset_id": asset, "seq": seq,
            "action": "register" if seq == 0 else "check_out", "record": record,
            "event_hash": hashing.domain_hash(hashing.CUSTODY_EVENT, record),
            "leaf_index": leaf, "created_at": now}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 assets, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    args = parser.parse_args()
    assets = 20_000 if args.quick else 1_000_000
    runs = 1 if args.quick else args.runs
    with tempfile.TemporaryDirectory() as workdir, database(args.backend, Path(workdir)) as url:
        engine = make_engine(load_settings(database_url=url))
        started = time.perf_counter()
        expected = seed(engine, assets)
        seed_s = time.perf_counter() - started
        reference = HeadMap.from_heads(expected).root
        totals, hashing_only, entries = [], [], 0
        for _ in range(runs):
            started = time.perf_counter()
            with Session(engine) as session:
                head_map = head_map_at(session, "north", assets)
            totals.append(time.perf_counter() - started)
            if head_map.root != reference:
                raise SystemExit("the map built from the database is not the expected one")
            entries = head_map.size
            del head_map  # one map alive at a time, as in the anchoring process
            started = time.perf_counter()
            HeadMap.from_heads(expected)
            hashing_only.append(time.perf_counter() - started)
        engine.dispose()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total, alone = statistics.median(totals), statistics.median(hashing_only)
    print(f"| assets | map entries | backend | seed s (untimed) | head_map_at s (median of "
          f"{runs}) | of which the map alone s | walked back | peak MB |")
    print("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {assets:,} | {entries:,} | {args.backend} | {seed_s:.0f} | {total:.2f} | "
          f"{alone:.2f} | {MOVED:,} events | {peak_mb:.0f} |")


if __name__ == "__main__":
    main()
