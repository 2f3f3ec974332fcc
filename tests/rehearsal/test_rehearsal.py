"""The deployment rehearsal: docs/deploy.md followed from nothing on five machines (network
namespaces on one private LAN, `tests.rehearsal.layout`), a scripted day end to end, then each
part restarted in turn with nothing lost.

The day: PC Adams's badge opens a session at the issue desk, three radios are checked out to
him, then checked in at the return desk; each desk's agent logs the API's signed decisions;
the log is anchored on the chain node; `kitledger export` writes the agency's bundle and
`kitledger verify --rpc` (the log key, chain and contract pinned) passes. Then, while the
readers keep seeing tags, the broker, the API, the chain node and the agents are restarted one
after another: every observation each reader issued is stored exactly once, and anchoring
carries on. Each phase's time is printed (`-s`, or the captured output of a failure).

Needs root and `ip netns` (made and removed here); skipped with the reason otherwise.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final

import pytest
from eth_account import Account
from eth_keys.datatypes import PrivateKey
from sqlalchemy import Engine, text

from api.config import load_settings
from api.db import make_engine
from tests.faults.netns import available
from tests.faults.stack import Processes
from tests.fixtures.postgres import create_database, database_url, drop_database
from tests.rehearsal.layout import (
    AGENCY,
    API_PORT,
    BIN,
    CHAIN_ID,
    CHAIN_PORT,
    CONTRACT,
    DESKS,
    GENERATOR,
    GENESIS_LOADER,
    SITE,
    Desk,
    Machines,
    Operator,
    agent_config,
    anvil_command,
    api_config,
    broker_config,
    broker_pki,
    network_toml,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the rehearsal makes network namespaces: "
                       "needs root"),
]

BADGE: Final = "E28011900000000000000A01"
RADIOS: Final = {f"radio-{n}": f"34180000000000000000010{n}" for n in (1, 2, 3)}
DAY_START_S: Final = 4.0
"""The first tag reaches the issue desk this long after its simulator starts."""
NOISE_UNTIL_S: Final = 200.0
"""Other tags keep coming until then: the restarts happen with reads flowing."""
WAIT_S: Final = 60.0
STOP_S: Final = 30.0
"""The API's unit gives `serve` this long to stop (TimeoutStopSec)."""
PHASES: list[tuple[str, float]] = []


