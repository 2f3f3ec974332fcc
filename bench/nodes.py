"""Several nodes benchmark: `python bench/nodes.py` prints two tables.

1. Rolling restart under steady load: two `kitledger serve` nodes (one ingest worker each) on
   a fresh PostgreSQL database (127.0.0.1:5432) and a Mosquitto on a free port; `--readers`
   desk readers each publish a read every `--interval-ms` and time their answers. Node A is
   stopped (SIGTERM) and started again, then node B. Per reader: the median wait for an
   answer, the longest (the stall), reads never answered and answers that came twice; and the
   decisions each node re-sent when it started. Bar: no reader stalls more than a second.
2. Role take-over: the node holding the anchorer's role is killed (SIGKILL to all its
   processes); the time until the other node holds every role, per role.

Wall-clock figures depend on the machine's load; the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's test fixtures

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode, SteadyLoad, desk_readers
from tests.fixtures.polling import wait_for
from tests.fixtures.postgres import ADMIN_DSN, HOST, PORT, USER

STALL_BAR_S = 1.0
ROLES = ("anchorer", "webhooks", "overdue-scan", "held-read-scan")


def _broker(data: Path) -> MosquittoBroker:
    broker = MosquittoBroker(data)
    broker.config_path.write_text(broker.config_path.read_text() + "log_type all\n")
    broker.start()
    return broker


def _subscribed(broker: MosquittoBroker, node: ServeNode, after: int) -> bool:
    """The node's ingest worker subscribed after byte `after` of the broker's log."""
    return f"SUBSCRIBE from {node.client_id}" in broker.log()[after:]


def _restart(node: ServeNode, broker: MosquittoBroker) -> None:
    status = node.terminate()
    if status != 0:
        raise SystemExit(f"{node.name} exited with {status}")
    mark = len(broker.log())
    node.start()
    if not wait_for(lambda: _subscribed(broker, node, mark), timeout=60):
        raise SystemExit(f"{node.name} did not subscribe again")


def _resent(node: ServeNode) -> int:
    return sum(int(n) for n in re.findall(r"re-sent (\d+) decisions", node.log()))


def rolling_restart(nodes: list[ServeNode], broker: MosquittoBroker, load: SteadyLoad,
                    settle_s: float) -> None:
    load.start()
    time.sleep(settle_s)
    for node in nodes:
        _restart(node, broker)
        time.sleep(settle_s)
    load.stop()
    wait_for(lambda: not load.unanswered(), timeout=30)
    unanswered, twice = load.unanswered(), load.answered_twice()
    print("\n| reader | reads | median wait ms | longest wait ms | unanswered | answered twice |")
    print("|---|---:|---:|---:|---:|---:|")
    longest = []
    for name, traffic in load.traffic.items():
        waits = [min(traffic.answered[s]) - at for s, at in traffic.sent.items()
                 if s in traffic.answered]
        longest.append(traffic.longest_wait())
        print(f"| {name} | {len(traffic.sent)} | {statistics.median(waits) * 1000:.0f} | "
              f"{longest[-1] * 1000:.0f} | {len(unanswered.get(name, []))} | "
              f"{len(twice.get(name, []))} |")
    print(f"\nlongest stall of any reader: {max(longest) * 1000:.0f} ms (bar "
          f"{STALL_BAR_S * 1000:.0f} ms): {'met' if max(longest) <= STALL_BAR_S else 'MISSED'}")
    print("decisions re-sent at start: " + ", ".join(f"{n.name} {_resent(n)}" for n in nodes))


def take_over(nodes: list[ServeNode]) -> None:
    def holders() -> dict[str, str]:
        found = {}
        for node in nodes:
            try:
                found.update({role: node.name for role in node.roles()})
            except OSError:
                continue
        return found

    wait_for(lambda: set(holders()) >= set(ROLES), timeout=60)
    victim_name = holders()["anchorer"]
    victim = next(n for n in nodes if n.name == victim_name)
    survivor = next(n for n in nodes if n is not victim)
    before = survivor.roles()
    killed = time.monotonic()
    victim.kill()
    taken: dict[str, float] = {}
    while len(taken) < len(ROLES) and time.monotonic() - killed < 60:
        for role in survivor.roles() - set(taken):
            taken[role] = time.monotonic() - killed
        time.sleep(0.05)
    print(f"\nkilled {victim.name} (SIGKILL, every process); {survivor.name} held "
          f"{sorted(before) or 'nothing'} before\n")
    print("| role | taken over after s |")
    print("|---|---:|")
    for role in ROLES:
        shown = "already held" if role in before else (
            f"{taken[role]:.2f}" if role in taken else "NOT within 60 s")
        print(f"| {role} | {shown} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--interval-ms", type=int, default=100)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--skip-takeover", action="store_true")
    args = parser.parse_args()
    name = f"kitledger_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{name}"
    nodes: list[ServeNode] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(load_settings(database_url=url))
            upgrade(engine)
            (Path(tmp) / "mosquitto").mkdir()
            broker = _broker(Path(tmp) / "mosquitto")
            nodes = [ServeNode(n, database_url=url, mqtt_url=broker.url, data_dir=Path(tmp))
                     for n in ("node-a", "node-b")]
            for node in nodes:
                node.start()
            for node in nodes:
                wait_for(lambda n=node: _subscribed(broker, n, 0), timeout=60)  # type: ignore[misc]
            print(f"load average before: {os.getloadavg()[0]:.2f}; {args.readers} readers, "
                  f"a read each every {args.interval_ms} ms")
            load = SteadyLoad(desk_readers(engine, args.readers), broker.port,
                              args.interval_ms / 1000)
            rolling_restart(nodes, broker, load, args.settle_s)
            load.close()
            if not args.skip_takeover:
                take_over(nodes)
            print(f"\nload average after: {os.getloadavg()[0]:.2f}")
            for node in nodes:
                node.kill()
            broker.kill()
            engine.dispose()
    finally:
        for node in nodes:
            node.kill()
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
