"""The whole system as separate processes, for the fault suite to break: a fresh PostgreSQL
database, Mosquitto, anvil, one or more `kitledger serve`, and per desk reader a simulator and
`kitledger-agent`, wired as `kitledger up` wires them (its `demo.stack`, `demo.up` and
`demo.seed` pieces), with two loopback proxies in the links a fault cuts or freezes: every
`serve` reaches the database through `db_link`, every agent reaches the broker through
`uplink` (the reader site's network).

`play()` runs the known stream (`tests.faults.stream`) with a fault function acting on the
stack in the test's thread, then lets everything drain and stops it; `tests.faults.checks`
then judges what the database and the chain hold.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eth_account import Account
from sqlalchemy import Engine, text

from api.config import load_settings
from api.db import make_engine
from api.models.anchoring import SERVICE_SCOPE
from demo.seed import DemoReader
from demo.stack import Stack, wait_until
from demo.up import _api_ready, _prepare_database
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import connect
from tests.faults.disks import OutboxMounts, mount_outboxes, unmount_outboxes
from tests.faults.netns import SiteNetwork
from tests.faults.proxy import LoopbackProxy
from tests.faults.stream import DESKS, QUICK, StreamShape, write_scenario
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.fixtures.postgres import PORT, create_database, database_url, drop_database
from tests.ledger.chain.anvil_node import AnvilNode

BIN: Final = Path(sys.executable).parent
ANVIL_ADMIN_KEY: Final = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""anvil's first development account (public, funded on every fresh anvil): the consortium
admin, so a node replaced by an empty one still has a funded admin."""
ANVIL_CHAIN_ID: Final = 31337
BLOCK_TIME_S: Final = 0.5
STATE_INTERVAL_S: Final = 5
"""anvil dumps its state this often: a node killed with SIGKILL restarts from a state up to
this old, as one restored from a recent backup would."""
BROKER_LOG_TYPES: Final = ("error", "warning", "notice", "information", "subscribe")
QUIET_S: Final = 6.0
"""After the stream: departures (2 s of silence) and the idle badge session (4 s) are sent."""
DRAIN_S: Final = 90.0
"""Longest wait, after the stream, for every issued sequence to be stored."""
ANCHOR_S: Final = 45.0
"""Longest wait, once drained, for the log's final size to be anchored."""
SETTLED_S: Final = 8.0
"""Outboxes empty and nothing stored for this long: the rest is not coming."""
POLL_S: Final = 0.25
AGENT_ENV: Final = {"PYTHONUNBUFFERED": "1"}
OUTBOX_ON_OWN_DISK: Final = "outbox/outbox.db"
"""Where an agent's outbox goes when it has a file system of its own (relative to its
config)."""


