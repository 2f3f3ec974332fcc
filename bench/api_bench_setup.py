"""Shared set-up for the API benchmarks: a private Mosquitto, databases, and a seeded store.

Everything runs on loopback: a broker started on a free port with raised queue limits (the
Debian default silently drops QoS 1 messages to slow subscribers), a SQLite file or a fresh
PostgreSQL database on 127.0.0.1:5432, and ingest workers as separate processes, as
`kitledger serve` runs them.
"""

from __future__ import annotations

import multiprocessing
import secrets
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.signing import SigningKey
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.migrate import upgrade
from api.models import Agency, AssetClass, Site
from api.models.assets import AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate, ReaderRole
from api.processes import tune_collector
from api.registry import create_asset, create_person, register_reader
from ledger.core.envelope import raw_public_key

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
BROKER_CONFIG = """\
listener {port} 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 1000
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def broker(workdir: Path) -> Iterator[int]:
    port = free_port()
    config = workdir / "mosquitto.conf"
    config.write_text(BROKER_CONFIG.format(port=port))
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield port
    finally:
        process.kill()
        process.wait()


PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"
"""The local PostgreSQL (trust auth) in which benchmarks make and drop their databases."""


@contextmanager
def database(kind: str, workdir: Path) -> Iterator[str]:
    """A fresh, migrated database URL of `kind` ("sqlite" or "postgresql")."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade(make_engine(load_settings(database_url=url)))
        yield url
        return
    name = f"kitledger_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class BenchReader:
    reader_id: str
    topic: str
    key: Ed25519PrivateKey
    badge: str
    assets: list[str]


def seed_store(engine: Engine, readers: int, assets_per_reader: int, *, agency: str = "north",
               first: int = 0) -> list[BenchReader]:
    """Agency `agency` and its store; per desk pair r (numbered from `first`, so several
    agencies' desks, badges and EPCs never collide): issue desk `desk-r` and return desk
    `ret-r` (returned in that order), a badge holder, and `assets_per_reader` radios."""
    now = datetime.now(UTC)
    site, radio = f"{agency}-store", f"{agency}-radio"
    out = []
    with Session(engine) as session:
        session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        session.add(Site(id=site, agency_id=agency, name="Store"))
        session.add(AssetClass(id=radio, agency_id=agency, name="Radio", loan_days=1))
        session.flush()
        for r in range(first, first + readers):
            badge = f"E2800000000000000000{r:04X}"
            create_person(session, agency_id=agency, now=now,
                          data=PersonCreate(id=f"p-{r}", badges=[badge]))
            epcs = [f"E28011606000{r:04X}{a:08X}" for a in range(assets_per_reader)]
            for a, epc in enumerate(epcs):
                create_asset(session, agency_id=agency, now=now, data=AssetCreate(
                    id=f"A-{r}-{a}", class_id=radio, epc_hex=epc, home_site_id=site))
            for reader_id, role in ((f"desk-{r}", ReaderRole.ISSUE_DESK),
                                    (f"ret-{r}", ReaderRole.RETURN_DESK)):
                key = Ed25519PrivateKey.generate()
                register_reader(session, agency_id=agency, now=now, data=ReaderCreate(
                    id=reader_id, site_id=site, role=role,
                    public_key=raw_public_key(key.public_key()).hex()))
                topic = f"kitledger/v1/{agency}/{site}/{reader_id}/events"
                out.append(BenchReader(reader_id, topic, key, badge, epcs))
            # A transaction per desk, and statistics on PostgreSQL's new tables after the
            # first: seeding 2,000 assets took 13 s rather than 18.
            session.commit()
            if r == first and engine.dialect.name == "postgresql":
                session.connection().exec_driver_sql("ANALYZE")
                session.commit()
    return out


def _bench_worker(index: int, overrides: dict[str, Any], ready: Any, done: Any) -> None:
    """`api.serve.run_ingest`, plus a signal once subscribed: messages published before a
    worker's first subscription reach nobody, and a slow start under load lost a whole run."""
    settings = load_settings(**overrides)
    engine = make_engine(settings)
    worker = IngestWorker(settings, IngestPipeline(engine, settings),
                          client_id=f"{settings.mqtt_client_id}-bench-{index}")
    worker.start()
    if worker.verifiers is not None:
        worker.verifiers.start()  # as `serve` does
        while not worker.verifiers.ready():
            time.sleep(0.05)
    tune_collector()
    if worker.wait_subscribed(60):
        ready.release()
    done.wait()
    worker.stop()
    engine.dispose()


def start_ingest(count: int, overrides: dict[str, Any]) -> list[Any]:
    """Start `count` ingest processes and return once every one has subscribed."""
    context = multiprocessing.get_context("spawn")
    ready, done = context.Semaphore(0), context.Event()
    workers = [context.Process(target=_bench_worker, args=(i, overrides, ready, done))
               for i in range(count)]
    for worker in workers:
        worker.start()
    for _ in workers:
        if not ready.acquire(timeout=120):
            raise TimeoutError("an ingest worker did not subscribe within 120 s")
    time.sleep(0.5)  # the SUBACK is back; let the broker settle the shared group
    return [*workers, done]


def stop_ingest(workers: list[Any]) -> None:
    *processes, done = workers
    done.set()
    for worker in processes:
        worker.join(timeout=30)
    for worker in processes:
        if worker.is_alive():
            worker.terminate()


REFERENCE_VERIFY_US = 55.0
"""PyNaCl's Ed25519 verify on the reference machine behind the bars: 2 cores, the kind of
machine this project's CI runs on."""


def verify_microseconds(rounds: int = 7, calls: int = 2_000) -> float:
    """This machine's speed now: the median over `rounds` of one PyNaCl Ed25519 verify
    (200 bytes), in µs. The same code's figures moved by 2x between sessions on this kind of
    machine; this puts a run's figures next to the reference machine's."""
    key = SigningKey(bytes(32))
    message = bytes(200)
    signature = key.sign(message).signature
    verify = key.verify_key.verify
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            verify(message, signature)
        timings.append((time.perf_counter() - started) / calls * 1e6)
    return statistics.median(timings)


def machine_row(columns: int) -> str:
    """A table row: this machine's verify time against the reference's, before the run."""
    measured = verify_microseconds()
    cells = [f"machine: PyNaCl Ed25519 verify, {measured:.1f} µs "
             f"(reference machine {REFERENCE_VERIFY_US:.0f} µs)",
             f"{REFERENCE_VERIFY_US / measured:.2f}x the reference's speed"]
    return "| " + " | ".join(cells + [""] * (columns - len(cells))) + " |"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
