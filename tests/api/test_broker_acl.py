"""The shipped broker configuration (`hardware/pi/mosquitto-tls.conf.example` with its ACL file,
used as they are but for paths and port) on a real Mosquitto, with the real ingest worker
connected by its own client certificate and two readers by theirs. Reader A tries what a
stolen or misbehaving Pi would: publish as reader B, forge B's decisions, acks or status,
subscribe to B's answers, to everything, or join the API's shared subscription. The broker
refuses each one, the API never hears of it, and B's answers reach B alone."""

from __future__ import annotations

import getpass
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine

from api.config import load_settings
from api.ingest.health import HealthListener
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import IngestedObservation, QuarantinedMessage
from tests.api.api_support import RegisteredReader, register_radio, register_reader, stored
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.paths import REPO_ROOT
from tests.reader_agent.tls_support import Pki, issue_client, make_pki

PI = REPO_ROOT / "hardware" / "pi"
CONF_EXAMPLE = PI / "mosquitto-tls.conf.example"
ACL_EXAMPLE = PI / "mosquitto-kitledger.acl.example"
API_USER = "kitledger-api"
WAIT_S = 20.0


def shipped_config(port: int, pki: Pki, data: Path) -> str:
    """The example configuration, pointed at this test's port, certificates and folders."""
    text = CONF_EXAMPLE.read_text()
    for shipped, here in [
        ("listener 8883\n", f"listener {port} 127.0.0.1\n"),
        ("cafile /etc/mosquitto/ca/ca.pem\n", f"cafile {pki.ca}\n"),
        ("certfile /etc/mosquitto/certs/broker.crt\n", f"certfile {pki.server_cert}\n"),
        ("keyfile /etc/mosquitto/certs/broker.key\n", f"keyfile {pki.server_key}\n"),
        ("acl_file /etc/mosquitto/kitledger.acl\n", f"acl_file {ACL_EXAMPLE}\n"),
        ("persistence_location /var/lib/mosquitto/\n", f"persistence_location {data}/\n"),
    ]:
        assert shipped in text, f"{CONF_EXAMPLE.name} no longer has {shipped!r}"
        text = text.replace(shipped, here)
    return text + f"user {getpass.getuser()}\nlog_dest file {data}/mosquitto.log\n"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[tuple[MosquittoBroker, Pki]]:
    data = tmp_path / "mosquitto"
    data.mkdir()
    pki = make_pki(tmp_path / "pki")
    broker = MosquittoBroker(data, free_port())
    broker.config_path.write_text(shipped_config(broker.port, pki, data))
    broker.start()
    yield broker, pki
    broker.kill()


