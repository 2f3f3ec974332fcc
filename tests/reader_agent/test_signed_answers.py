"""The agent with the API's answers key pinned (`[mqtt] api_key`), on a real Mosquitto: it acts
only on decisions and acks that key signed for its own topics. Unsigned, signed by another key,
signed for another reader or for the other kind of answer: ignored (no light, no row deleted)
and counted in health as `answers_refused`."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.errors import ConfigError

from ledger.core.answers import sign_answer
from ledger.core.envelope import raw_public_key
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for
from tests.reader_agent.agent_support import ListSource

BASE = "kitledger/v1/testforce/stores/desk-1"
DECISIONS, ACKS = f"{BASE}/decisions", f"{BASE}/acks"
API_KEY = Ed25519PrivateKey.generate()
DECISION = b'{"asset":"R-1","decision":"accept","reason":null,"seq":0}'
ACK = b'{"v":1,"through":2}'


def pinned_agent(write_config: Callable[..., Path], port: int, key_line: str) -> ReaderAgent:
    path = write_config(mqtt_port=port)
    path.write_text(path.read_text().replace(
        'client_id = "agent-desk-1"\n', f'client_id = "agent-desk-1"\n{key_line}'))
    return ReaderAgent(load_config(path), source=ListSource([1, 2, 3]))


def api_key_line(key: Ed25519PrivateKey = API_KEY) -> str:
    return f'api_key = "{raw_public_key(key.public_key()).hex()}"\n'


@contextmanager
def running(agent: ReaderAgent, port: int) -> Iterator[mqtt.Client]:
    """The agent running, its three reads in the outbox; and a client to answer it with."""
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-api")
    sender.connect("127.0.0.1", port)
    sender.loop_start()
    try:
        assert wait_for(lambda: agent.publisher.connected and agent.outbox.next_seq == 3, 15)
        yield sender
    finally:
        sender.loop_stop()
        sender.disconnect()
        agent.stopping.set()
        thread.join(15)
        assert not thread.is_alive()


def send(sender: mqtt.Client, topic: str, payload: bytes) -> None:
    sender.publish(topic, payload, qos=1).wait_for_publish(5)


def test_forged_answers_are_ignored_and_counted_and_signed_ones_are_acted_on(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        caplog: pytest.LogCaptureFixture) -> None:
    agent = pinned_agent(write_config, mosquitto.port, api_key_line())
    other = Ed25519PrivateKey.generate()
    with running(agent, mosquitto.port) as sender:
        forged = [
            (DECISIONS, DECISION),                                        # unsigned
            (DECISIONS, sign_answer(other, DECISIONS, DECISION)),         # another key
            (DECISIONS, sign_answer(API_KEY, DECISIONS.replace("desk-1", "desk-2"), DECISION)),
            (DECISIONS, sign_answer(API_KEY, ACKS, DECISION)),            # an ack's signature
            (ACKS, ACK),
            (ACKS, sign_answer(other, ACKS, ACK)),
            (ACKS, sign_answer(API_KEY, BASE.replace("desk-1", "desk-2") + "/acks", ACK)),
            (ACKS, sign_answer(API_KEY, DECISIONS, ACK)),
        ]
        for topic, payload in forged:
            send(sender, topic, payload)
        assert wait_for(lambda: agent.publisher.answers_refused == len(forged), 10), \
            agent.health(0.0)
        health = agent.health(0.0)
        assert health["answers_refused"] == len(forged)
        assert agent.publisher.decisions_shown == 0 and agent.outbox.depth == 3
        # The API's own answers go through.
        send(sender, DECISIONS, sign_answer(API_KEY, DECISIONS, DECISION))
        send(sender, ACKS, sign_answer(API_KEY, ACKS, ACK))
        assert wait_for(lambda: agent.publisher.decisions_shown == 1
                        and agent.outbox.depth == 0, 10), agent.health(0.0)
    assert agent.publisher.answers_refused == len(forged)
    refusals = [r.getMessage() for r in caplog.records if "answers_refused" in r.getMessage()]
    assert len(refusals) == len(set(refusals)) <= 4, refusals  # once per cause, not per message


def test_without_a_pinned_key_signed_and_unsigned_answers_are_read_with_a_warning(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        caplog: pytest.LogCaptureFixture) -> None:
    agent = pinned_agent(write_config, mosquitto.port, "")
    assert "api_key is not set" in caplog.text
    with running(agent, mosquitto.port) as sender:
        send(sender, DECISIONS, DECISION)
        send(sender, DECISIONS, sign_answer(API_KEY, DECISIONS, DECISION))
        send(sender, ACKS, sign_answer(API_KEY, ACKS, ACK))
        assert wait_for(lambda: agent.publisher.decisions_shown == 2
                        and agent.outbox.depth == 0, 10), agent.health(0.0)
    assert json.loads(json.dumps(agent.health(0.0)))["answers_refused"] == 0


@pytest.mark.parametrize("value", ['"abc"', '"' + "A" * 64 + '"', "42", '"' + "0" * 66 + '"'])
def test_an_api_key_that_is_not_one_stops_the_agent(
        value: str, write_config: Callable[..., Path]) -> None:
    with pytest.raises(ConfigError, match="api_key"):
        pinned_agent(write_config, 1, f"api_key = {value}\n")
