"""A reader's own temperature: stored from its agent's health, refused when it is not a sane
number, a `reader_overheat` alert raised once at the limit, kept while the reader cools
within the hysteresis, resolved once, and exported as a metric (both backends); and end to
end, a simulated ThingMagic module heated through agent, Mosquitto and the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from prometheus_client import generate_latest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.config import load_settings
from api.custody.reader_health import OVERHEAT_HYSTERESIS_C, ScanResult, scan_reader_health
from api.db import utcnow
from api.errors import ConfigError
from api.ingest.health import HealthListener, HealthRejected, HealthStore
from api.metrics import watch_reader_health
from api.models import Alert, ReaderHealth
from api.models.registry import ReaderRole
from hardware.simulator import ReaderSimulator, Scenario
from hardware.simulator.models import ROOM_TEMPERATURE
from tests.api.api_support import register_reader
from tests.api.test_llrp_end_to_end import AGENT
from tests.fixtures.polling import wait_for

TOPIC = "kitledger/v1/north/north-store/desk-1"
LIMIT = 70.0


def _health(**changes: Any) -> bytes:
    base: dict[str, Any] = {
        "reader": "desk-1", "reader_connected": True, "mqtt_connected": True,
        "reads_per_s": 12.5, "reader_counters": {"antennas_down": 0}, "disk_state": "ok",
        "outbox_depth": 0, "outbox_max": 100000, "outbox_alarm": False}
    base.update(changes)
    return json.dumps(base).encode()


def _report(store: HealthStore, now: datetime, celsius: float | None) -> None:
    store.offer(f"{TOPIC}/health", _health(temperature_c=celsius), now)
    store.offer(f"{TOPIC}/status", b"online", now)
    store.flush()


def _scan(engine: Engine, now: datetime, limit: float = LIMIT) -> ScanResult:
    with Session(engine) as session:
        result = scan_reader_health(session, now, 60, temperature_limit_c=limit)
        session.commit()
    return result


def _overheat(engine: Engine) -> list[tuple[bool, str]]:
    with Session(engine) as session:
        return [(a.resolved_at is None, a.detail) for a in session.exec(
            select(Alert).where(Alert.kind == "reader_overheat").order_by(col(Alert.id)))]


def test_overheat_is_raised_once_kept_while_cooling_and_resolved_once(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    now = utcnow()
    _report(store, now, 45.0)
    assert _scan(engine, now).raised == 0
    _report(store, now, 71.0)
    assert _scan(engine, now).raised == 1
    assert _scan(engine, now).raised == 0  # a second scan raises nothing again
    [(open_, detail)] = _overheat(engine)
    assert open_ and "71 °C" in detail and "limit 70" in detail
    _report(store, now, LIMIT - OVERHEAT_HYSTERESIS_C + 1)  # cooler, but not cool enough
    assert _scan(engine, now).resolved == 0 and _overheat(engine)[0][0]
    _report(store, now, LIMIT - OVERHEAT_HYSTERESIS_C - 1)
    assert _scan(engine, now).resolved == 1 and not _overheat(engine)[0][0]
    assert _scan(engine, now).resolved == 0
    _report(store, now, LIMIT - 1)  # below the limit: a closed alert is not raised again
    assert _scan(engine, now).raised == 0
    _report(store, now, LIMIT)  # at the limit: a new alert
    assert _scan(engine, now).raised == 1
    assert [open_ for open_, _ in _overheat(engine)] == [False, True]


def test_the_limit_is_configurable_and_no_temperature_raises_nothing(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    now = utcnow()
    _report(store, now, 55.0)
    assert _scan(engine, now).raised == 0
    assert _scan(engine, now, limit=50.0).raised == 1
    _report(store, now, None)  # an R200 or LLRP reader: its protocol gives no temperature
    assert _scan(engine, now, limit=50.0).resolved == 1
    assert load_settings(reader_temperature_alert_c=60).reader_temperature_alert_c == 60
    with pytest.raises(ConfigError, match="reader_temperature_alert_c"):
        load_settings(reader_temperature_alert_c=-1)


def test_a_reader_that_is_down_raises_only_reader_down(engine: Engine) -> None:
    """Its last temperature is stale: the reader is down, not (known to be) hot."""
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    now = utcnow()
    _report(store, now, 90.0)
    store.offer(f"{TOPIC}/status", b"offline", now)
    store.flush()
    _scan(engine, now)
    with Session(engine) as session:
        assert [a.kind for a in session.exec(select(Alert))] == ["reader_down"]


@pytest.mark.parametrize("value", ["80", True, 1e9, -273.15, 301, [80], {"c": 80}])
def test_a_temperature_that_is_not_a_sane_number_is_refused(engine: Engine,
                                                            value: object) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    with pytest.raises(HealthRejected, match="schema"):
        store.offer(f"{TOPIC}/health", _health(temperature_c=value), utcnow())
    assert store.flush() == 0


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_a_temperature_that_is_not_finite_is_refused(engine: Engine, token: str) -> None:
    register_reader(engine, reader_id="desk-1")
    payload = _health(temperature_c=12.5).replace(b"12.5", token.encode())
    with pytest.raises(HealthRejected, match="malformed"):
        HealthStore(engine).offer(f"{TOPIC}/health", payload, utcnow())


def test_temperature_and_overheat_are_exported(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    register_reader(engine, reader_id="desk-2")
    store = HealthStore(engine)
    now = utcnow()
    _report(store, now, 82.0)
    store.offer("kitledger/v1/north/north-store/desk-2/health",
                _health(reader="desk-2"), now)
    store.flush()
    with Session(engine) as session:
        assert session.get(ReaderHealth, "desk-1").temperature_c == 82.0  # type: ignore[union-attr]
    try:
        watch_reader_health(engine, 60, per_reader=False, temperature_limit_c=LIMIT)
        text = generate_latest().decode()
        assert 'kitledger_readers{agency="north",state="overheat"} 1.0' in text
        assert "kitledger_reader_temperature_celsius{" not in text
        watch_reader_health(engine, 60, per_reader=True, temperature_limit_c=LIMIT)
        text = generate_latest().decode()
        assert ('kitledger_reader_temperature_celsius{agency="north",reader="desk-1"} 82.0'
                in text)
        assert 'reader="desk-2"} 82.0' not in text
        assert 'kitledger_reader_temperature_celsius{agency="north",reader="desk-2"}' not in text
    finally:
        watch_reader_health(None, 60, per_reader=False)


SERIAL_AGENT_TOML = """\
[reader]
id = "desk-1"
agency = "north"
site = "north-store"
role = "issue_desk"
protocol = "thingmagic"
port = "{port}"

