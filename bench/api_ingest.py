"""API ingest benchmark: `python bench/api_ingest.py [--desks 20] [--assets 500] [--workers 1,2]`.

Prints one table: per database (SQLite file, then a fresh PostgreSQL database) and per worker
count (one, then two ingest processes, side by side), after a row of this machine's speed
(`api_bench_setup.machine_row`: one Ed25519 verify against the reference machine's):

1. ingest: signed observations published at QoS 1 as fast as possible to a real Mosquitto,
   through `--workers` ingest processes (MQTT v5 shared subscription), until every custody
   change is committed. The stream is a badge then `--assets` radios at each issue desk, sent
   by one `mosquitto_pub` per desk (C, from mosquitto-clients) all at once, as the desks'
   agents would: about 15 µs of CPU a message, where a paho publisher took 100-200 µs of the
   2 cores that the agents it stands in for, on their own Raspberry Pis, would not take. Each
   desk's envelopes go up to `--pack` (50) to a message, as an agent packs a tray's reads
   (`--pack 1`: one message each, as the agent sends a lone read). Nearly every
   observation is a check-out: verify + idempotency + custody rules + hash chain + Merkle log
   append + decision. Bar: >= 5,000 observations/s. A second row gives the CPU the ingest
   workers (each stores one batch while its verifier process checks the next), their
   verifier processes and the publishers spent per observation meanwhile: on 2 cores shared
   by workers, verifiers, publishers and broker, that is what bounds the rate.
2. decisions: the same radios read at the return desks, one message each, paced at a steady
   1,000 observations/s over one `mosquitto_pub` per desk; latency from handing a read to its
   desk's publisher to `mosquitto_sub` receiving its decision (a check-in). Bar: p99 <= 250 ms.

The store's agency has no webhook subscription, so custody changes write no webhook events
(`api.webhook_outbox`); `bench/api_ingest_instructions.py --webhooks` counts what one adds.

The ceiling to compare with: a bare mosquitto -> verify -> SQLite -> Merkle pipeline, with none
of the API's rules, reaches about 5,200 events/s with one worker and 6,900 with two on the
reference machine (2 cores, publisher on the same cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from api_bench_setup import (  # type: ignore[import-not-found]  # sibling script module
    BenchReader,
    broker,
    database,
    machine_row,
    percentile,
    seed_store,
    start_ingest,
    stop_ingest,
)
from reader_agent.config import MAX_ENVELOPES_PER_MESSAGE
from reader_agent.decisions import parse_decisions
from reader_agent.publisher import MAX_MESSAGE_BYTES
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.config import load_settings
from api.db import make_engine
from api.models import CustodyEventRow
from ledger.core.envelope import sign_envelope
from ledger.core.packing import chunks, pack
from ledger.core.records import Observation, format_time

MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"

PUBLISH_WINDOW = 100
"""QoS 1 publishes awaiting PUBACK per client, as a reader agent's bounded window."""

STEADY_RATE = 1_000
"""The issue's steady load; `--rate` measures below saturation too."""


def _signed(reader: BenchReader, seq: int, epc: str, kind: str, session: str | None) -> bytes:
    obs = Observation(device=reader.reader_id, seq=seq, time=format_time(datetime.now(UTC)),
                      kind=kind, epc=epc, antenna=1, rssi=-50, session=session)
    return sign_envelope(obs.to_record(), reader.key).to_bytes()


def _events(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(CustodyEventRow)).one())


