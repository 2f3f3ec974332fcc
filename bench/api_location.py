"""Location query benchmark: `python bench/api_location.py [--assets N] [--events M] [--db KIND]`.

Seeds `--assets` assets (default 1,000,000) and `--events` custody-event rows (default
10,000,000) straight into a migrated database with bulk Core inserts, starts `kitledger serve`
(HTTP only) as a real process, and times sequential `GET /v1/assets/{id}/location` calls for
random assets over one keep-alive connection. Prints p50/p99 and the ratio to the bar
(p99 <= 10 ms). The event rows only give the tables their production size: the location query
reads the asset row, so they are not a valid log. A row of this machine's speed, measured
first, opens the table (`api_bench_setup.machine_row`).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from api_bench_setup import (  # type: ignore[import-not-found]  # sibling script module
    database,
    free_port,
    machine_row,
    percentile,
)
from sqlalchemy import insert
from sqlmodel import Session

from api.auth import create_api_client
from api.config import load_settings
from api.db import make_engine, table
from api.models import Agency, Asset, AssetClass, CustodyEventRow, Scope, Site

CHUNK = 20_000
WARMUP = 200


def seed(url: str, assets: int, events: int) -> str:
    engine = make_engine(load_settings(database_url=url))
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        _, key = create_api_client(session, agency_id="north", name="bench",
                                   scopes=[Scope.ASSETS_READ], server_secret="changeme", now=now)
        session.commit()
    asset_table = table(Asset)
    event_table = table(CustodyEventRow)
    with engine.begin() as conn:
        for start in range(0, assets, CHUNK):
            conn.execute(insert(asset_table), [{
                "id": f"A-{i}", "agency_id": "north", "class_id": "radio",
                "epc_hex": f"E280{i:020X}", "home_site_id": "north-store", "status": "in_store",
                "holder_kind": "location", "holder_ref": "north-store",
                "holder_agency_id": "north", "last_seen_at": now,
                "last_seen_reader_id": "desk-1", "last_seen_site_id": "north-store",
                "chain_next_seq": 1, "chain_prev": "00" * 32, "created_at": now,
            } for i in range(start, min(assets, start + CHUNK))])
        record = b'{"type":"custody-event"}' + b" " * 300
        for start in range(0, events, CHUNK):
            conn.execute(insert(event_table), [{
                "agency_id": "north", "asset_id": f"A-{i % assets}", "seq": i // assets,
                "action": "check_in", "record": record, "event_hash": i.to_bytes(32, "big"),
                "leaf_index": i, "created_at": now,
            } for i in range(start, min(events, start + CHUNK))])
    engine.dispose()
    return str(key)


def measure(url: str, key: str, assets: int, requests: int) -> list[float]:
    port = free_port()
    env = {**os.environ, "KITLEDGER_DATABASE_URL": url}
    server = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port), "--ingest-workers", "0"],
        env=env, stderr=subprocess.DEVNULL,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}",
                          headers={"Authorization": f"Bearer {key}"}) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    client.get("/healthz")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            ids = [f"A-{random.randrange(assets)}" for _ in range(WARMUP + requests)]
            timings = []
            for n, asset_id in enumerate(ids):
                started = time.perf_counter()
                response = client.get(f"/v1/assets/{asset_id}/location")
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise RuntimeError(f"location query answered {response.status_code}")
                if n >= WARMUP:
                    timings.append(elapsed)
            return timings
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    machine = machine_row(9)  # before the seeding and the server load the machine
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as url:
        started = time.monotonic()
        key = seed(url, args.assets, args.events)
        seeded = time.monotonic() - started
        timings = measure(url, key, args.assets, args.requests)
    p50, p99 = percentile(timings, 0.5) * 1000, percentile(timings, 0.99) * 1000
    print("| database | assets | events | requests | p50 | p99 | bar | ratio | seed time |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(machine)
    print(f"| {args.db} | {args.assets:,} | {args.events:,} | {len(timings):,} | {p50:.2f} ms | "
          f"{p99:.2f} ms | p99 10 ms | {10 / p99:.2f}x | {seeded:.0f} s |")


if __name__ == "__main__":
    main()
