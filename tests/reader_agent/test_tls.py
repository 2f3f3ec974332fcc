"""The agent against a real Mosquitto TLS listener: client certificates, username/password over
TLS, and clear, secret-free alarms for an untrusted broker, a wrong password, a missing client
certificate and unreadable credential files. Certificates are made at test time."""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.errors import PublisherError
from reader_agent.identity import load_key

from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.ports import free_port
from tests.reader_agent.agent_support import ListSource, Subscriber, verified_events, wait_for
from tests.reader_agent.tls_support import Pki, make_pki

TLS_LISTENER = """\
listener {port} 127.0.0.1
cafile {pki.ca}
certfile {pki.server_cert}
keyfile {pki.server_key}
"""


class TlsBroker:
    """Plain listener `port` (the test's subscriber), client-certificate listener `cert_port`,
    password listener `password_port` (TLS without client certificates)."""

    def __init__(self, directory: Path, pki: Pki, password: str) -> None:
        self.pki, self.password = pki, password
        self.cert_port, self.password_port = free_port(), free_port()
        passwords = directory / "passwd"
        passwords.write_text(f"desk-1:{password}\n")  # hashed in place, never on a command line
        subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True,
                       capture_output=True)
        port = free_port()
        listeners = (
            f"per_listener_settings true\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
            + TLS_LISTENER.format(port=self.cert_port, pki=pki)
            + "require_certificate true\nuse_identity_as_username true\nallow_anonymous true\n"
            + TLS_LISTENER.format(port=self.password_port, pki=pki)
            + f"allow_anonymous false\npassword_file {passwords}\n")
        self.broker = MosquittoBroker(directory, port, listeners=listeners)


@pytest.fixture
def tls_broker(tmp_path: Path) -> Iterator[TlsBroker]:
    data = tmp_path / "mosquitto"
    data.mkdir()
    broker = TlsBroker(data, make_pki(tmp_path / "pki"), secrets.token_urlsafe(18))
    broker.broker.start()
    yield broker
    broker.broker.kill()


def tls_agent(write_config: Callable[..., Path], tmp_path: Path, port: int, *,
              ca: Path, cert: Pki | None = None, password: str | None = None) -> ReaderAgent:
    extra = f'tls_ca = "{ca}"\n'
    if cert is not None:
        extra += f'tls_cert = "{cert.client_cert}"\ntls_key = "{cert.client_key}"\n'
    if password is not None:
        (tmp_path / "mqtt.password").write_text(password + "\n")
        extra += 'username = "desk-1"\npassword_file = "mqtt.password"\n'
    path = write_config(mqtt_port=port)
    path.write_text(path.read_text().replace('client_id = "agent-desk-1"\n',
                                             f'client_id = "agent-desk-1"\n{extra}'))
    return ReaderAgent(load_config(path), source=ListSource([1, 2, 3]))


@contextmanager
def running(agent: ReaderAgent) -> Iterator[ReaderAgent]:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stopping.set()
        thread.join(15)
        assert not thread.is_alive()


def delivered(sub: Subscriber, agent: ReaderAgent) -> dict[int, bytes]:
    events: dict[int, bytes] = verified_events(
        sub.envelopes(), load_key(agent.config.key_file).public_key())
    return events


def test_client_certificate_over_tls(
        tls_broker: TlsBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber]) -> None:
    sub = subscriber_factory(tls_broker.broker.port)
    agent = tls_agent(write_config, tmp_path, tls_broker.cert_port, ca=tls_broker.pki.ca,
                      cert=tls_broker.pki)
    with running(agent):
        assert wait_for(lambda: len(delivered(sub, agent)) == 3, 20), agent.health(0.0)
        # Publishes may reach the broker before paho has handled the CONNACK (MQTT allows it).
        assert wait_for(lambda: agent.publisher.connected, 10), agent.health(0.0)
    assert sorted(delivered(sub, agent)) == [0, 1, 2]


def test_username_and_password_over_tls(
        tls_broker: TlsBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber]) -> None:
    sub = subscriber_factory(tls_broker.broker.port)
    agent = tls_agent(write_config, tmp_path, tls_broker.password_port, ca=tls_broker.pki.ca,
                      password=tls_broker.password)
    with running(agent):
        assert wait_for(lambda: len(delivered(sub, agent)) == 3, 20), agent.health(0.0)
    assert sorted(delivered(sub, agent)) == [0, 1, 2]


