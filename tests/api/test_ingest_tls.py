"""The ingest worker against a real Mosquitto that asks for TLS: a client certificate, or a
username and password over TLS. It stores what readers send when its settings match the broker
and connects to nothing when they do not (plain text, no certificate, an untrusted broker, a
wrong password), saying why without a secret. Certificates are made at test time."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from api.config import Settings, load_settings
from api.errors import ConfigError
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import IngestedObservation
from tests.api.api_support import RegisteredReader, stored
from tests.fixtures.polling import wait_for
from tests.fixtures.ports import free_port
from tests.reader_agent.test_tls import TlsBroker, tls_broker
from tests.reader_agent.tls_support import issue_client, make_pki

__all__ = ["tls_broker"]

sqlite_only = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
"""The broker's security is the same on either database."""

API_USER = "desk-1"
"""The user `TlsBroker`'s password file holds (the name is the broker's business only)."""


@contextmanager
def worker(engine: Engine, settings: Settings) -> Iterator[IngestWorker]:
    running = IngestWorker(settings, IngestPipeline(engine, settings))
    running.start()
    try:
        yield running
    finally:
        running.stop()


def publish_plain(port: int, topic: str, payload: bytes) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-reader")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def api_settings(port: int, **security: Any) -> Settings:
    return load_settings(mqtt_url=f"mqtts://127.0.0.1:{port}", ingest_batch_wait_ms=5,
                         **security)


def assert_stores_over(engine: Engine, broker: TlsBroker, reader: RegisteredReader,
                       settings: Settings) -> None:
    with worker(engine, settings) as running:
        assert running.wait_subscribed(15), running._transport.last_error
        publish_plain(broker.broker.port, reader.topic, reader.signed(0))
        assert wait_for(lambda: stored(engine, IngestedObservation) == 1, 20)


def assert_never_connects(engine: Engine, settings: Settings) -> str:
    """The worker does not subscribe; returns the failure it records."""
    with worker(engine, settings) as running:
        transport = running._transport
        assert wait_for(lambda: transport.last_error is not None, 15)
        assert not running.wait_subscribed(0.5)
        return str(transport.last_error)


@sqlite_only
def test_ingest_with_a_client_certificate_stores_what_readers_send(
        engine: Engine, reader: RegisteredReader, tls_broker: TlsBroker) -> None:
    cert, key = issue_client(tls_broker.pki, "kitledger-api")
    settings = api_settings(tls_broker.cert_port, mqtt_tls_ca=tls_broker.pki.ca,
                            mqtt_tls_cert=cert, mqtt_tls_key=key)
    assert_stores_over(engine, tls_broker, reader, settings)


@sqlite_only
def test_ingest_with_a_password_over_tls_stores_what_readers_send(
        engine: Engine, reader: RegisteredReader, tls_broker: TlsBroker,
        tmp_path: Path) -> None:
    password_file = tmp_path / "mqtt.password"
    password_file.write_text(tls_broker.password + "\n")
    settings = api_settings(tls_broker.password_port, mqtt_tls_ca=tls_broker.pki.ca,
                            mqtt_username=API_USER, mqtt_password_file=password_file)
    assert_stores_over(engine, tls_broker, reader, settings)


@sqlite_only
def test_plain_text_to_a_tls_port_never_connects(
        engine: Engine, tls_broker: TlsBroker) -> None:
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{tls_broker.cert_port}")
    assert_never_connects(engine, settings)


@sqlite_only
def test_no_client_certificate_never_connects(
        engine: Engine, tls_broker: TlsBroker) -> None:
    settings = api_settings(tls_broker.cert_port, mqtt_tls_ca=tls_broker.pki.ca)
    assert_never_connects(engine, settings)


