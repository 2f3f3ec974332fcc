"""Scale-out benchmark: `python bench/scale.py [--nodes 1,2,3] [--runs 3]` prints one table.

For each node count, `--nodes` real `kitledger serve` nodes (`tests.fixtures.nodes.ServeNode`:
one HTTP worker, one ingest worker with its verifier process, the elected singletons, anchoring
sign-only every second) run side by side on one fresh PostgreSQL database (127.0.0.1:5432) and
one Mosquitto on a free port. The store holds `--agencies` agencies of `--desks` desk pairs
each (`api_bench_setup.seed_store`, seeded once; each node count gets its own copy of that
database), so the per-agency log writer locks (`api.logstore`) can let nodes write different
agencies at once. Measured, per node count:

1. throughput: every issue desk sends a badge and `--assets` radios (check-outs), packed
   as an agent packs a backlog, over one `mosquitto_pub` per desk, all at once
   (`api_ingest._publish_streams`), until every custody change is committed; `--runs` runs,
   each on radios not read before; the median and the spread.
2. lock waits: a sampler reads `pg_locks` every `SAMPLE_INTERVAL_S` during the throughput runs:
   the share of samples in which a node's session waits for an advisory lock (the agency
   logs' writer locks, or the every-log and registry locks above them), the waits seen and
   how long each had waited when last seen (`pg_locks.waitstart`: a lower bound).
3. CPU per observation: user + system time of every process in each node's process group
   (`/proc/<pid>/stat`), of the PostgreSQL backends serving the nodes and of the broker,
   over the throughput runs, divided by the observations stored.
4. decision latency: the return desks read the radios just checked out, one message each,
   paced at `--rate` a second (`api_ingest.run_decision_latency`); p50 and p99.
5. cores busy while ingesting: the CPU seconds of 3. over the runs' wall-clock seconds.

Every node's database sessions carry its name (`PGAPPNAME`, as `api.roles.node_label`), which
is how samples and backends are put to nodes. All of it shares the machine's cores with the
load generator, the broker and PostgreSQL (and, on a shared machine, with other work: the
load average is printed), so node counts above the core count measure contention, not scale.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Final

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's test fixtures

from api_bench_setup import (  # type: ignore[import-not-found]  # sibling script module
    PG_ADMIN,
    BenchReader,
    database,
    machine_row,
    percentile,
    seed_store,
)
from api_ingest import (  # type: ignore[import-not-found]  # sibling script module
    _events,
    _publish_streams,
    _signed,
    _stat,
    _wait_events,
    run_decision_latency,
)
from reader_agent.config import MAX_ENVELOPES_PER_MESSAGE
from reader_agent.publisher import MAX_MESSAGE_BYTES

from api.config import load_settings
from api.db import make_engine
from api.logstore import GLOBAL_LOCK_CLASS, LOG_LOCK_CLASS
from api.roles import node_label
from ledger.core.packing import chunks, pack
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode
from tests.fixtures.polling import wait_for

SAMPLE_INTERVAL_S: Final = 0.02
"""How often the lock sampler reads `pg_locks`: a wait shorter than this is often missed,
so the share of samples (not the count of waits) is the figure to quote."""

STEADY_RATE: Final = 250
"""Decision-latency load, observations a second, one a message: below what one node takes on a
busy 2-core machine, so the figure is latency, not queueing (at 1,000/s there, p50 was 1.7-3.8 s
with 1-3 nodes: a queue). `--rate 1000` is the issue's steady load for a quieter machine."""

LOCK_NAMES: Final = {LOG_LOCK_CLASS: "agency log", GLOBAL_LOCK_CLASS: "every-log/registry"}

_WAITING = """
SELECT a.application_name, l.pid, l.classid, l.waitstart, clock_timestamp()
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND NOT l.granted AND a.datname = current_database()
"""

_BACKENDS = """
SELECT pid FROM pg_stat_activity
WHERE datname = current_database() AND application_name LIKE 'kitledger %'
"""