def assert_refused(agent: ReaderAgent, sub: Subscriber, caplog: pytest.LogCaptureFixture,
                   *fragments: str) -> str:
    """The agent keeps its observations, delivers nothing, and says why exactly once."""
    caplog.set_level(logging.INFO, logger="reader_agent")
    with running(agent):
        assert wait_for(lambda: agent.publisher.last_error is not None
                        and agent.outbox.next_seq == 3, 15), agent.health(0.0)
        # Several retries (backoff 1 s): the cause is logged once, not once per attempt.
        wait_for(lambda: False, 1.6)
        error = str(agent.publisher.last_error)
        health = json.dumps(agent.health(0.0))
        assert not agent.publisher.connected and agent.outbox.depth == 3
    assert all(fragment in error for fragment in fragments), error
    assert sub.payloads("/events") == []
    alarms = [r for r in caplog.records if r.levelno >= logging.ERROR and error in r.getMessage()]
    assert len(alarms) == 1, [r.getMessage() for r in caplog.records]
    assert error in health
    return caplog.text + error + health


def test_untrusted_broker_certificate_is_refused_and_alarmed(
        tls_broker: TlsBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture) -> None:
    other = make_pki(tmp_path / "other-pki", "some other CA")
    sub = subscriber_factory(tls_broker.broker.port)
    agent = tls_agent(write_config, tmp_path, tls_broker.password_port, ca=other.ca,
                      password=tls_broker.password)
    text = assert_refused(agent, sub, caplog, "not trusted", "tls_ca")
    assert tls_broker.password not in text


def test_wrong_password_is_refused_without_revealing_either_password(
        tls_broker: TlsBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber], caplog: pytest.LogCaptureFixture) -> None:
    wrong = secrets.token_urlsafe(18)
    sub = subscriber_factory(tls_broker.broker.port)
    agent = tls_agent(write_config, tmp_path, tls_broker.password_port, ca=tls_broker.pki.ca,
                      password=wrong)
    text = assert_refused(agent, sub, caplog, "refused")
    assert wrong not in text and tls_broker.password not in text


def test_missing_client_certificate_is_refused(
        tls_broker: TlsBroker, write_config: Callable[..., Path], tmp_path: Path,
        subscriber_factory: Callable[..., Subscriber]) -> None:
    sub = subscriber_factory(tls_broker.broker.port)
    agent = tls_agent(write_config, tmp_path, tls_broker.cert_port, ca=tls_broker.pki.ca)
    with running(agent):
        assert wait_for(lambda: agent.publisher.last_error is not None
                        and agent.outbox.next_seq == 3, 15), agent.health(0.0)
        assert not agent.publisher.connected and agent.outbox.depth == 3
        assert "client certificate: tls_cert" in str(agent.publisher.last_error)
    assert sub.payloads("/events") == []


def test_a_plain_client_at_a_tls_port_is_not_told_to_check_tls_cert(
        tls_broker: TlsBroker, write_config: Callable[..., Path]) -> None:
    """No TLS configured: the hint names the setting that is missing, not one never set."""
    agent = ReaderAgent(load_config(write_config(mqtt_port=tls_broker.cert_port)),
                        source=ListSource([1]))
    with running(agent):
        assert wait_for(lambda: agent.publisher.last_error is not None, 15), agent.health(0.0)
    error = str(agent.publisher.last_error)
    assert "before the broker accepted it" in error and "a TLS port needs tls_ca" in error
    assert "tls_cert" not in error and "tls_key" not in error


@pytest.mark.parametrize("broken", ["tls_key", "password_file"])
def test_unusable_credential_files_are_a_clear_error(
        broken: str, tls_broker: TlsBroker, write_config: Callable[..., Path],
        tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "broken-pki")
    secret_text = secrets.token_hex(16)
    if broken == "tls_key":
        pki.client_key.write_text(f"-----BEGIN PRIVATE KEY-----\n{secret_text}\n")
        with pytest.raises(PublisherError, match="cannot load TLS files") as caught:
            tls_agent(write_config, tmp_path, tls_broker.cert_port, ca=pki.ca, cert=pki)
    else:
        with pytest.raises(PublisherError, match="password file is too large") as caught:
            tls_agent(write_config, tmp_path, tls_broker.password_port, ca=pki.ca,
                      password=secret_text * 100)
    assert secret_text not in str(caught.value)