class CertClient:
    """An MQTT v5 client holding a certificate for `name`; records what it is sent and the
    broker's answers to its subscribes and publishes."""

    def __init__(self, port: int, pki: Pki, name: str) -> None:
        cert, key = issue_client(pki, name)
        self.messages: list[tuple[str, bytes]] = []
        self._answers: dict[int, list[ReasonCode]] = {}
        self._answered = threading.Condition()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{name}",
                                  protocol=mqtt.MQTTv5)
        self.client.tls_set(ca_certs=str(pki.ca), certfile=str(cert), keyfile=str(key))
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.append((message.topic, bytes(message.payload)))

    def _answer(self, mid: int, codes: list[ReasonCode]) -> None:
        with self._answered:
            self._answers[mid] = codes
            self._answered.notify_all()

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      codes: list[ReasonCode], properties: Properties | None) -> None:
        self._answer(mid, codes)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, code: ReasonCode,
                    properties: Properties | None) -> None:
        self._answer(mid, [code])

    def _wait(self, mid: int) -> list[ReasonCode]:
        with self._answered:
            assert self._answered.wait_for(lambda: mid in self._answers, WAIT_S)
            return self._answers.pop(mid)

    def subscribe(self, topic: str) -> ReasonCode:
        """The broker's answer to subscribing to `topic` (granted QoS, or a refusal)."""
        _, mid = self.client.subscribe(topic, qos=1)
        assert mid is not None
        return self._wait(mid)[0]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> ReasonCode:
        """The broker's PUBACK reason for a QoS 1 publish."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return self._wait(info.mid)[0]

    def topics(self) -> set[str]:
        return {topic for topic, _ in self.messages}

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def cert_clients(port: int, pki: Pki, *names: str) -> Iterator[list[CertClient]]:
    clients = [CertClient(port, pki, name) for name in names]
    try:
        yield clients
    finally:
        for client in clients:
            client.close()


def answers(reader: RegisteredReader) -> tuple[str, str]:
    base = reader.topic.removesuffix("/events")
    return f"{base}/decisions", f"{base}/acks"


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_a_reader_can_neither_speak_for_another_nor_read_its_answers(
        engine: Engine, acl_broker: tuple[MosquittoBroker, Pki]) -> None:
    broker, pki = acl_broker
    reader_a = register_reader(engine, reader_id="rdr-a")
    reader_b = register_reader(engine, reader_id="rdr-b")
    register_radio(engine)
    cert, key = issue_client(pki, API_USER)
    settings = load_settings(mqtt_url=f"mqtts://127.0.0.1:{broker.port}", mqtt_tls_ca=pki.ca,
                             mqtt_tls_cert=cert, mqtt_tls_key=key, ingest_batch_wait_ms=5,
                             mqtt_share_group=f"ingest-{secrets.token_hex(8)}")
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    try:
        assert worker.wait_subscribed(WAIT_S)
        with cert_clients(broker.port, pki, "rdr-a", "rdr-b") as (a, b):
            b_decisions, b_acks = answers(reader_b)
            a_decisions, a_acks = answers(reader_a)
            for topic in (a_decisions, a_acks, b_decisions, b_acks):
                assert not (a if topic in (a_decisions, a_acks) else b).subscribe(
                    topic).is_failure, topic
            # A's reach into B's answers, into every reader's traffic, into a share group:
            # Mosquitto 2.0's acl_file grants every subscription and checks each message
            # against `read` as it delivers it, so these must carry nothing of B's. (A group
            # of the API's name would take a share of the observations: its name is kept
            # unguessable, docs/deploy.md.)
            for topic in (b_decisions, b_acks, "kitledger/v1/+/+/+/events",
                          "$share/kitledger-ingest/kitledger/v1/+/+/+/events",
                          "kitledger/v1/+/+/rdr-b/#", "kitledger/v1/#", "#"):
                a.subscribe(topic)
            # A speaking as B, and as the API to B.
            forged_decision = json.dumps({"seq": 0, "result": "accepted"}).encode()
            forged_ack = json.dumps({"v": 1, "through": 10**9, "missing": []}).encode()
            for topic, payload, retain in [
                    (reader_b.topic, reader_a.signed(7), False),
                    (reader_b.topic, b"\x00junk", False),
                    (b_decisions, forged_decision, False),
                    (b_acks, forged_ack, False),
                    (reader_b.topic.replace("/events", "/status"), b"offline", True),
                    (reader_b.topic.replace("/events", "/health"), b"{}", False),
                    (a_decisions, forged_decision, False)]:  # nor as the API to itself
                assert a.publish(topic, payload, retain=retain).is_failure, topic
            # Each reader's own observations still go through, and are answered.
            assert not a.publish(reader_a.topic, reader_a.signed(0, session="s1")).is_failure
            for seq in range(20):
                assert not b.publish(reader_b.topic,
                                     reader_b.signed(seq, session="s1")).is_failure
            assert wait_for(lambda: stored(engine, IngestedObservation) == 21, WAIT_S)
            assert wait_for(lambda: {b_decisions, b_acks} <= b.topics(), WAIT_S), b.topics()
            assert wait_for(lambda: {a_decisions, a_acks} <= a.topics(), WAIT_S), a.topics()
            assert all("/rdr-b/" not in topic for topic in a.topics()), a.topics()
            assert all(topic.startswith("kitledger/v1/north/north-store/rdr-b/")
                       for topic in b.topics()), b.topics()
            assert (forged_decision not in [p for _, p in b.messages]
                    and forged_ack not in [p for _, p in b.messages])
    finally:
        worker.stop()
    assert stored(engine, QuarantinedMessage) == 0  # the API never received A's attempts


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_the_health_listener_connects_with_the_apis_certificate(
        engine: Engine, acl_broker: tuple[MosquittoBroker, Pki]) -> None:
    """Reader health and status reach the API over the same TLS as observations (the
    listener once ignored the mqtt_tls_* settings and retried in plain text forever)."""
    broker, pki = acl_broker
    cert, key = issue_client(pki, API_USER)
    settings = load_settings(mqtt_url=f"mqtts://127.0.0.1:{broker.port}", mqtt_tls_ca=pki.ca,
                             mqtt_tls_cert=cert, mqtt_tls_key=key)
    listener = HealthListener(settings, engine)
    listener.start()
    try:
        assert listener.subscribed.wait(WAIT_S), broker.log()[-2000:]
    finally:
        listener.stop()
    assert "wrong version number" not in broker.log()