[reader.settings]
antennas = [1]
temperature_interval = 0.3
reconnect_initial = 0.05

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

[antennas.1]
zone = "desk"
"""


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_simulated_module_overheating_raises_one_alert_through_the_whole_stack(
        engine: Engine, mosquitto: Any, tmp_path: Path) -> None:
    """ThingMagic simulator on a pty -> `kitledger-agent run` -> Mosquitto -> the API's
    health listener: heated past the limit, one alert; cooled, resolved once."""
    reader = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    key_file = tmp_path / "reader.key"
    key_file.write_bytes(reader.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                  NoEncryption()))
    os.chmod(key_file, 0o600)
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
                             reader_health_timeout_s=3600, reader_temperature_alert_c=LIMIT)
    listener = HealthListener(settings, engine)
    listener.start()
    agent: subprocess.Popen[bytes] | None = None

    def temperature() -> float | None:
        with Session(engine) as session:
            row = session.get(ReaderHealth, "desk-1")
            return None if row is None else row.temperature_c

    try:
        assert listener.subscribed.wait(10)
        with ReaderSimulator(scenario=Scenario(protocol="thingmagic")) as sim:
            config = tmp_path / "agent.toml"
            config.write_text(SERIAL_AGENT_TOML.format(port=sim.port_path,
                                                       mqtt_port=mosquitto.port))
            agent = subprocess.Popen([AGENT, "run", "--config", str(config)], cwd=tmp_path,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if not wait_for(lambda: temperature() == ROOM_TEMPERATURE, 30):
                agent.terminate()
                raise AssertionError(agent.communicate(timeout=20)[1].decode()[-2000:])
            listener.scan()
            assert _overheat(engine) == []
            sim.set_temperature(85)
            assert wait_for(lambda: temperature() == 85, 20), temperature()
            listener.scan()
            listener.scan()
            [(open_, detail)] = _overheat(engine)
            assert open_ and "85 °C" in detail
            sim.set_temperature(50)
            assert wait_for(lambda: temperature() == 50, 20), temperature()
            listener.scan()
            listener.scan()
            assert [open_ for open_, _ in _overheat(engine)] == [False]
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(20)
        listener.stop()