class Processes(Stack):
    """`demo.stack.Stack` plus what faults need: one child by name, signalled or killed alone,
    and started again with the same command."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        super().__init__(run_dir, env)
        self._commands: dict[str, tuple[list[str], dict[str, str]]] = {}

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        env = env or self.env
        self._commands[name] = (argv, env)
        saved, self.env = self.env, env
        try:
            self.spawn(name, argv, log_name=name.replace(" ", "-"))
        finally:
            self.env = saved

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return next(p for n, p in self.children if n == name)

    def running(self, name: str) -> bool:
        return any(n == name and p.poll() is None for n, p in self.children)

    def kill(self, name: str, signum: int = signal.SIGKILL, wait_s: float = 30.0) -> None:
        """Send `signum` to the child itself (not its group: its own children must notice),
        wait for it, then kill whatever of its group is left and forget it."""
        process = self.process(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)
        try:
            process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        self.children = [(n, p) for n, p in self.children if p is not process]

    def restart(self, name: str, env: dict[str, str] | None = None) -> None:
        """Start `name` again with the same command, and the same environment unless `env`
        (changed settings) is given."""
        if self.running(name):
            raise RuntimeError(f"{name} is still running")
        self.children = [(n, p) for n, p in self.children if n != name]
        argv, before = self._commands[name]
        self.start(name, argv, env or before)


@dataclass
class Recovery:
    """One restore: when, and the sequences issued by then (reader -> next seq)."""

    at: float
    issued: dict[str, int]
    seconds: float | None = None


@dataclass
class RunOutcome:
    """What one run did: issued sequences per reader and the recoveries measured."""

    issued: dict[str, int]
    recoveries: list[Recovery] = field(default_factory=list)
    outbox_left: dict[str, int] = field(default_factory=dict)
    buffered: int = 0
    """The largest backlog `FaultStack.note_buffered` saw in the outboxes (0: not measured)."""

    @property
    def recover_s(self) -> float | None:
        """The slowest recovery; None if one never recovered (or nothing was restored)."""
        times = [r.seconds for r in self.recoveries]
        if not times or any(t is None for t in times):
            return None
        return max(t for t in times if t is not None)


class FaultStack:
    """Everything of one run; `with FaultStack(...) as stack: stack.play(fault)`."""

    def __init__(self, run_dir: Path, *, nodes: int = 1, shape: StreamShape = QUICK,
                 outbox_disk: str | None = None, site_netns: bool = False) -> None:
        """`outbox_disk`: each outbox on a small file system of that kind of its own
        (`tests.faults.disks`: "tmpfs" or "ext4"); `site_netns`:
        the agents in a network namespace of their own (`tests.faults.netns`)."""
        self.run_dir = run_dir
        self.outbox_mounts: OutboxMounts | None = None
        self._outbox_disk = outbox_disk
        self.site: SiteNetwork | None = SiteNetwork() if site_netns else None
        self.nodes = nodes
        self.shape = shape
        self.t0 = 0.0
        self.recoveries: list[Recovery] = []
        self.buffered = 0
        self.waiting: list[dict[str, int]] = []
        """Each `note_buffered`: the rows waiting per reader."""
        self.database = ""
        self.engine: Engine | None = None
        self.broker: MosquittoBroker | None = None
        self.anvil: AnvilNode | None = None
        self.db_link: LoopbackProxy | None = None
        self.uplink: LoopbackProxy | None = None
        self.contract = ""
        self.api_ports = [free_port() for _ in range(nodes)]
        self.procs = Processes(run_dir, dict(os.environ))
        self.lives: dict[int, list[tuple[float, float | None]]] = {}
        """Each API node's runs: wall-clock start and end (None while it runs)."""
        self.node_of: dict[str, int] = {}
        """Each API node's anchoring account (address, lower case) -> node."""
        self._watching = threading.Event()

    # -- set-up -------------------------------------------------------------------------------

    def __enter__(self) -> FaultStack:
        try:
            self._start_services()
            self._start_api()
            self._start_readers()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start_services(self) -> None:
        self.database = create_database("kitledger_faults")
        self.engine = make_engine(load_settings(database_url=database_url(self.database)))
        broker_dir = self.run_dir / "mosquitto"
        broker_dir.mkdir()
        self.broker = MosquittoBroker(broker_dir)
        with self.broker.config_path.open("a") as config:
            config.writelines(f"log_type {kind}\n" for kind in BROKER_LOG_TYPES)
        self.broker.start()
        self.anvil = AnvilNode(self.run_dir, block_time=BLOCK_TIME_S, chain_id=ANVIL_CHAIN_ID,
                               extra=["--state-interval", str(STATE_INTERVAL_S)])
        self.anvil.start()
        self.contract = self.deploy_contract()
        self.db_link = LoopbackProxy(PORT)
        if self.site is not None:
            self.site.create()
            self.uplink = LoopbackProxy(self.broker.port, host=self.site.host_ip)
        else:
            self.uplink = LoopbackProxy(self.broker.port)

    def deploy_contract(self) -> str:
        """A fresh CustodyAnchor on the current node, the anvil admin as consortium admin."""
        assert self.anvil is not None
        w3 = connect(self.anvil.url, ANVIL_CHAIN_ID)
        return CustodyAnchorClient.deploy(w3, Account.from_key(ANVIL_ADMIN_KEY)).address

    def deploy_new_contract(self) -> str:
        """What docs/anchoring.md asks of the operator on a replaced chain: a new CustodyAnchor
        at an address other than the old one. On an empty chain the admin's first deployment
        lands on the old address, so one plain transaction from the admin goes first."""
        assert self.anvil is not None
        w3 = connect(self.anvil.url, ANVIL_CHAIN_ID)
        admin = Account.from_key(ANVIL_ADMIN_KEY)
        if w3.eth.get_transaction_count(admin.address) == 0:
            signed = admin.sign_transaction({
                "to": admin.address, "value": 0, "gas": 21_000, "nonce": 0,
                "gasPrice": int(w3.eth.gas_price), "chainId": ANVIL_CHAIN_ID})
            w3.eth.wait_for_transaction_receipt(
                w3.eth.send_raw_transaction(signed.raw_transaction), timeout=30)
        address = self.deploy_contract()
        if address.lower() == self.contract.lower():
            raise RuntimeError(f"the new contract landed on the old address {address}")
        return address

    def api_env(self, node: int) -> dict[str, str]:
        assert self.broker is not None and self.anvil is not None and self.db_link is not None
        return {**os.environ, **AGENT_ENV,
                "KITLEDGER_DATABASE_URL": database_url(self.database, self.db_link.port),
                "KITLEDGER_MQTT_URL": self.broker.url,
                "KITLEDGER_SECRET_KEY": self._secret,
                "KITLEDGER_ENVIRONMENT": "development",
                "KITLEDGER_LOG_KEY_DIR": str(self.key_dir(node)),
                "KITLEDGER_ANCHOR_CHAIN_URL": self.anvil.url,
                "KITLEDGER_ANCHOR_CHAIN_ID": str(ANVIL_CHAIN_ID),
                "KITLEDGER_ANCHOR_CONTRACT": self.contract,
                "KITLEDGER_ANCHOR_ADMIN_KEY": ANVIL_ADMIN_KEY,
                "KITLEDGER_ANCHOR_INTERVAL_S": "1",
                # Named as docs/scaling.md advises: /readyz and the broker's log say "node1".
                "KITLEDGER_NODE_ID": f"node{node}"}

    def key_dir(self, node: int) -> Path:
        return self.run_dir / f"keys-node{node}"

    def _make_keys(self) -> None:
        """Every node holds the same log keys (a log has one) and an anchoring account of
        its own, so the chain shows which node anchored what."""
        from api.agency_keys import anchoring_secret, log_key
        from demo.seed import DEMO_AGENCY, OTHER_AGENCY
        from ledger.chain.consortium import local_account

        for agency in (DEMO_AGENCY, OTHER_AGENCY):
            log_key(self.key_dir(0), agency)
            for node in range(self.nodes):
                if node:
                    self.key_dir(node).mkdir(mode=0o700, exist_ok=True)
                    name = f"{agency}.log.key"
                    shutil.copy2(self.key_dir(0) / name, self.key_dir(node) / name)
                address = local_account(anchoring_secret(self.key_dir(node), agency)).address
                self.node_of[address.lower()] = node

    @property
    def _secret(self) -> str:
        key = self.run_dir / "secret"
        if not key.exists():
            key.write_text(secrets.token_hex(24))
        return key.read_text()

    def _start_api(self) -> None:
        assert self.uplink is not None
        # The agents' configs name the uplink; the registry and keys are demo.up's.
        settings = load_settings(database_url=database_url(self.database),
                                 mqtt_url=f"mqtt://{self.uplink.host}:{self.uplink.port}",
                                 secret_key=self._secret)
        _prepare_database(settings, self.procs)
        self._make_keys()
        if self._outbox_disk is not None:
            for reader in DESKS:
                config = self.reader_dir(reader) / "agent.toml"
                config.write_text(config.read_text().replace(
                    'path = "outbox.db"', f'path = "{OUTBOX_ON_OWN_DISK}"'))
            self.outbox_mounts = mount_outboxes(
                [self.reader_dir(r) / Path(OUTBOX_ON_OWN_DISK).parent for r in DESKS],
                self._outbox_disk)
        for node in range(self.nodes):
            self.start_api(node)
        for node in range(self.nodes):
            self.wait_api(node)
        self.wait_subscribed(self.nodes)

    def start_api(self, node: int) -> None:
        self.lives.setdefault(node, []).append((time.time(), None))
        self.procs.start(f"api{node}", [
            str(BIN / "kitledger"), "serve", "--host", "127.0.0.1",
            "--port", str(self.api_ports[node]), "--ingest-workers", "1"], self.api_env(node))

    def wait_api(self, node: int) -> None:
        url = f"http://127.0.0.1:{self.api_ports[node]}"
        wait_until(f"API node {node}", lambda: _api_ready(url), self.procs)

    def wait_subscribed(self, count: int) -> None:
        """Until `count` ingest subscriptions more have reached the broker (its log says)."""
        assert self.broker is not None
        broker = self.broker
        wait_until("the ingest workers' subscriptions",
                   lambda: broker.log().count("$share/") >= count, self.procs)

    def reader_dir(self, reader: DemoReader) -> Path:
        return self.run_dir / "readers" / reader.reader_id

    def _start_readers(self) -> None:
        for number, reader in enumerate(DESKS):
            folder = self.reader_dir(reader)
            scenario = write_scenario(folder / "scenario.json", reader, number, self.shape)
            self.procs.start(f"sim {reader.reader_id}", [
                str(BIN / "kitledger-sim"), "--scenario", str(scenario),
                "--link", str(folder / "tty")])
        for reader in DESKS:
            tty = self.reader_dir(reader) / "tty"
            wait_until(f"simulated reader {reader.reader_id}", tty.exists, self.procs)
        self.t0 = time.monotonic()
        for reader in DESKS:
            self.start_agent(reader)

    def start_agent(self, reader: DemoReader) -> None:
        inside = self.site.prefix() if self.site is not None else []
        self.procs.start(f"agent {reader.reader_id}", [
            *inside, str(BIN / "kitledger-agent"), "run", "--config",
            str(self.reader_dir(reader) / "agent.toml")], {**os.environ, **AGENT_ENV})

    # -- what the run has done -------------------------------------------------------------------

    def outbox(self, reader: DemoReader) -> tuple[int, int]:
        """(next sequence number, rows waiting) of a reader's outbox file, read from outside."""
        path = self.reader_dir(reader) / (OUTBOX_ON_OWN_DISK if self._outbox_disk
                                          else "outbox.db")
        if not path.exists():
            return 0, 0
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            try:
                stored = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                highest, depth = db.execute("SELECT max(seq), count(*) FROM outbox").fetchone()
            except sqlite3.OperationalError:
                return 0, 0  # not created yet
        next_seq = max(stored[0] if stored else 0, -1 if highest is None else highest + 1)
        return next_seq, depth

    def issued(self) -> dict[str, int]:
        return {r.reader_id: self.outbox(r)[0] for r in DESKS}

    def stored_below(self, issued: dict[str, int]) -> int:
        """How many of the sequences below each reader's `issued` the database holds."""
        assert self.engine is not None
        total = 0
        with self.engine.connect() as conn:
            for reader, below in issued.items():
                total += conn.execute(text(
                    "SELECT count(DISTINCT seq) FROM observation WHERE device_id = :d "
                    "AND seq < :n"), {"d": reader, "n": below}).scalar_one()
        return total

    def note_buffered(self) -> None:
        """Note the observations waiting in every outbox now (a fault calls this just before
        it lifts a partition); the run reports the largest."""
        waiting = {r.reader_id: self.outbox(r)[1] for r in DESKS}
        self.waiting.append(waiting)
        self.buffered = max(self.buffered, sum(waiting.values()))

    def at(self, seconds: float) -> None:
        """Sleep until `seconds` after the stream started."""
        time.sleep(max(0.0, self.t0 + seconds - time.monotonic()))

    def restored(self) -> None:
        """Mark now as a fault's end: the recovery is timed from here until every sequence
        issued by now is stored."""
        self.recoveries.append(Recovery(time.monotonic(), self.issued()))

    def _watch_recoveries(self) -> None:
        while not self._watching.wait(POLL_S):
            for recovery in self.recoveries:
                if recovery.seconds is None and self._safe_stored(recovery.issued) == sum(
                        recovery.issued.values()):
                    recovery.seconds = time.monotonic() - recovery.at

    def _safe_stored(self, issued: dict[str, int]) -> int:
        try:
            return self.stored_below(issued)
        except Exception:  # the watcher must outlive a database cut
            return -1

    # -- a run --------------------------------------------------------------------------------

    def play(self, fault: Callable[[FaultStack], None] | None = None) -> RunOutcome:
        """The stream with `fault` acting on the stack, then drain, anchor, stop."""
        watcher = threading.Thread(target=self._watch_recoveries, daemon=True)
        watcher.start()
        try:
            if fault is not None:
                fault(self)
            self.at(self.shape.end_s)
            for reader in DESKS:
                self.procs.kill(f"sim {reader.reader_id}", signal.SIGTERM)
            time.sleep(QUIET_S)
            self.drain(DRAIN_S)
            for reader in DESKS:
                if self.procs.running(f"agent {reader.reader_id}"):
                    self.procs.kill(f"agent {reader.reader_id}", signal.SIGTERM)
            issued = self.issued()
            self.drain(DRAIN_S / 3, issued)
            self.wait_anchored(ANCHOR_S)
        finally:
            self._watching.set()
            watcher.join()
        left = {r.reader_id: self.outbox(r)[1] for r in DESKS}
        return RunOutcome(issued, list(self.recoveries), left, self.buffered)

    def drain(self, timeout: float, issued: dict[str, int] | None = None) -> bool:
        """Until the database holds every sequence issued (as of each poll); or, sooner, once
        every outbox is empty and nothing new was stored for SETTLED_S (what is missing then
        is lost, not late); or `timeout`."""
        last, since = -2, time.monotonic()
        deadline = since + timeout
        while time.monotonic() < deadline:
            now = issued or self.issued()
            stored = self._safe_stored(now)
            if stored == sum(now.values()):
                return True
            if stored != last or any(self.outbox(r)[1] for r in DESKS):
                last, since = stored, time.monotonic()
            elif time.monotonic() - since > SETTLED_S:
                return False
            time.sleep(POLL_S)
        return False

    def wait_anchored(self, timeout: float) -> bool:
        """Until some anchored checkpoint covers every agency log's current size."""
        assert self.engine is not None
        engine = self.engine

        def anchored() -> bool:
            with engine.connect() as conn:
                behind = conn.execute(text(
                    "SELECT count(*) FROM agency_log l WHERE l.size > COALESCE((SELECT "
                    "max(c.tree_size) FROM log_checkpoint c WHERE c.agency_id = l.agency_id "
                    "AND c.tx_hash IS NOT NULL), 0)")).scalar_one()
            return bool(behind == 0)
        return wait_for(anchored, timeout)

    def anchored_size(self) -> int:
        """The largest anchored checkpoint recorded so far (any agency)."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT COALESCE(max(tree_size), 0) FROM "
                                         "log_checkpoint WHERE tx_hash IS NOT NULL")).scalar_one())

    def stop_api(self, node: int, signum: int = signal.SIGTERM) -> None:
        self.procs.kill(f"api{node}", signum)
        start, _ = self.lives[node][-1]
        self.lives[node][-1] = (start, time.time())

    def restart_api(self, node: int) -> None:
        """Start `serve` node `node` again, with the settings as they are now (`api_env`)."""
        self.lives[node].append((time.time(), None))
        self.procs.restart(f"api{node}", self.api_env(node))

    def anchoring_state(self) -> str | None:
        """The anchoring service's state as its `anchoring_status` row says (None: no row)."""
        assert self.engine is not None
        with self.engine.connect() as conn:
            state = conn.execute(text("SELECT state FROM anchoring_status WHERE agency_id = :s"),
                                 {"s": SERVICE_SCOPE})
            return state.scalar_one_or_none()

    def close(self) -> None:
        self._watching.set()
        self.procs.stop()
        for link in (self.db_link, self.uplink):
            if link is not None:
                link.close()
        if self.broker is not None:
            self.broker.kill()
        if self.anvil is not None:
            self.anvil.kill()
        if self.site is not None:
            self.site.destroy()
        if self.outbox_mounts is not None:
            unmount_outboxes(self.outbox_mounts)
        if self.engine is not None:
            self.engine.dispose()
        if self.database:
            with contextlib.suppress(Exception):
                drop_database(self.database)
