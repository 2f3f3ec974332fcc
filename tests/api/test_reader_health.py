"""Reader health into the API: an agent's health and status messages stored as the latest
state of its reader, hostile ones dropped and counted, reader alerts raised once and resolved.

End to end with the real parts: `kitledger-agent run` over the simulated LLRP reader publishes
health to a real Mosquitto, the API's `HealthListener` stores it; the agent killed (its Last
Will says "offline") raises `reader_down` once, resolved when it is back; an unplugged antenna
raises `antenna_fault`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.config import load_settings
from api.custody.reader_health import scan_reader_health
from api.db import utcnow
from api.ingest.health import MAX_HEALTH_BYTES, HealthListener, HealthRejected, HealthStore
from api.metrics import READER_HEALTH_MESSAGES, watch_reader_health
from api.models import Alert, Reader, ReaderHealth, ReaderStatus
from api.models.registry import ReaderRole
from api.webhook_outbox import raise_alerts
from hardware.simulator import Scenario, TagSpec
from hardware.simulator.llrp import LlrpReaderSimulator
from tests.api.api_support import register_reader
from tests.api.test_llrp_end_to_end import AGENT, AGENT_TOML, BADGE
from tests.fixtures.polling import wait_for

TOPIC = "kitledger/v1/north/north-store/desk-1"
NO_HEALTH = ReaderHealth(reader_id="-", agency_id="-", site_id="-")
"""Stands for a reader with no row yet, in waits on its fields."""


def _health(**changes: Any) -> dict[str, Any]:
    """A health message as the agent sends it (the fields the API reads, and some others)."""
    base: dict[str, Any] = {
        "reader": "desk-1", "reader_connected": True, "mqtt_connected": True,
        "last_error": None, "reads_per_s": 12.5,
        "reader_counters": {"antenna_faults": 0, "antennas_down": 0, "reconnects": 1},
        "reads_total": 100, "disk_state": "ok", "outbox_depth": 0, "outbox_max": 100000,
        "outbox_alarm": False, "next_seq": 7}
    base.update(changes)
    return base


def _rows(engine: Engine) -> list[ReaderHealth]:
    with Session(engine) as session:
        return list(session.exec(select(ReaderHealth)).all())


def _alerts(engine: Engine) -> list[tuple[str, str | None, bool]]:
    with Session(engine) as session:
        return [(a.kind, a.reader_id, a.resolved_at is None)
                for a in session.exec(select(Alert).order_by(col(Alert.id)))]


def _dropped(reason: str) -> float:
    return float(READER_HEALTH_MESSAGES.labels(reason)._value.get())


def test_a_valid_health_message_is_stored_as_the_readers_latest(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    now = utcnow()
    store.offer(f"{TOPIC}/health", json.dumps(_health(temperature_c=41.5)).encode(), now)
    store.offer(f"{TOPIC}/status", b"online", now)
    assert store.flush() == 1
    store.offer(f"{TOPIC}/health", json.dumps(_health(reads_per_s=3.0)).encode(), now)
    assert store.flush() == 1
    [row] = _rows(engine)
    assert (row.agency_id, row.site_id, row.online, row.reads_per_s, row.disk_state) == (
        "north", "north-store", True, 3.0, "ok")


HOSTILE: list[tuple[str, str, bytes]] = [
    ("oversize", "health", json.dumps(_health(pad="x" * MAX_HEALTH_BYTES)).encode()),
    ("malformed", "health", b"{not json"),
    ("malformed", "health", b"[1, 2, 3]"),
    ("malformed", "health", json.dumps(_health(reads_per_s=1.0)).replace("1.0", "NaN").encode()),
    ("malformed", "health", json.dumps({f"k{i}": i for i in range(100)}).encode()),
    ("malformed", "health", b"[" * (MAX_HEALTH_BYTES - 1)),
    ("schema", "health", json.dumps(_health(reader_connected="yes")).encode()),
    ("schema", "health", json.dumps(_health(reads_per_s=-1)).encode()),
    ("schema", "health", json.dumps(_health(outbox_depth=True)).encode()),
    ("schema", "health", json.dumps(_health(disk_state="fine")).encode()),
    ("schema", "health", json.dumps(_health(reader_counters={"antennas_down": "2"})).encode()),
    ("schema", "health", json.dumps({"reader": "desk-1"}).encode()),
    ("mismatch", "health", json.dumps(_health(reader="desk-2")).encode()),
    ("malformed", "status", b"online\x00"),
    ("malformed", "status", b"ONLINE"),
]


@pytest.mark.parametrize(("reason", "leaf", "payload"), HOSTILE,
                         ids=[f"{r}-{i}" for i, (r, _, _) in enumerate(HOSTILE)])
def test_hostile_health_is_refused_and_nothing_stored(
        engine: Engine, reason: str, leaf: str, payload: bytes) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    with pytest.raises(HealthRejected) as refused:
        store.offer(f"{TOPIC}/{leaf}", payload, utcnow())
    assert str(refused.value) == reason
    assert store.flush() == 0 and _rows(engine) == []


@pytest.mark.parametrize("topic", [
    "kitledger/v1/south/north-store/desk-1/health",   # another agency's topic for our reader
    "kitledger/v1/north/south-store/desk-1/health",   # the wrong site
    "kitledger/v1/north/north-store/desk-9/health",   # no such reader
    "kitledger/v1/north/north-store/revoked-1/health",  # revoked
])
def test_health_for_an_unknown_or_mismatched_reader_is_dropped_and_counted(
        engine: Engine, topic: str) -> None:
    register_reader(engine, reader_id="desk-1")
    register_reader(engine, reader_id="revoked-1")
    register_reader(engine, agency_id="south", site_id="south-store", reader_id="south-1")
    with Session(engine) as session:
        revoked = session.get(Reader, "revoked-1")
        assert revoked is not None
        revoked.status = ReaderStatus.REVOKED
        session.add(revoked)
        session.commit()
    store = HealthStore(engine)
    before = _dropped("unknown_reader")
    reader = topic.split("/")[4]
    store.offer(topic, json.dumps(_health(reader=reader)).encode(), utcnow())
    assert store.flush() == 0
    assert _rows(engine) == [] and _dropped("unknown_reader") == before + 1


@pytest.mark.parametrize("topic", [
    "kitledger/v1/north/north-store/desk-1/events", "kitledger/v1/north/+/desk-1/health",
    "kitledger/v2/north/north-store/desk-1/health", "kitledger/v1/north/north-store/health",
    "kitledger/v1/" + "n" * 200 + "/north-store/desk-1/health"])
def test_a_topic_that_is_not_a_readers_health_is_refused(engine: Engine, topic: str) -> None:
    with pytest.raises(HealthRejected, match="topic"):
        HealthStore(engine).offer(topic, json.dumps(_health()).encode(), utcnow())


def test_alerts_are_raised_once_and_resolved_when_healthy(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    store = HealthStore(engine)
    now = utcnow()
    sick = _health(reader_counters={"antennas_down": 1, "antenna_faults": 1},
                   disk_state="low", outbox_alarm=True)
    store.offer(f"{TOPIC}/health", json.dumps(sick).encode(), now)
    store.offer(f"{TOPIC}/status", b"offline", now)
    store.flush()
    for _ in range(2):  # the second scan raises nothing again
        with Session(engine) as session:
            scan_reader_health(session, now, 60)
            session.commit()
    assert sorted(_alerts(engine)) == [("antenna_fault", "desk-1", True),
                                       ("disk_low", "desk-1", True),
                                       ("outbox_full", "desk-1", True),
                                       ("reader_down", "desk-1", True)]
    store.offer(f"{TOPIC}/health", json.dumps(_health()).encode(), now)
    store.offer(f"{TOPIC}/status", b"online", now)
    store.flush()
    with Session(engine) as session:
        result = scan_reader_health(session, now, 60)
        session.commit()
    assert result.resolved == 4 and all(not open_ for _, _, open_ in _alerts(engine))
    # Silence past the timeout is down too, unless the listener itself was not listening.
    later = now + timedelta(seconds=61)
    with Session(engine) as session:
        assert scan_reader_health(session, later, 60, trust_silence=False).raised == 0
        assert scan_reader_health(session, later, 60).raised == 1
        session.commit()
    assert _alerts(engine)[-1] == ("reader_down", "desk-1", True)


def _publish(port: int, topic: str, payload: bytes, *, retain: bool = False) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hostile-publisher",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_agent_health_reaches_the_api_and_a_killed_agent_raises_reader_down_once(
        engine: Engine, mosquitto: Any, tmp_path: Path) -> None:
    reader = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    key_file = tmp_path / "reader.key"
    key_file.write_bytes(reader.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                  NoEncryption()))
    os.chmod(key_file, 0o600)
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
                             reader_health_timeout_s=3600)
    listener = HealthListener(settings, engine)
    listener.start()
    assert listener.subscribed.wait(10)
    scenario = Scenario(tags=(TagSpec(bytes.fromhex(BADGE), {1: -45}, arrive=0.0),),
                        protocol="llrp", reads_per_second=50)
    config = tmp_path / "agent.toml"
    agent: subprocess.Popen[bytes] | None = None

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen([AGENT, "run", "--config", str(config)], cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def health() -> ReaderHealth | None:
        rows = _rows(engine)
        return rows[0] if rows else None

    def down_alerts() -> list[bool]:
        return [open_ for kind, _, open_ in _alerts(engine) if kind == "reader_down"]

    try:
        with LlrpReaderSimulator(scenario) as sim:
            config.write_text(AGENT_TOML.format(url=sim.url, mqtt_port=mosquitto.port,
                                                badge=BADGE))
            agent = spawn()
            assert wait_for(lambda: (h := health()) is not None and h.online is True
                            and h.reader_connected is True and (h.reads_per_s or 0) > 0, 30)
            # Hostile messages on the wire: another agency's topic, an oversized payload.
            _publish(mosquitto.port, "kitledger/v1/south/north-store/desk-1/health",
                     json.dumps(_health(reads_per_s=999.0)).encode())
            _publish(mosquitto.port, f"{TOPIC}/health", b"{" * (MAX_HEALTH_BYTES + 1))
            sim.set_antenna(2, False)
            assert wait_for(lambda: (health() or NO_HEALTH).antennas_down == 1, 20)
            assert (health() or NO_HEALTH).reads_per_s != 999.0
            listener.scan()
            assert ("antenna_fault", "desk-1", True) in _alerts(engine)
            sim.set_antenna(2, True)
            assert wait_for(lambda: (health() or NO_HEALTH).antennas_down == 0, 20)
            agent.send_signal(signal.SIGKILL)
            agent.wait(10)
            assert wait_for(lambda: (health() or NO_HEALTH).online is False, 20)
            listener.scan()
            listener.scan()
            assert down_alerts() == [True]  # raised once
            assert ("antenna_fault", "desk-1", False) in _alerts(engine)  # resolved
            agent = spawn()
            assert wait_for(lambda: (health() or NO_HEALTH).online is True, 30)
            listener.scan()
            assert down_alerts() == [False]  # resolved on its return
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(20)
        listener.stop()


@pytest.mark.parametrize("kind", ["reader_down", "reader_overheat"])
def test_the_database_refuses_a_second_open_alert_of_a_kind_for_a_reader(
        engine: Engine, kind: str) -> None:
    register_reader(engine, reader_id="desk-1")
    alert = {"agency_id": "north", "kind": kind, "asset_id": None,
             "reader_id": "desk-1", "site_id": "north-store", "detail": "down",
             "created_at": utcnow(), "resolved_at": None}
    with Session(engine) as session:
        raise_alerts(session, [alert])
        session.commit()
    with Session(engine) as session, pytest.raises(IntegrityError):
        raise_alerts(session, [alert])
        session.commit()
    with Session(engine) as session:  # another kind, or a custody alert, is still allowed
        raise_alerts(session, [{**alert, "kind": "antenna_fault"},
                               {**alert, "kind": "unauthorised_removal"},
                               {**alert, "kind": "unauthorised_removal"}])
        session.commit()
    assert len(_alerts(engine)) == 4


@pytest.mark.parametrize("engine", ["postgresql"], indirect=True)
def test_two_listeners_store_alike_but_only_the_elected_one_raises(
        engine: Engine, mosquitto: Any) -> None:
    register_reader(engine, reader_id="desk-1")
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}")
    first = HealthListener(settings, engine, client_id="health-a")
    second = HealthListener(settings, engine, client_id="health-b")
    first.start()
    second.start()
    try:
        assert first.subscribed.wait(10) and second.subscribed.wait(10)
        _publish(mosquitto.port, f"{TOPIC}/status", b"offline", retain=True)
        assert wait_for(lambda: [h.online for h in _rows(engine)] == [False], 10)
        results = [first.scan(), second.scan(), first.scan(), second.scan()]
        assert sum(1 for r in results if r is not None) == 2  # one of them holds the role
        assert [kind for kind, _, _ in _alerts(engine)] == ["reader_down"]
    finally:
        first.stop()
        second.stop()


def test_metrics_count_readers_by_agency_and_per_reader_only_when_asked(engine: Engine) -> None:
    register_reader(engine, reader_id="desk-1")
    register_reader(engine, reader_id="desk-2")
    store = HealthStore(engine)
    now = utcnow()
    store.offer(f"{TOPIC}/health", json.dumps(_health()).encode(), now)
    store.offer("kitledger/v1/north/north-store/desk-2/health", json.dumps(_health(
        reader="desk-2", reader_counters={"antennas_down": 2})).encode(), now)
    store.offer("kitledger/v1/north/north-store/desk-2/status", b"offline", now)
    store.flush()
    try:
        watch_reader_health(engine, 60, per_reader=False)
        text = generate_latest().decode()
        assert 'kitledger_readers{agency="north",state="up"} 1.0' in text
        assert 'kitledger_readers{agency="north",state="down"} 1.0' in text
        assert 'kitledger_readers{agency="north",state="antenna_fault"} 1.0' in text
        assert "kitledger_reader_up{" not in text
        watch_reader_health(engine, 60, per_reader=True)
        text = generate_latest().decode()
        assert 'kitledger_reader_up{agency="north",reader="desk-1"} 1.0' in text
        assert 'kitledger_reader_up{agency="north",reader="desk-2"} 0.0' in text
        assert 'kitledger_reader_reads_per_second{agency="north",reader="desk-1"} 12.5' in text
    finally:
        watch_reader_health(None, 60, per_reader=False)
