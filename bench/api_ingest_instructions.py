"""Ingest CPU in instructions: `python bench/api_ingest_instructions.py [--db D] [--webhooks]`.

This machine's speed swings by half from one minute to the next, so a change worth 10% is
lost in `api_ingest.py`'s timings unless it is run many times. Instructions do not swing:
here valgrind's callgrind counts, per observation, the instructions of

1. verifying (`verify_messages`, in an ingest worker's verifier process), and
2. storing (`IngestPipeline.process` with the verdicts: the worker's transaction, custody
   rules, hash chains, Merkle log and decisions; on SQLite, the database's work too),

on `--desks` issue desks of a badge and `--assets` radios each (one check-out per radio),
in batches of `--batch`, after a first batch that warms caches, with Python's garbage
collector off (its passes fall wherever allocation counts happen to cross a threshold, ±3%).
Run it on two checkouts (`PYTHONPATH=<other checkout> python bench/...`) for a side-by-side
figure that repeats to within 0.2%. `--db postgresql` (default sqlite) counts only the
worker's side, psycopg included: the server's work is in its own processes, for
`pg_stat_statements` to measure.
`--webhooks` gives the agency a webhook subscription, so each custody change also writes
its webhook event. Needs valgrind (Debian package `valgrind`).
"""

from __future__ import annotations

import argparse
import gc
import os
import pickle
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from api_bench_setup import (  # type: ignore[import-not-found]  # sibling script module
    PG_ADMIN,
    database,
    seed_store,
)
from sqlalchemy import make_url
from sqlmodel import Session

from api.config import load_settings
from api.db import make_engine
from api.ingest.checks import InboundMessage
from api.ingest.pipeline import IngestPipeline
from api.models.webhooks import WebhookSubscription
from api.webhook_outbox import EVENT_TYPES
from ledger.core.envelope import sign_envelope
from ledger.core.records import Observation, format_time


def _seed(url: str, workdir: Path, desks: int, assets: int, webhooks: bool) -> None:
    engine = make_engine(load_settings(database_url=url))
    readers = seed_store(engine, desks, assets)
    if webhooks:
        with Session(engine) as session:
            session.add(WebhookSubscription(
                id="bench-hook", agency_id="north", url="http://127.0.0.1:9/hook",
                events=list(EVENT_TYPES), sealed_secret=os.urandom(60)))
            session.commit()
    engine.dispose()
    messages = []
    for desk in (r for r in readers if r.reader_id.startswith("desk-")):
        for seq, (epc, kind) in enumerate([(desk.badge, "badge")]
                                          + [(epc, "read") for epc in desk.assets]):
            observation = Observation(
                device=desk.reader_id, seq=seq, time=format_time(datetime.now(UTC)),
                kind=kind, epc=epc, antenna=1, rssi=-50, session="s1")
            messages.append(InboundMessage(
                desk.topic, sign_envelope(observation.to_record(), desk.key).to_bytes()))
    (workdir / "messages.pickle").write_bytes(pickle.dumps(messages))


def _callgrind(on: bool) -> None:
    subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                   check=True, capture_output=True)


@contextmanager
def _copy(url: str, workdir: Path, part: str) -> Iterator[str]:
    """The URL of a copy of the seeded database at `url`, for `part`'s run to write to."""
    if url.startswith("sqlite"):
        copy = workdir / f"{part}.db"
        # SQLite's backup, not a file copy: pages still in the write-ahead log come too.
        with closing(sqlite3.connect(workdir / "bench.db")) as source, \
                closing(sqlite3.connect(copy)) as target:
            source.backup(target)
        yield f"sqlite:///{copy}"
        return
    seeded = make_url(url)
    name = f"{seeded.database}_{part}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{seeded.database}"')
    try:
        yield seeded.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _measure(url: str, workdir: Path, part: str, batch_size: int) -> None:
    """In the process valgrind runs: count `part` ("verify" or "store") of every batch but
    the first, and print how many observations that was."""
    messages = pickle.loads((workdir / "messages.pickle").read_bytes())  # ours
    settings = load_settings(database_url=url)
    pipeline = IngestPipeline(make_engine(settings), settings)
    now = pipeline.now()
    batches = [messages[i:i + batch_size] for i in range(0, len(messages), batch_size)]
    pipeline.process(batches[0], now=now)  # warm: caches, compiled statements
    gc.collect()
    gc.disable()
    if part == "verify":
        _callgrind(True)
        verdicts = [pipeline.verify(batch, now) for batch in batches[1:]]
        _callgrind(False)
    else:
        verdicts = [pipeline.verify(batch, now) for batch in batches[1:]]
        _callgrind(True)
        for batch, outcomes in zip(batches[1:], verdicts, strict=True):
            pipeline.process(batch, outcomes=outcomes, now=now)
        _callgrind(False)
    accepted = sum(type(o).__name__ == "Verified" for outcomes in verdicts for o in outcomes)
    print(f"observations {accepted}")


def _count(url: str, workdir: Path, part: str, batch_size: int) -> tuple[int, int]:
    """Instructions and observations of `part`, from a callgrind run of this script on a
    copy of the seeded database."""
    with _copy(url, workdir, part) as copy:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no",
             "--callgrind-out-file=/dev/null", sys.executable, __file__, "--measure", part,
             "--url", copy, "--workdir", str(workdir), "--batch", str(batch_size)],
            capture_output=True, text=True, check=True)
    instructions = re.search(r"Collected : (\d+)", done.stderr)
    observations = re.search(r"observations (\d+)", done.stdout)
    if instructions is None or observations is None:
        raise RuntimeError(f"no count in callgrind's output: {done.stderr[-500:]}")
    return int(instructions.group(1)), int(observations.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desks", type=int, default=6)
    parser.add_argument("--assets", type=int, default=250, help="radios per desk")
    parser.add_argument("--batch", type=int, default=500,
                        help="envelopes per batch, as ingest_batch_size")
    parser.add_argument("--webhooks", action="store_true",
                        help="the agency subscribes to every webhook event")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--measure", choices=["verify", "store"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        _measure(args.url, args.workdir, args.measure, args.batch)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    if args.desks * (args.assets + 1) <= args.batch:
        raise SystemExit("more than one batch is needed: the first only warms up")
    with tempfile.TemporaryDirectory() as tmp, database(args.db, Path(tmp)) as url:
        workdir = Path(tmp)
        _seed(url, workdir, args.desks, args.assets, args.webhooks)
        print(f"| part ({args.db}) | observations | instructions per observation |")
        print("|---|---|---|")
        for part in ("verify", "store"):
            instructions, observations = _count(url, workdir, part, args.batch)
            print(f"| {part} | {observations} | {instructions / observations:,.0f} |")


if __name__ == "__main__":
    main()
