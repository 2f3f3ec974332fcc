"""The broker fixture is a real broker: QoS 1 relays, and queued messages survive a restart."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
from fixtures.mosquitto import MosquittoBroker
from paho.mqtt.enums import CallbackAPIVersion


def _subscriber(port: int, got: list[bytes], ready: threading.Event) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fixture-sub", clean_session=False)
    client.on_message = lambda c, u, m: (got.append(m.payload), ready.set())
    client.connect("127.0.0.1", port)
    client.subscribe("t/x", qos=1)
    return client


def _publish(port: int, payload: bytes) -> None:
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fixture-pub")
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    pub.publish("t/x", payload, qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()


def test_queued_message_survives_broker_restart(mosquitto: MosquittoBroker) -> None:
    got: list[bytes] = []
    arrived = threading.Event()
    sub = _subscriber(mosquitto.port, got, arrived)
    sub.loop_start()
    _publish(mosquitto.port, b"first")
    assert arrived.wait(5)
    sub.disconnect()
    sub.loop_stop()

    # Published while the persistent-session subscriber is away, then the broker restarts.
    _publish(mosquitto.port, b"queued")
    mosquitto.restart()
    arrived.clear()
    sub = _subscriber(mosquitto.port, got, arrived)
    sub.loop_start()
    assert arrived.wait(5), mosquitto.log()
    sub.disconnect()
    sub.loop_stop()
    assert got == [b"first", b"queued"]