def _cpu_seconds(pids: set[int]) -> dict[int, float]:
    """User + system CPU seconds of each of `pids` still running (Linux /proc)."""
    found = {}
    for pid in pids:
        try:
            fields = _stat(pid)
        except (FileNotFoundError, ProcessLookupError):
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def _group(pgid: int) -> set[int]:
    """The processes of process group `pgid` (a node: `serve` leads its own session)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[2]) == pgid:
                    pids.add(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
    return pids


def _pid_running(command_part: str) -> int:
    """The process whose command line holds `command_part` (the broker, by its config)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if command_part.encode() in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except (FileNotFoundError, ProcessLookupError):
                continue
    raise LookupError(f"no process runs with {command_part!r}")


class CpuMeter:
    """CPU seconds spent between `start()` and `stop()`, per part: each node's process group,
    the nodes' PostgreSQL backends, the broker."""

    def __init__(self, nodes: list[ServeNode], dsn: str, broker_pid: int) -> None:
        self._nodes, self._dsn, self._broker_pid = nodes, dsn, broker_pid
        self._before: dict[str, dict[int, float]] = {}
        self.spent: dict[str, float] = {}

    def _parts(self) -> dict[str, dict[int, float]]:
        assert all(node.process is not None for node in self._nodes)
        parts = {node.name: _cpu_seconds(_group(node.process.pid))  # type: ignore[union-attr]
                 for node in self._nodes}
        with psycopg.connect(self._dsn) as conn:
            backends = {int(pid) for (pid,) in conn.execute(_BACKENDS)}
        parts["postgresql"] = _cpu_seconds(backends)
        parts["broker"] = _cpu_seconds({self._broker_pid})
        return parts

    def start(self) -> None:
        self._before = self._parts()

    def stop(self) -> None:
        after = self._parts()
        # A process that started meanwhile spent all its time in the window; one that ended
        # took its time with it (the nodes keep their processes, pooled backends stay).
        self.spent = {part: sum(seconds - self._before[part].get(pid, 0.0)
                                for pid, seconds in pids.items())
                      for part, pids in after.items()}


@dataclass
class LockWaits:
    """What the sampler saw: per sample the nodes waiting, per wait its longest sighting."""

    samples: int = 0
    waiting_samples: int = 0
    node_samples: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    waits: dict[tuple[int, datetime], tuple[str, float]] = field(default_factory=dict)


class LockSampler:
    """Reads `pg_locks` every `SAMPLE_INTERVAL_S` on a connection of its own, while on."""

    def __init__(self, dsn: str, labels: dict[str, str]) -> None:
        self._dsn, self._labels = dsn, labels
        self.seen = LockWaits()
        self._on = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @contextmanager
    def sampling(self) -> Iterator[None]:
        self._on.set()
        try:
            yield
        finally:
            self._on.clear()

    def close(self) -> None:
        self._done.set()
        self._thread.join(10)

    def _run(self) -> None:
        with psycopg.connect(self._dsn, autocommit=True) as conn:
            while not self._done.is_set():
                if self._on.wait(0.1):
                    self._sample(conn)
                    time.sleep(SAMPLE_INTERVAL_S)

    def _sample(self, conn: psycopg.Connection) -> None:
        seen = self.seen
        nodes = set()
        for label, pid, lock_class, waitstart, now in conn.execute(_WAITING):
            node = self._labels.get(label)
            if node is None:
                continue
            nodes.add(node)
            if waitstart is not None:
                kind = LOCK_NAMES.get(int(lock_class), "other")
                seen.waits[(pid, waitstart)] = (kind, (now - waitstart).total_seconds())
        seen.samples += 1
        seen.waiting_samples += bool(nodes)
        for node in nodes:
            seen.node_samples[node] += 1


@dataclass
class RunResult:
    observations: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.observations / self.seconds


