"""Ingest fail-over benchmark: `python bench/failover.py [--runs 5] [--rate 200]`.

Two ingest nodes (processes, each its own node id, on one SQLite file) share the MQTT v5
subscription of one Mosquitto; a real reader agent (`ReaderAgent`, in this process) streams
`--rate` observations a second. Mid-stream one node is killed with SIGKILL. Measured: from the
kill until every observation the agent had numbered by then is stored (by the survivor). The
killed node's share in flight is lost at the broker, and the broker keeps routing its share to
its session until that expires (`api.ingest.transport.SESSION_EXPIRY_S`); the agent re-sends
what the API has not acknowledged (the API asks for old gaps after
`api.ingest.acks.MISSING_AFTER_S`, the agent re-sends after `ack_timeout_s`, 5 s). Target:
under 10 s. Prints each run and the median.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from reader_agent.agent import ReaderAgent
from reader_agent.config import parse_config
from reader_agent.reads import TagRead
from sqlalchemy import func, text
from sqlmodel import Session, select

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, IngestedObservation, Reader, Site
from api.models.registry import ReaderRole
from ledger.core.envelope import key_id, raw_public_key

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

NODE = """\
import sys, time
from api.config import load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
s = load_settings(mqtt_url=sys.argv[1], database_url=sys.argv[2], ingest_batch_wait_ms=5,
                  node_id=sys.argv[3], ingest_verify_processes=0)
w = IngestWorker(s, IngestPipeline(make_engine(s), s))
w.start()
w.wait_subscribed(10)
print("subscribed", flush=True)
time.sleep(3600)
"""

AGENT = """\
[reader]
id = "desk-1"
agency = "bench"
site = "store"
role = "issue_desk"
protocol = "replay"
port = "none"
[identity]
key_file = "reader.key"
[outbox]
path = "outbox.db"
[mqtt]
port = {port}
reconnect_max_s = 1
[pipeline]
min_reads = 1
depart_after_s = 600
[antennas.1]
zone = "desk"
"""


class Paced:
    """Distinct tags at `rate` reads a second, until closed."""

    def __init__(self, rate: float) -> None:
        self.rate, self.connected, self.last_error, self.closed = rate, True, None, False

    def reads(self) -> Iterator[TagRead]:
        n = 0
        while not self.closed:
            time.sleep(1 / self.rate)
            yield TagRead(bytes.fromhex("3034") + n.to_bytes(10, "big"), 1, -40, time.monotonic())
            n += 1

    def close(self) -> None:
        self.closed = True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stored_below(database_url: str, seq: int) -> int:
    engine = make_engine(load_settings(database_url=database_url))
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(IngestedObservation)
                             .where(IngestedObservation.seq < seq)).one()
    engine.dispose()
    return int(count)


def one_run(directory: Path, rate: float) -> float:
    port = free_port()
    (directory / "mosquitto.conf").write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 1000000\nmax_inflight_messages 1000\n")
    broker = subprocess.Popen([MOSQUITTO, "-c", str(directory / "mosquitto.conf")],
                              stderr=subprocess.DEVNULL)
    database_url = f"sqlite:///{directory / 'api.db'}"
    engine = make_engine(load_settings(database_url=database_url))
    upgrade(engine)
    key = Ed25519PrivateKey.generate()
    with Session(engine) as session:
        session.add(Agency(id="bench", name="Bench"))
        session.flush()
        session.add(Site(id="store", agency_id="bench", name="store"))
        session.flush()
        session.add(Reader(id="desk-1", agency_id="bench", site_id="store",
                           role=ReaderRole.ISSUE_DESK, zones={"1": "desk"},
                           public_key=raw_public_key(key.public_key()).hex(),
                           key_id=key_id(key.public_key())))
        session.commit()
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    engine.dispose()
    (directory / "reader.key").write_bytes(
        key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    (directory / "reader.key").chmod(0o600)
    time.sleep(0.3)
    url = f"mqtt://127.0.0.1:{port}"
    nodes = [subprocess.Popen([sys.executable, "-c", NODE, url, database_url, name],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
             for name in ("node-a", "node-b")]
    agent: ReaderAgent | None = None
    thread: threading.Thread | None = None
    try:
        for node in nodes:
            assert node.stdout is not None and node.stdout.readline() == b"subscribed\n"
        config = parse_config(AGENT.format(port=port), directory)
        agent = ReaderAgent(replace(config, mqtt=replace(config.mqtt, health_interval_s=3600)),
                            source=Paced(rate))  # type: ignore[arg-type]
        thread = threading.Thread(target=agent.run, daemon=True)
        thread.start()
        time.sleep(3.0)
        os.kill(nodes[0].pid, signal.SIGKILL)
        killed = time.monotonic()
        numbered = agent.outbox.next_seq
        while stored_below(database_url, numbered) < numbered:
            if time.monotonic() - killed > 120:
                raise RuntimeError(f"not stored after 120 s: {agent.health(0)}")
            time.sleep(0.1)
        return time.monotonic() - killed
    finally:
        if agent is not None and thread is not None:
            agent.stopping.set()
            thread.join(15)
        for process in (*nodes, broker):
            if process.poll() is None:
                process.kill()
                process.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rate", type=float, default=200.0, help="reads a second")
    args = parser.parse_args(argv)
    seconds: list[float] = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as directory:
            seconds.append(one_run(Path(directory), args.rate))
        print(f"run {run + 1}: every observation stored {seconds[-1]:.1f} s after the kill",
              flush=True)
    median = statistics.median(seconds)
    print(f"fail-over, kill -9 of one of two ingest nodes: median {median:.1f} s"
          f" (min {min(seconds):.1f}, max {max(seconds):.1f}, {args.runs} runs; target < 10 s)")


if __name__ == "__main__":
    main(sys.argv[1:])