def _wait_events(engine: Engine, target: int, timeout: float) -> float:
    """When `target` custody events are committed, polled every 50 ms on one pooled
    connection (a new PostgreSQL connection per poll cost the shared cores a backend)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _events(engine) >= target:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"only {_events(engine)} of {target} custody events committed")


def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (Linux /proc)."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pids: list[int]) -> list[int]:
    """The running child processes of `pids` (an ingest worker's verifier processes)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) in pids:
                    found.append(int(entry.name))
            except (FileNotFoundError, ProcessLookupError):
                continue
    return found


def _publish_streams(port: int, streams: dict[str, list[bytes]], workdir: Path) -> float:
    """Publish each topic's payloads in order at QoS 1, all topics at once, with one
    `mosquitto_pub -l` (one message per line) per topic; return its CPU seconds."""
    commands = []
    for n, (topic, payloads) in enumerate(streams.items()):
        if any(b"\n" in payload for payload in payloads):
            raise ValueError("an envelope holds a newline: mosquitto_pub -l would split it")
        lines = workdir / f"stream-{n}.lines"
        lines.write_bytes(b"".join(payload + b"\n" for payload in payloads))
        commands.append(([MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-V", "5",
                          "-q", "1", "-M", str(PUBLISH_WINDOW), "-i", f"bench-desk-{n}",
                          "-t", topic, "-l"], lines))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    running = []
    for command, lines in commands:
        with lines.open("rb") as stdin:
            running.append(subprocess.Popen(command, stdin=stdin))
    for process in running:
        if process.wait(timeout=300) != 0:
            raise RuntimeError(f"mosquitto_pub exited with {process.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def run_ingest_throughput(
    url: str, port: int, readers: list[BenchReader], workers: list[int], workdir: Path,
    per_message: int,
) -> tuple[int, float, float, float, float]:
    """Messages, seconds, and the CPU seconds of the ingest workers, of their verifier
    processes and of the publishers over the run: on 2 shared cores, where the time goes."""
    desks = [r for r in readers if r.reader_id.startswith("desk-")]
    streams = {}
    for desk in desks:
        envelopes = [_signed(desk, 0, desk.badge, "badge", "s1")] + [
            _signed(desk, i + 1, epc, "read", "s1") for i, epc in enumerate(desk.assets)]
        spans = chunks([len(e) for e in envelopes], per_message, MAX_MESSAGE_BYTES)
        streams[desk.topic] = [pack(envelopes[span.start:span.stop]) for span in spans]
    engine = make_engine(load_settings(database_url=url))
    try:
        target = _events(engine) + sum(len(d.assets) for d in desks)
        verifiers = _children(workers)
        cpu_before = [sum(_cpu_seconds(pid) for pid in pids) for pids in (workers, verifiers)]
        started = time.monotonic()
        publishing = _publish_streams(port, streams, workdir)
        finished = _wait_events(engine, target, timeout=300)
    finally:
        engine.dispose()
    cpu = [sum(_cpu_seconds(pid) for pid in pids) - before
           for pids, before in zip((workers, verifiers), cpu_before, strict=True)]
    return (sum(len(d.assets) + 1 for d in desks), finished - started, cpu[0], cpu[1],
            publishing)


MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"


def _received(path: Path, sent: dict[tuple[str, int], float]) -> list[float]:
    """Latency of each decision in `mosquitto_sub -F '%U %t %x'` output at `path` (arrival
    time, topic, payload in hex: a signed answer's header ends in a newline) for an observation
    in `sent` (reader, seq -> sent)."""
    latencies = []
    data = path.read_bytes()
    for line in data[:data.rfind(b"\n") + 1].splitlines():  # whole lines: it may be writing
        stamp, topic, payload = line.split(b" ", 2)
        reader_id = topic.decode().split("/")[4]
        for decision in parse_decisions(bytes.fromhex(payload.decode())):  # as an agent does
            if (reader_id, decision.seq) in sent:
                latencies.append(float(stamp) - sent[(reader_id, decision.seq)])
    return latencies


def _publish_paced(
    payloads: list[tuple[BenchReader, int, bytes]], agents: dict[str, subprocess.Popen[bytes]],
    rate: int,
) -> dict[tuple[str, int], float]:
    """Hand each payload to its desk's `mosquitto_pub` at `rate` per second, then close their
    input; when each was handed over, by (reader, seq), in wall-clock time (as %U is)."""
    sent: dict[tuple[str, int], float] = {}
    start = time.monotonic()
    for n, (reader, seq, payload) in enumerate(payloads):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stdin = agents[reader.reader_id].stdin
        assert stdin is not None
        sent[(reader.reader_id, seq)] = time.time()
        stdin.write(payload + b"\n")
        stdin.flush()
    for agent in agents.values():
        assert agent.stdin is not None
        agent.stdin.close()
    return sent


def run_decision_latency(
    url: str, port: int, readers: list[BenchReader], rate: int, workdir: Path
) -> list[float]:
    """Each return desk's reads, one message each, paced at `rate` over all desks; the time
    from handing a read to its desk's `mosquitto_pub` to `mosquitto_sub` receiving its
    decision. C clients on both ends: a paho publisher and listener took about a fifth of a
    core at 1,000 messages/s, on the 2 cores the workers and the broker share."""
    returns = [r for r in readers if r.reader_id.startswith("ret-")]
    plan = [(r, i, epc) for r in returns for i, epc in enumerate(r.assets)]
    plan.sort(key=lambda item: item[1])  # interleave the desks, as a busy store would
    payloads = [(r, i, _signed(r, i, epc, "read", None)) for r, i, epc in plan]
    received = workdir / "decisions.txt"
    with received.open("wb") as out:
        listener = subprocess.Popen(
            [MOSQUITTO_SUB, "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", "1",
             "-i", "bench-agent-listener", "-t", "kitledger/v1/+/+/+/decisions",
             "-F", "%U %t %x"], stdout=out)
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:  # a failure here must not leave the C clients holding the caller's pipes open
        time.sleep(0.5)  # subscribed
        agents.update({r.reader_id: subprocess.Popen(
            [MOSQUITTO_PUB, "-h", "127.0.0.1", "-p", str(port), "-V", "5", "-q", "1",
             "-M", str(PUBLISH_WINDOW), "-i", f"bench-{r.reader_id}", "-t", r.topic, "-l"],
            stdin=subprocess.PIPE) for r in returns})
        time.sleep(0.5)  # connected
        sent = _publish_paced(payloads, agents, rate)
        deadline = time.monotonic() + 60
        latencies = _received(received, sent)
        while len(latencies) < len(payloads) and time.monotonic() < deadline:
            time.sleep(0.5)
            latencies = _received(received, sent)
    finally:
        listener.terminate()
        listener.wait()
        for agent in agents.values():
            if agent.stdin is not None and not agent.stdin.closed:
                agent.stdin.close()
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
    latencies = _received(received, sent)
    if len(latencies) < len(payloads):
        raise TimeoutError(f"only {len(latencies)} of {len(payloads)} decisions arrived")
    return latencies


def bench(kind: str, workers: int, args: argparse.Namespace) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp, broker(Path(tmp)) as port, \
            database(kind, Path(tmp)) as url:
        engine = make_engine(load_settings(database_url=url))
        readers = seed_store(engine, args.desks, args.assets)
        engine.dispose()
        processes = start_ingest(workers, {
            "database_url": url, "mqtt_url": f"mqtt://127.0.0.1:{port}",
            "ingest_batch_size": args.batch, "ingest_batch_wait_ms": 10,
            "ingest_verify_processes": args.verify_processes,
        })
        try:
            count, seconds, cpu, verifying, publishing = run_ingest_throughput(
                url, port, readers, [p.pid for p in processes[:-1]], Path(tmp), args.pack)
            latencies = run_decision_latency(url, port, readers, args.rate, Path(tmp))
        finally:
            stop_ingest(processes)
    rate = count / seconds
    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    return [
        f"| {kind} | ingest (check-outs), {workers} worker(s) x {args.verify_processes} "
        f"verifier(s), {args.pack} per message | "
        f"{count} obs | "
        f"{rate:,.0f} obs/s | bar 5,000 | {rate / 5000:.2f}x |",
        f"| {kind} | CPU per observation during ingest, {workers} worker(s) | {count} obs | "
        f"workers {cpu / count * 1e6:,.0f} µs + their verifier processes "
        f"{verifying / count * 1e6:,.0f} µs, publishers {publishing / count * 1e6:,.0f} µs "
        f"| | |",
        f"| {kind} | decision latency at {args.rate}/s (check-ins), {workers} worker(s) | "
        f"{len(latencies)} obs | "
        f"p50 {p50:.1f} ms, p99 {p99:.1f} ms | bar p99 250 ms | {250 / p99:.2f}x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--desks", type=int, default=20)
    parser.add_argument("--assets", type=int, default=500, help="radios per desk")
    parser.add_argument("--workers", default="1,2",
                        help="ingest processes; a comma list runs each side by side")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--pack", type=int, default=MAX_ENVELOPES_PER_MESSAGE,
                        help="envelopes per message at most, as the agent packs a backlog")
    parser.add_argument("--rate", type=int, default=STEADY_RATE, help="steady obs/s")
    parser.add_argument("--verify-processes", type=int, default=1,
                        help="verifier processes per worker (0: verify in the worker)")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    rows = ["| database | measure | size | result | bar | ratio |", "|---|---|---|---|---|---|",
            machine_row(6)]
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        for workers in (int(w) for w in args.workers.split(",")):
            rows += bench(kind, workers, args)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
