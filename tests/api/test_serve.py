"""`kitledger serve` as a real process: HTTP answers, its ingest worker stores what a reader
publishes to a real broker, its anchoring process anchors the agency's log on the embedded
chain; SIGTERM stops everything, and a SIGKILLed `serve` leaves no child behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, text
from sqlmodel import Session, select

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import AssetClass, IngestedObservation
from api.models.assets import AssetCreate
from api.registry import create_asset
from tests.api.api_support import register_reader
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.processes import descendants

MARK = f"serve-test-{os.getpid()}"
CHILDREN_SEEN = 3
"""One ingest worker, the anchoring process and multiprocessing's resource tracker."""


def _database(tmp_path: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    return url, engine


def _start(tmp_path: Path, url: str, mqtt_url: str, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KITLEDGER_MQTT_URL": mqtt_url, "KITLEDGER_DATABASE_URL": url,
           "KITLEDGER_LOG_KEY_DIR": str(tmp_path / "keys"), "KITLEDGER_ANCHOR_INTERVAL_S": "1",
           "KITLEDGER_TEST_MARK": MARK}
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port),
         "--ingest-workers", "1"], env=env, stderr=subprocess.PIPE)


def test_serve_runs_http_ingest_and_anchoring(tmp_path: Path, mosquitto: object) -> None:
    url, engine = _database(tmp_path)
    desk = register_reader(engine)
    with Session(engine) as session:  # one registration: the north log has a leaf to anchor
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex="E28011606000020500000001",
            home_site_id="north-store"))
        session.commit()
    port = free_port()
    server = _start(tmp_path, url, mosquitto.url, port)  # type: ignore[attr-defined]
    children: set[int] = set()
    try:
        wait_for_port(port, timeout=30)
        # Ready once the ingest worker has subscribed (a child process: it takes a moment).
        assert wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200,
                        timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
        children = _wait_children(server.pid, CHILDREN_SEEN, timeout=30)
        agent = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        agent.connect("127.0.0.1", mosquitto.port)  # type: ignore[attr-defined]
        agent.loop_start()
        deadline = time.monotonic() + 30
        stored = 0
        seq = 0
        while stored == 0 and time.monotonic() < deadline:
            # The ingest process may still be subscribing: keep sending new observations.
            agent.publish(desk.topic, desk.signed(seq), qos=1).wait_for_publish(5)
            seq += 1
            time.sleep(0.3)
            with Session(engine) as session:
                stored = session.exec(select(func.count()).select_from(IngestedObservation)).one()
        agent.loop_stop()
        assert stored > 0
        assert _wait_anchored(engine, timeout=60), "serve's anchorer never anchored the log"
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode(errors="replace")[-2000:]
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    assert len(children) >= CHILDREN_SEEN
    assert _survivors(children, timeout=15) == set()


def test_children_leave_when_serve_is_killed(tmp_path: Path, mosquitto: object) -> None:
    url, _ = _database(tmp_path)
    port = free_port()
    server = _start(tmp_path, url, mosquitto.url, port)  # type: ignore[attr-defined]
    try:
        wait_for_port(port, timeout=30)
        children = _wait_children(server.pid, CHILDREN_SEEN, timeout=30)
    finally:
        # No chance to clean up: the children must notice on their own.
        server.kill()
        server.communicate(timeout=30)
    assert _survivors(children, timeout=15) == set()


def _wait_children(parent: int, count: int, timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    found: set[int] = set()
    while time.monotonic() < deadline:
        found = descendants(parent)
        if len(found) >= count:
            return found
        time.sleep(0.2)
    pytest.fail(f"serve started {len(found)} children, expected {count}")


def _alive_and_ours(pid: int) -> bool:
    """Still running and still one of ours (a recycled pid lacks our marker)."""
    try:
        state = (Path(f"/proc/{pid}/stat").read_text()).rsplit(")", 1)[1].split()[0]
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return state != "Z" and MARK.encode() in environ


def _survivors(pids: set[int], timeout: float) -> set[int]:
    deadline = time.monotonic() + timeout
    alive = {pid for pid in pids if _alive_and_ours(pid)}
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = {pid for pid in alive if _alive_and_ours(pid)}
    for pid in alive:  # never leave strays behind for the next run, even when failing
        os.kill(pid, signal.SIGKILL)
    return alive


def _wait_anchored(engine: Engine, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT COUNT(*) FROM log_checkpoint "
                                 "WHERE tx_hash IS NOT NULL")).scalar():
                return True
        time.sleep(0.5)
    return False
