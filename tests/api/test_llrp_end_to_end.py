"""LLRP end to end: the simulated LLRP reader (real LLRP over loopback TCP) -> `kitledger-agent
run` as a process (LLRP driver, signing, outbox) -> a real Mosquitto -> the API's ingest worker
-> custody. A badge and three radios stream at 1,000 tag reads a second; the reader reboots
mid-run and its network is cut; every radio ends up checked out to the badge's holder, and
the agent's health shows the reconnects."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from sqlalchemy import Engine
from sqlmodel import Session

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import Asset, AssetClass, AssetStatus
from api.models.assets import AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_person
from hardware.simulator import Scenario, TagSpec
from hardware.simulator.llrp import LlrpReaderSimulator
from tests.api.api_support import register_reader
from tests.fixtures.polling import wait_for
from tests.reader_agent.agent_support import Subscriber

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
BADGE = "E2800000000000000000AB01"
RADIOS = [f"E28011606000020500000{i:03d}" for i in range(3)]
AGENT_TOML = """\
[reader]
id = "desk-1"
agency = "north"
site = "north-store"
role = "issue_desk"
protocol = "llrp"
port = "{url}"

[reader.settings]
zones = {{ desk = [1], door = [2] }}
power_dbm = 25.0
keepalive = 0.2
reconnect_initial = 0.05
reconnect_max = 0.5
command_timeout = 1.0
connect_timeout = 1.0

[identity]
key_file = "reader.key"

[outbox]
path = "outbox.db"
max_rows = 100000

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "agent-desk-1"
reconnect_max_s = 1
health_interval_s = 0.2

[pipeline]
min_reads = 2
debounce_s = 1.0
depart_after_s = 600

[badges]
epcs = ["{badge}"]

[antennas.1]
zone = "desk"
rssi_floor = -80

[antennas.2]
zone = "door"
rssi_floor = -80
"""


def _store(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio", loan_days=1))
        session.flush()
        create_person(session, agency_id="north", now=now,
                      data=PersonCreate(id="alice", qualifications=[], badges=[BADGE]))
        for i, epc in enumerate(RADIOS):
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=f"R-{i}", class_id="radio", epc_hex=epc, home_site_id="north-store"))
        session.commit()


def _statuses(engine: Engine) -> dict[str, tuple[str, str | None]]:
    with Session(engine) as session:
        out: dict[str, tuple[str, str | None]] = {}
        for i in range(len(RADIOS)):
            asset = session.get(Asset, ("north", f"R-{i}"))
            assert asset is not None
            out[asset.id] = (asset.status, asset.holder_ref)
        return out


def _health(sub: Subscriber) -> dict[str, Any]:
    payloads = sub.payloads("/health")
    return json.loads(payloads[-1]) if payloads else {}


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_llrp_reader_to_custody_through_a_reboot_and_a_network_cut(
        engine: Engine, mosquitto: Any, tmp_path: Path) -> None:
    reader = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    _store(engine)
    key_file = tmp_path / "reader.key"
    key_file.write_bytes(reader.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                  NoEncryption()))
    os.chmod(key_file, 0o600)
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
                             ingest_batch_wait_ms=5)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    sub = Subscriber(mosquitto.port, "kitledger/v1/north/north-store/desk-1/health")
    # The badge first, then the radios; at 1,000 reads a second across the four tags.
    scenario = Scenario(
        tags=(TagSpec(bytes.fromhex(BADGE), {1: -45}, arrive=0.0),
              *(TagSpec(bytes.fromhex(epc), {1: -50 - i, 2: -75}, arrive=1.0)
                for i, epc in enumerate(RADIOS))),
        protocol="llrp", reads_per_second=1000)
    agent: subprocess.Popen[bytes] | None = None
    try:
        with LlrpReaderSimulator(scenario) as sim:
            config = tmp_path / "agent.toml"
            config.write_text(AGENT_TOML.format(url=sim.url, mqtt_port=mosquitto.port,
                                                badge=BADGE))
            agent = subprocess.Popen([AGENT, "run", "--config", str(config)], cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            assert wait_for(lambda: sim.stats["tag_reads"] >= 500, 20)
            sim.reboot(0.5)
            assert wait_for(lambda: _health(sub).get("reader_counters", {})
                            .get("reconnects", 0) >= 1, 20), _health(sub)
            sim.cut_network(1.0)
            assert wait_for(lambda: _health(sub).get("reader_counters", {})
                            .get("keepalive_timeouts", 0) >= 1, 20), _health(sub)
            checked_out = dict.fromkeys((f"R-{i}" for i in range(3)),
                                        (AssetStatus.CHECKED_OUT, "alice"))
            assert wait_for(lambda: _statuses(engine) == checked_out, 30), _statuses(engine)
            # Health says "connected" through a short outage (the agent's READER_DOWN_AFTER_S),
            # so the third set-up is awaited by its count: 2 zones, 3 set-ups.
            assert wait_for(lambda: _health(sub).get("reader_counters", {})
                            .get("rospecs_added", 0) >= 6, 15), _health(sub)
            assert wait_for(lambda: _health(sub).get("reader_connected") is True, 10)
            # Five seconds' worth at the reader's rate, none left behind in the outbox.
            assert wait_for(lambda: _health(sub).get("reads_total", 0) >= 5000
                            and _health(sub).get("outbox_depth") == 0, 30), _health(sub)
            assert sim.state.rospecs == {1: ([1], 1), 2: ([2], 1)}
    finally:
        if agent is not None:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=20)
            assert agent.returncode == 0, stderr.decode(errors="replace")[-2000:]
        sub.close()
        worker.stop()
