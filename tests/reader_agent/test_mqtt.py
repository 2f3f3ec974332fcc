"""The agent against a real Mosquitto: delivery across a broker outage, status, decisions."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.agent import ReaderAgent
from reader_agent.config import MAX_ENVELOPES_PER_MESSAGE, load_config
from reader_agent.identity import load_key

from tests.fixtures.mosquitto import MosquittoBroker
from tests.reader_agent.agent_support import ListSource, Subscriber, verified_events, wait_for

BASE = "kitledger/v1/testforce/stores/desk-1"


def start(agent: ReaderAgent) -> threading.Thread:
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("per_message", [MAX_ENVELOPES_PER_MESSAGE, 1])
def test_broker_down_while_10000_reads_arrive_then_all_delivered(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber], per_message: int) -> None:
    sub = subscriber_factory(mosquitto.port, f"{BASE}/events", ack=True)
    assert sub.wait_for(lambda: sub.client.is_connected(), 10)
    time.sleep(0.2)  # the SUBACK: the persistent session now holds the subscription
    mosquitto.stop()
    # The agent reconnects within a second, often before the subscriber: what the broker
    # relays meanwhile is queued in the subscriber's persistent session (and must be kept).
    config = load_config(write_config(mqtt_port=mosquitto.port))
    config = replace(config, mqtt=replace(config.mqtt, envelopes_per_message=per_message))
    agent = ReaderAgent(config, source=ListSource(list(range(10_000))))
    thread = start(agent)
    assert sub.wait_for(lambda: agent.outbox.next_seq == 10_000, 60)
    assert agent.publisher.connected is False and agent.outbox.depth == 10_000
    mosquitto.start()
    assert sub.wait_for(lambda: sub.client.is_connected(), 10)
    delivered = sub.wait_for(lambda: len(set(sub.envelopes())) >= 10_000, 60)
    missing = set(range(10_000)) - set(
        verified_events(sub.envelopes(), load_key(config.key_file).public_key()))
    assert delivered, (len(missing), sorted(missing)[:10], agent.health(0.0))
    assert sub.wait_for(lambda: agent.outbox.depth == 0, 30)
    agent.stopping.set()
    thread.join(15)
    assert not thread.is_alive()
    events = verified_events(sub.envelopes(), load_key(config.key_file).public_key())
    assert sorted(events) == list(range(10_000))
    # The backlog went out packed, up to 50 envelopes to a message (or one each, as set).
    messages = len(set(sub.payloads("/events")))
    assert messages == 10_000 if per_message == 1 else messages <= 10_000 // 25


def test_status_is_retained_and_decisions_are_shown_or_counted(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber]) -> None:
    config = load_config(write_config(mqtt_port=mosquitto.port))
    agent = ReaderAgent(config, source=ListSource([1, 2, 3]))
    thread = start(agent)
    try:
        assert wait_for(lambda: agent.publisher.connected, 15)
        late = subscriber_factory(mosquitto.port, f"{BASE}/status", "late-subscriber")
        assert late.wait_for(lambda: (f"{BASE}/status", b"online", True) in late.messages, 10)
        health = subscriber_factory(mosquitto.port, f"{BASE}/health", "health-subscriber")
        assert health.wait_for(lambda: any(
            json.loads(p)["observations_total"] == 3 for p in health.payloads("/health")), 15)
        sender = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="api-decisions")
        sender.connect("127.0.0.1", mosquitto.port)
        sender.loop_start()
        garbage = [b"", b"{", b"\xff" * 100, b"[" * 50_000, b'{"seq":"1","decision":"accept"}',
                   b"x" * 100_000]
        for payload in garbage:
            sender.publish(f"{BASE}/decisions", payload, qos=1).wait_for_publish(5)
        sender.publish(f"{BASE}/decisions",
                       b'{"seq":1,"decision":"accept","reason":null,"asset":"R-1"}',
                       qos=1).wait_for_publish(5)
        sender.publish(f"{BASE}/decisions",  # several reads answered in one message
                       b'[{"seq":2,"decision":"accept"},{"seq":3,"decision":"refuse"}]',
                       qos=1).wait_for_publish(5)
        assert late.wait_for(lambda: agent.publisher.decisions_shown == 3, 10)
        assert late.wait_for(lambda: agent.publisher.decisions_rejected == len(garbage), 10)
        sender.loop_stop()
        sender.disconnect()
    finally:
        agent.stopping.set()
        thread.join(15)
    assert late.wait_for(lambda: late.payloads("/status")[-1:] == [b"offline"], 10)