@sqlite_only
def test_an_untrusted_broker_is_refused_and_named_once(
        engine: Engine, tls_broker: TlsBroker, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A broker whose certificate the CA did not sign may be a machine in the middle: the
    worker sends it nothing (no password either) and logs the cause once, not per retry."""
    other = make_pki(tmp_path / "other-pki", "some other CA")
    password_file = tmp_path / "mqtt.password"
    password_file.write_text(tls_broker.password)
    caplog.set_level(logging.WARNING, logger="api.ingest")
    settings = api_settings(tls_broker.password_port, mqtt_tls_ca=other.ca,
                            mqtt_username=API_USER, mqtt_password_file=password_file)
    error = assert_never_connects(engine, settings)
    wait_for(lambda: False, 1.5)  # a retry or two (backoff 1 s)
    assert "not trusted" in error and "mqtt_tls_ca" in error
    assert [r.getMessage() for r in caplog.records].count(
        f"ingest worker: mqtt 127.0.0.1:{tls_broker.password_port}: {error} (retrying)") == 1
    assert tls_broker.password not in caplog.text


@sqlite_only
def test_a_wrong_password_never_connects_and_is_not_logged(
        engine: Engine, tls_broker: TlsBroker, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    wrong = secrets.token_urlsafe(18)
    password_file = tmp_path / "mqtt.password"
    password_file.write_text(wrong)
    settings = api_settings(tls_broker.password_port, mqtt_tls_ca=tls_broker.pki.ca,
                            mqtt_username=API_USER, mqtt_password_file=password_file)
    error = assert_never_connects(engine, settings)
    assert "refused" in error
    assert wrong not in caplog.text and tls_broker.password not in caplog.text


# Settings ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("overrides", "message"), [
    ({"mqtt_url": "mqtt://127.0.0.1:1883", "mqtt_tls_ca": "/etc/ca.pem"}, "need an mqtts://"),
    ({"mqtt_url": "mqtts://broker", "mqtt_tls_cert": "/etc/api.pem"}, "given together"),
    ({"mqtt_url": "mqtts://broker", "mqtt_tls_key": "/etc/api.key"}, "given together"),
    ({"mqtt_password_file": "/etc/mqtt.password"}, "needs mqtt_username"),
    ({"mqtt_url": "mqtts://api:hunter2hunter2@broker:8883"}, "must not hold credentials"),
    ({"mqtt_url": "mqtt://api@broker"}, "must not hold credentials"),
    ({"mqtt_username": ""}, "mqtt_username"),
])
def test_incoherent_broker_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(**overrides)
    assert "hunter2" not in str(caught.value)


def test_mqtts_means_tls_on_port_8883_by_default() -> None:
    settings = load_settings(mqtt_url="mqtts://broker.example")
    assert settings.mqtt_tls and settings.mqtt_port == 8883
    plain = load_settings(mqtt_url="mqtt://broker.example")
    assert not plain.mqtt_tls and plain.mqtt_port == 1883


def test_relative_broker_files_are_found_beside_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "etc" / "kitledger.toml"
    config.parent.mkdir()
    config.write_text('mqtt_url = "mqtts://broker"\nmqtt_tls_ca = "pki/ca.pem"\n'
                      'mqtt_username = "kitledger-api"\nmqtt_password_file = "mqtt.password"\n')
    settings = load_settings(config)
    assert settings.mqtt_tls_ca == config.parent / "pki" / "ca.pem"
    assert settings.mqtt_password_file == config.parent / "mqtt.password"


@sqlite_only
@pytest.mark.parametrize("broken", ["key", "missing_ca", "password_size", "password_bytes"])
def test_unusable_broker_files_stop_the_worker_without_showing_them(
        broken: str, engine: Engine, tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    secret_text = secrets.token_hex(16)
    password_file = tmp_path / "mqtt.password"
    password_file.write_text("fine")
    security: dict[str, Any] = {"mqtt_tls_ca": pki.ca, "mqtt_tls_cert": pki.client_cert,
                                "mqtt_tls_key": pki.client_key, "mqtt_username": "api",
                                "mqtt_password_file": password_file}
    if broken == "key":
        pki.client_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret_text}\n")
        expected = "cannot load the mqtt_tls_"
    elif broken == "missing_ca":
        security["mqtt_tls_ca"] = tmp_path / "absent.pem"
        expected = "cannot load the mqtt_tls_"
    elif broken == "password_size":
        password_file.write_text(secret_text * 100)
        expected = "too large"
    else:
        password_file.write_bytes(b"\xff\xfe" + secret_text.encode())
        expected = "not UTF-8"
    settings = api_settings(free_port(), **security)
    with pytest.raises(ConfigError, match=expected) as caught:
        IngestWorker(settings, IngestPipeline(engine, settings))
    assert secret_text not in str(caught.value)