@contextmanager
def cluster(count: int, url: str,
            workdir: Path) -> Iterator[tuple[list[ServeNode], MosquittoBroker]]:
    """A Mosquitto and `count` nodes on database `url`, each subscribed."""
    (workdir / "mosquitto").mkdir()
    broker = MosquittoBroker(workdir / "mosquitto")
    broker.config_path.write_text(broker.config_path.read_text() + "log_type subscribe\n")
    broker.start()
    nodes = []
    try:
        for n in range(count):
            name = f"node-{'abcdefgh'[n]}"
            # `ServeNode` copies the environment when built; libpq names the node's sessions.
            os.environ["PGAPPNAME"] = node_label(name)
            try:
                nodes.append(ServeNode(name, database_url=url, mqtt_url=broker.url,
                                       data_dir=workdir))
            finally:
                del os.environ["PGAPPNAME"]
        for node in nodes:
            node.start()
        for node in nodes:
            if not wait_for(lambda n=node: _subscribed(broker, n), timeout=120):  # type: ignore[misc]
                raise SystemExit(f"{node.name} did not subscribe within 120 s")
        time.sleep(1.0)  # the broker settles its shared group
        yield nodes, broker
    finally:
        for node in nodes:
            node.kill()
        broker.kill()


def _subscribed(broker: MosquittoBroker, node: ServeNode) -> bool:
    """The node's ingest worker subscribed to the shared group (a `log_type subscribe` line
    names its client id, which holds the node's id)."""
    return any(f"-{node.name}-" in line and "$share" in line
               for line in broker.log().splitlines())