@contextlib.contextmanager
def phase(name: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    PHASES.append((name, took))
    print(f"rehearsal phase {name}: {took:.1f} s", flush=True)


def until(what: str, ready: Callable[[], bool], procs: Processes,
          timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if (dead := procs.dead_child()) is not None:
            raise AssertionError(f"{dead} exited while waiting for {what}; logs in "
                                 f"{procs.run_dir}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; logs in {procs.run_dir}")
        time.sleep(0.25)


def scenario(desk: Desk, number: int) -> dict[str, Any]:
    """The desk's day: the badge and three radios out at the issue desk, the radios back at
    the return desk; then one passing tag every half second until NOISE_UNTIL_S."""
    tags: list[dict[str, Any]] = []
    issuing = desk.role == "issue_desk"
    if issuing:
        tags.append({"epc": BADGE, "rssi": {"1": -45}, "arrive": 0.0})
    first = DAY_START_S if issuing else DAY_START_S + 12.0
    for i, epc in enumerate(RADIOS.values()):
        at = first + 2.5 * i
        tags.append({"epc": epc, "rssi": {"1": -50}, "arrive": at, "depart": at + 1.5})
    at, n = first + 10.0, 0
    while at < NOISE_UNTIL_S:
        tags.append({"epc": f"3018{number:04x}{n:016x}", "rssi": {"1": -55}, "arrive": at,
                     "depart": round(at + 1.0, 3)})
        at, n = round(at + 0.5, 3), n + 1
    return {"protocol": "thingmagic", "reads_per_second": 100.0, "seed": number + 1,
            "tags": tags}


class Rehearsal:
    """The deployment and the operator's hands on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.machines = Machines()
        self.procs = Processes(root, {**os.environ, "PYTHONUNBUFFERED": "1"})
        self.operator = Operator(self.machines.lan, root, {**os.environ})
        self.database = ""
        self.engine: Engine | None = None
        self.admin_key = ""
        self.api_env: dict[str, str] = {}

    def close(self) -> None:
        self.procs.stop()
        if self.engine is not None:
            self.engine.dispose()
        self.machines.destroy()
        if self.database:
            with contextlib.suppress(Exception):
                drop_database(self.database)

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o700, exist_ok=True)
        return path

    def ip(self, machine: str) -> str:
        return self.machines.address[machine]

    # -- the parts, as the guide sets them up -------------------------------------------------

    def chain(self) -> None:
        """deploy/besu/README.md: the admin's key and address, the validator's public key,
        network.toml, the generator; the node boots from genesis.json."""
        admin = self.folder("consortium-admin")
        self.operator.run(None, "sh", "-c", f"umask 077; openssl rand -hex 32 > {admin}/admin.key")
        self.admin_key = str(admin / "admin.key")
        address = Account.from_key((admin / "admin.key").read_text().strip()).address
        node_key = PrivateKey(secrets.token_bytes(32))  # made on the node by Besu
        node = self.folder("chain")
        (node / "network.toml").write_text(network_toml(
            self.ip("chain"), "0x" + node_key.public_key.to_bytes().hex(), address))
        self.operator.run(None, str(BIN / "python"), str(GENERATOR), str(node / "network.toml"),
                          "--out", str(node / "network"))
        described = json.loads((node / "network" / "network.json").read_text())
        assert described["contract"].lower() == CONTRACT
        self.start_chain()
        self.operator.run("chain", str(BIN / "python"), "-c", GENESIS_LOADER,
                          f"http://{self.ip('chain')}:{CHAIN_PORT}",
                          str(node / "network" / "genesis.json"))

    def start_chain(self) -> None:
        prefix = self.machines.lan.prefix("chain")
        self.procs.start("chain", [*prefix, *anvil_command(self.root / "chain", self.ip("chain"))])
        until("the chain node", lambda: self._rpc_answers(), self.procs)

    def _rpc_answers(self) -> bool:
        done = self.operator.run("api", str(BIN / "python"), "-c",
                                 "import socket; socket.create_connection("
                                 f"('{self.ip('chain')}', {CHAIN_PORT}), 1)", check=False)
        return done.returncode == 0

    def broker(self) -> None:
        """docs/deploy.md, "The broker": its certificates, the shipped configuration."""
        readers_ca = self.folder("readers-ca")
        self.operator.kitledger(None, "reader-ca", "init", "--dir", str(readers_ca / "ca"),
                                "--name", "North Police readers CA")
        broker_pki(self.operator, self.root / "broker-pki", self.ip("broker"))
        conf = broker_config(self.folder("broker"), self.root / "broker-pki",
                             readers_ca / "ca" / "ca.pem")
        self.procs.start("broker", [*self.machines.lan.prefix("broker"), "mosquitto", "-c",
                                    str(conf)])
        log = self.root / "broker" / "mosquitto.log"
        until("the broker", lambda: log.exists() and "running" in log.read_text(), self.procs)

    def api(self) -> dict[str, Any]:
        """docs/deploy.md, "The API": database, settings, migrate, keys, the consortium's
        enrolment, serve. Returns the anchoring identity."""
        self.database = create_database("kitledger_rehearsal")
        self.engine = make_engine(load_settings(database_url=database_url(self.database)))
        api = self.folder("api")
        pki = self.root / "broker-pki"
        for name in ("broker-ca.pem", "api.crt", "api.key"):
            (api / name).write_bytes((pki / name).read_bytes())
        (api / "api.key").chmod(0o600)
        (api / "api.toml").write_text(api_config(
            api, self.machines.database_url(self.database), self.ip("broker"), self.ip("chain")))
        (api / "api.env").write_text(f"KITLEDGER_SECRET_KEY={secrets.token_urlsafe(32)}\n")
        secret = (api / "api.env").read_text().strip().split("=", 1)
        self.api_env = {secret[0]: secret[1], "KITLEDGER_CONFIG": str(api / "api.toml")}
        migrated = self.operator.kitledger("api", "migrate", env=self.api_env)
        assert migrated["from"] is None and migrated["to"]
        identity = self.operator.kitledger("api", "anchoring-identity", "--agency", AGENCY,
                                           env=self.api_env)
        self.start_api()
        until("the API to answer", lambda: self._http_status("/healthz") == 200, self.procs)
        # The consortium admin signs offline; anyone who reaches a node submits.
        order = self.root / "consortium-admin" / "north-enroll.json"
        self.operator.kitledger(None, "consortium", "enroll", "--agency", AGENCY, "--log",
                                identity["log"], "--account", identity["account"],
                                "--contract", CONTRACT, "--key-file", self.admin_key,
                                "--chain-id", str(CHAIN_ID), "--nonce", "0", "--gas-price", "0",
                                "--out", str(order))
        self.operator.kitledger("api", "consortium", "submit", str(order), "--rpc",
                                f"http://{self.ip('chain')}:{CHAIN_PORT}")
        self.wait_ready()
        return identity

    def start_api(self) -> None:
        self.procs.start("api", [*self.machines.lan.prefix("api"), str(BIN / "kitledger"),
                                 "serve", "--host", "0.0.0.0", "--port", str(API_PORT)],
                         {**self.procs.env, **self.api_env})

    def restart_api(self) -> None:
        self.start_api()
        self.wait_ready()

    def wait_ready(self) -> None:
        until("/readyz 200", lambda: self._http_status("/readyz") == 200, self.procs)

    def _http_status(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.machines.api_url + path, timeout=2) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def call(self, key: str, method: str, path: str, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.machines.api_url + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read() or b"null")

    def registry(self, key: str) -> None:
        """The agency's site, asset class, radios and PC Adams, through the REST API."""
        self.call(key, "POST", "/v1/sites", {"id": SITE, "name": "North stores"})
        self.call(key, "POST", "/v1/asset-classes", {"id": "radio", "name": "Radio",
                                                      "loan_days": 1})
        for asset_id, epc in RADIOS.items():
            self.call(key, "POST", "/v1/assets", {"id": asset_id, "class_id": "radio",
                                                  "epc_hex": epc, "home_site_id": SITE})
        self.call(key, "POST", "/v1/people", {"id": "pc-adams", "badges": [BADGE]})

    def pi(self, desk: Desk, number: int, admin_key: str, api_key: str) -> None:
        """docs/deploy.md, "The Pi": agent.toml, enrol, the agency issues the certificate and
        registers the reader; the answers key pinned. The simulator stands in for the reader
        on its serial port."""
        pi = self.folder(desk.machine)
        tty = pi / "tty"
        (pi / "agent.toml").write_text(agent_config(desk, pi, self.ip("broker"), tty))
        done = self.operator.run(desk.machine, str(BIN / "kitledger-agent"), "enroll",
                                 "--config", str(pi / "agent.toml"))
        (pi / "enrollment.json").write_text(done.stdout)
        record = json.loads(done.stdout)
        ca = self.root / "readers-ca" / "ca"
        issued = self.operator.kitledger(None, "reader-ca", "issue", "--dir", str(ca),
                                         str(pi / "enrollment.json"), "--out",
                                         str(pi / "reader.crt"), "--reader", desk.reader_id)
        assert issued["key_fingerprint"] == record["tls_key_fingerprint"]
        (pi / "ca.pem").write_bytes((self.root / "broker-pki" / "broker-ca.pem").read_bytes())
        self.call(admin_key, "POST", "/v1/readers", {
            "id": desk.reader_id, "site_id": SITE, "role": desk.role,
            "zones": {"1": "desk", "2": "shelf"}, "public_key": record["public_key_hex"]})
        config = (pi / "agent.toml").read_text()
        (pi / "agent.toml").write_text(config.replace(
            '# api_key = "<64 hex digits>"', f'api_key = "{api_key}"'))
        (pi / "scenario.json").write_text(json.dumps(scenario(desk, number)))

    def start_readers(self) -> None:
        for desk in DESKS:
            pi = self.root / desk.machine
            self.procs.start(f"sim {desk.reader_id}", [
                *self.machines.lan.prefix(desk.machine), str(BIN / "kitledger-sim"),
                "--scenario", str(pi / "scenario.json"), "--link", str(pi / "tty")])
        for desk in DESKS:
            tty = self.root / desk.machine / "tty"
            until(f"the simulated reader {desk.reader_id}", tty.exists, self.procs)
        for desk in DESKS:
            self.start_agent(desk)

    def start_agent(self, desk: Desk) -> None:
        self.procs.start(f"agent {desk.reader_id}", [
            *self.machines.lan.prefix(desk.machine), str(BIN / "kitledger-agent"), "run",
            "--config", str(self.root / desk.machine / "agent.toml")])

    def stop(self, name: str) -> None:
        """As `systemctl stop` does: SIGTERM to every process of the service, a wait for all of
        them (up to STOP_S), then SIGKILL to what is left."""
        leader = self.procs.process(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(leader.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_S
        with contextlib.suppress(subprocess.TimeoutExpired):
            leader.wait(STOP_S)
        while time.monotonic() < deadline:
            try:
                os.killpg(leader.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        self.procs.kill(name, signal.SIGKILL)

    # -- what happened --------------------------------------------------------------------------

    def sql(self, query: str, **params: Any) -> Any:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return conn.execute(text(query), params).all()

    def outbox(self, desk: Desk) -> tuple[int, int]:
        """(next sequence number, rows waiting) of the desk's outbox, read from outside."""
        path = self.root / desk.machine / "outbox.db"
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                                timeout=5)) as db:
            try:
                stored = db.execute("SELECT value FROM meta WHERE key='next_seq'").fetchone()
                highest, depth = db.execute("SELECT max(seq), count(*) FROM outbox").fetchone()
            except sqlite3.OperationalError:
                return 0, 0
        return max(stored[0] if stored else 0, -1 if highest is None else highest + 1), depth

    def stored(self, desk: Desk) -> tuple[int, int, int]:
        """(rows, distinct sequence numbers, highest + 1) stored for the desk's reader."""
        rows, distinct, top = self.sql(
            "SELECT count(*), count(DISTINCT seq), COALESCE(max(seq) + 1, 0) FROM observation "
            "WHERE device_id = :d", d=desk.reader_id)[0]
        return int(rows), int(distinct), int(top)

    def total_stored(self) -> int:
        return int(self.sql("SELECT count(*) FROM observation")[0][0])

    def drained(self) -> bool:
        """Every sequence each reader issued is stored, and its outbox is empty."""
        for desk in DESKS:
            issued, waiting = self.outbox(desk)
            _, distinct, _ = self.stored(desk)
            if waiting or distinct != issued:
                return False
        return True

    def anchored_size(self) -> int:
        """The agency log's size if an anchored checkpoint covers it, else -1."""
        rows = self.sql(
            "SELECT l.size, COALESCE((SELECT max(c.tree_size) FROM log_checkpoint c WHERE "
            "c.agency_id = l.agency_id AND c.tx_hash IS NOT NULL), 0) FROM agency_log l "
            "WHERE l.agency_id = :a", a=AGENCY)
        return int(rows[0][0]) if rows and rows[0][0] == rows[0][1] else -1

    def actions(self) -> dict[str, int]:
        return {action: int(n) for action, n in self.sql(
            "SELECT action, count(*) FROM custody_event GROUP BY action")}

    def agent_log(self, desk: Desk) -> str:
        return (self.root / f"agent-{desk.reader_id}.log").read_text(errors="replace")


@pytest.fixture
def rehearsal(tmp_path: Path) -> Iterator[Rehearsal]:
    if not available():
        pytest.skip("network namespaces cannot be made here (`ip netns add` failed or `ip` is "
                    "missing): the rehearsal needs root and iproute2")
    made = Rehearsal(tmp_path)
    try:
        with phase("machines"):
            made.machines.create()
        yield made
    finally:
        made.close()
        print("rehearsal timings: " + ", ".join(f"{n} {s:.1f} s" for n, s in PHASES),
              flush=True)


def test_a_deployment_by_the_guide_runs_a_day_and_survives_each_restart(
        rehearsal: Rehearsal) -> None:
    r = rehearsal
    with phase("chain node"):
        r.chain()
    with phase("broker"):
        r.broker()
    with phase("api"):
        identity = r.api()
        client = r.operator.kitledger("api", "api-client", "create", "--agency", AGENCY,
                                      "--agency-name", "North Police", "--name", "stores admin",
                                      "--scopes", "admin,assets:read,assets:write,audit:read",
                                      env=r.api_env)
        admin_key = str(client["key"])
        answers = r.operator.kitledger("api", "answers-key", "--agency", AGENCY, env=r.api_env)
    with phase("pis"):
        r.registry(admin_key)
        for number, desk in enumerate(DESKS):
            r.pi(desk, number, admin_key, str(answers["api_key"]))
        r.start_readers()

    with phase("day"):
        until("three check-outs and three check-ins",
              lambda: r.actions().get("check_in", 0) >= len(RADIOS), r.procs, timeout=90)
        assert r.actions() == {"register": len(RADIOS), "check_out": len(RADIOS),
                               "check_in": len(RADIOS)}
        for desk in DESKS:
            assert "decision {" in r.agent_log(desk), f"{desk.reader_id} logged no decision"
            assert "answers_refused" not in r.agent_log(desk)
        for asset_id in RADIOS:
            asset = r.call(admin_key, "GET", f"/v1/assets/{asset_id}")
            assert asset["status"] == "in_store", asset
        until("both readers' health and status at the API", lambda: r.sql(
            "SELECT count(*) FROM reader_health WHERE online AND seen_at IS NOT NULL")[0][0]
            == len(DESKS), r.procs)

    with phase("anchor, export, verify"):
        until("the day anchored", lambda: r.anchored_size() >= 2 * len(RADIOS), r.procs)
        bundle = r.root / "auditor" / "bundle.jsonl"
        bundle.parent.mkdir()
        r.operator.kitledger("api", "export", "--agency", AGENCY, "--site", SITE,
                             "--out", str(bundle),
                             env=r.api_env)
        trust = bundle.parent / "trust.toml"
        trust.write_text("\n".join([
            "version = 1", "[[log]]", f'agency = "{AGENCY}"',
            f'public_keys = ["{identity["log_public_key"]}"]', "[log.chain]",
            f"chain_id = {CHAIN_ID}", f'contract = "{CONTRACT}"', "deployment_block = 0", ""]))
        verdict = r.operator.run("api", str(BIN / "kitledger"), "verify", str(bundle), "--rpc",
                                 f"http://{r.ip('chain')}:{CHAIN_PORT}", "--trust", str(trust),
                                 "--no-state", check=False)
        assert verdict.returncode == 0, verdict.stdout[-3000:] + verdict.stderr[-1000:]

    def restart(name: str, start: Callable[[], None], desk: Desk | None = None) -> None:
        def count() -> int:  # what the restarted part carries: all, or its reader's
            return r.stored(desk)[0] if desk else r.total_stored()

        with phase(f"restart {name}"):
            before = count()
            r.stop(name)
            start()
            # Reads flow through the restarted part, and nothing issued is missing.
            until(f"everything stored after the {name} restart",
                  lambda: count() > before and r.drained(), r.procs)

    restart("broker", lambda: r.procs.restart("broker"))
    restart("api", r.restart_api)
    before = r.anchored_size()
    restart("chain", r.start_chain)
    with phase("anchoring after the chain restart"):
        assert before > 0
        # A registry change is a leaf of the log: the restarted node must anchor it.
        r.call(admin_key, "POST", "/v1/assets", {"id": "radio-4", "class_id": "radio",
                                                 "epc_hex": "341800000000000000000104",
                                                 "home_site_id": SITE})
        until("a new anchor on the restarted node", lambda: r.anchored_size() > before,
              r.procs)
        r.wait_ready()
    for desk in DESKS:
        restart(f"agent {desk.reader_id}", functools.partial(r.start_agent, desk), desk)

    with phase("drain"):
        for desk in DESKS:
            r.procs.kill(f"sim {desk.reader_id}", signal.SIGTERM)
        time.sleep(3)  # the last departures
        until("every observation stored", r.drained, r.procs)
        r.wait_ready()
    for desk in DESKS:
        issued, _ = r.outbox(desk)
        assert r.stored(desk) == (issued, issued, issued), desk.reader_id
        assert issued > 4 * len(RADIOS), f"{desk.reader_id} issued only {issued}"
    print("rehearsal observations: " + ", ".join(
        f"{d.reader_id} {r.outbox(d)[0]}" for d in DESKS), flush=True)
