"""`kitledger serve` as a real process: HTTP answers, and its ingest worker stores what a
reader publishes to a real broker; SIGTERM stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from api_support import register_reader
from fixtures.ports import free_port, wait_for_port
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func
from sqlmodel import Session, select

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import IngestedObservation

MARK = f"serve-test-{os.getpid()}"


def test_serve_runs_http_and_ingest(tmp_path: Path, mosquitto: object) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    desk = register_reader(engine)
    port = free_port()
    env = {**os.environ, "KITLEDGER_MQTT_URL": mosquitto.url,  # type: ignore[attr-defined]
           "KITLEDGER_DATABASE_URL": url, "KITLEDGER_TEST_MARK": MARK}
    server = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port),
         "--ingest-workers", "1"],
        env=env, stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, timeout=30)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
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
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode in (0, -signal.SIGTERM)
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]
    # The ingest process leaves with its parent (it disconnects from the broker).
    assert _wait_gone("spawn_main", timeout=15)


def _wait_gone(marker: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        procs = (p for p in Path("/proc").iterdir() if p.name.isdigit())
        mine = [p for p in procs if _is_child_of_us(p, marker)]
        if not mine:
            return True
        time.sleep(0.2)
    return False


def _is_child_of_us(proc: Path, marker: str) -> bool:
    try:
        cmdline = (proc / "cmdline").read_bytes()
        environ = (proc / "environ").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline and MARK.encode() in environ