def _issue_streams(readers: list[BenchReader], run: int, assets: int,
                   per_message: int) -> dict[str, list[bytes]]:
    """Run `run`'s messages per issue desk: a badge, then its next `assets` radios."""
    streams = {}
    for desk in (r for r in readers if r.reader_id.startswith("desk-")):
        first_seq, session = run * (assets + 1), f"s{run}"
        radios = desk.assets[run * assets:(run + 1) * assets]
        envelopes = [_signed(desk, first_seq, desk.badge, "badge", session)] + [
            _signed(desk, first_seq + 1 + i, epc, "read", session) for i, epc in enumerate(radios)]
        spans = chunks([len(e) for e in envelopes], per_message, MAX_MESSAGE_BYTES)
        streams[desk.topic] = [pack(envelopes[span.start:span.stop]) for span in spans]
    return streams


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextmanager
def copy_of(url: str) -> Iterator[str]:
    """A fresh database copied from `url`'s (PostgreSQL's `CREATE DATABASE ... TEMPLATE`):
    each node count starts from the same seeded store without seeding it again (12,000 assets
    take minutes on a busy 2-core machine)."""
    template = url.rsplit("/", 1)[1]
    name = f"kitledger_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"{url.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(url: str, args: argparse.Namespace) -> list[BenchReader]:
    """`--agencies` agencies of `--desks` desk pairs, each desk `--runs` x `--assets` radios."""
    engine = make_engine(load_settings(database_url=url))
    readers = []
    for a in range(args.agencies):
        readers += seed_store(engine, args.desks, args.runs * args.assets,
                              agency=f"agency-{a}", first=a * args.desks)
    engine.dispose()
    return list(readers)


def measure(count: int, template: str, readers: list[BenchReader],
            args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, copy_of(template) as url:
        engine = make_engine(load_settings(database_url=url))
        with cluster(count, url, Path(tmp)) as (nodes, broker):
            labels = {node_label(node.name): node.name for node in nodes}
            meter = CpuMeter(nodes, _dsn(url), _pid_running(str(broker.config_path)))
            sampler = LockSampler(_dsn(url), labels)
            runs: list[RunResult] = []
            spent: dict[str, float] = defaultdict(float)
            try:
                for run in range(args.runs):
                    streams = _issue_streams(readers, run, args.assets, args.pack)
                    target = _events(engine) + args.assets * len(streams)  # a check-out each
                    meter.start()
                    with sampler.sampling():
                        started = time.monotonic()
                        _publish_streams(broker.port, streams, Path(tmp))
                        finished = _wait_events(engine, target, timeout=300)
                    meter.stop()
                    for part, seconds in meter.spent.items():
                        spent[part] += seconds
                    runs.append(RunResult((args.assets + 1) * len(streams), finished - started))
                    print(f"  {count} node(s), run {run + 1}: {runs[-1].rate:,.0f} obs/s",
                          flush=True)
            finally:
                sampler.close()
            returning = [replace(r, assets=r.assets[:args.assets]) for r in readers]
            latencies = run_decision_latency(url, broker.port, returning, args.rate, Path(tmp))
        engine.dispose()
    return _rows(count, nodes, runs, spent, sampler.seen, latencies, args)


BASELINE: dict[str, float] = {}
"""The one-node median throughput, for the ratios of the rows after it."""


def _rows(count: int, nodes: list[ServeNode], runs: list[RunResult], spent: dict[str, float],
          seen: LockWaits, latencies: list[float], args: argparse.Namespace) -> list[str]:
    rates = [r.rate for r in runs]
    median = statistics.median(rates)
    BASELINE.setdefault("rate", median)
    stored = sum(r.observations for r in runs)
    share = seen.waiting_samples / max(1, seen.samples)
    per_node = ", ".join(f"{n.name} {seen.node_samples.get(n.name, 0) / max(1, seen.samples):.0%}"
                         for n in nodes)
    lengths = [length for _, length in seen.waits.values()]
    kinds: dict[str, int] = defaultdict(int)
    for kind, _ in seen.waits.values():
        kinds[kind] += 1
    waits = (f"{len(lengths)} seen ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}); "
             f"waited ≥ median {statistics.median(lengths) * 1000:.0f} ms, longest "
             f"{max(lengths) * 1000:.0f} ms" if lengths else "none seen")
    node_us = {n.name: spent.get(n.name, 0.0) / stored * 1e6 for n in nodes}
    total_us = sum(node_us.values())
    busy = {part: seconds / sum(r.seconds for r in runs) for part, seconds in spent.items()}
    return [
        f"| {count} | {median:,.0f} obs/s (runs {', '.join(f'{r:,.0f}' for r in rates)}) | "
        f"{median / BASELINE['rate']:.2f}x | {share:.0%} of {seen.samples} samples "
        f"({per_node}); {waits} | "
        f"{total_us:,.0f} µs ({', '.join(f'{k} {v:,.0f}' for k, v in node_us.items())}) | "
        f"{spent.get('postgresql', 0.0) / stored * 1e6:,.0f} µs | "
        f"{spent.get('broker', 0.0) / stored * 1e6:,.0f} µs | "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms ({len(latencies)} at {args.rate}/s) | "
        f"nodes {sum(busy.get(n.name, 0.0) for n in nodes):.2f}, PostgreSQL "
        f"{busy.get('postgresql', 0.0):.2f}, broker {busy.get('broker', 0.0):.2f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1,2,3", help="node counts, run in turn")
    parser.add_argument("--agencies", type=int, default=4)
    parser.add_argument("--desks", type=int, default=4, help="desk pairs per agency")
    parser.add_argument("--assets", type=int, default=200, help="radios per desk per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pack", type=int, default=MAX_ENVELOPES_PER_MESSAGE,
                        help="envelopes per message at most, as the agent packs a backlog")
    parser.add_argument("--rate", type=int, default=STEADY_RATE, help="decision-latency obs/s")
    args = parser.parse_args()
    counts = [int(n) for n in args.nodes.split(",")]
    print(f"{os.cpu_count()} cores, shared with other work (load average "
          f"{os.getloadavg()[0]:.2f} before); {args.agencies} agencies x {args.desks} desk "
          f"pairs, {args.assets} check-outs per desk per run, {args.runs} runs per node count",
          flush=True)
    rows = [
        "| nodes | throughput, median | vs 1 node | advisory-lock waits (share of samples, "
        "per node; waits seen) | node CPU per obs (per node) | PostgreSQL CPU per obs | "
        "broker CPU per obs | decision latency | cores busy while ingesting |",
        "|---:|---|---:|---|---|---:|---:|---|---|",
        machine_row(9),
    ]
    with tempfile.TemporaryDirectory() as tmp, database("postgresql", Path(tmp)) as template:
        readers = seed(template, args)
        for count in counts:
            rows += measure(count, template, readers, args)
    print("\n".join(rows))
    print(f"\nload average after: {os.getloadavg()[0]:.2f}; every figure shares "
          f"{os.cpu_count()} cores with the load generator, the broker and PostgreSQL")


if __name__ == "__main__":
    main()
