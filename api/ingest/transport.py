"""The ingest worker's MQTT side: one client, the shared subscription in, manual acks out.

A worker joins the MQTT v5 shared subscription `$share/<group>/kitledger/v1/+/+/+/events` and
the broker splits messages among the group. paho's `manual_ack` holds each PUBACK until the
batch holding that message has committed (`ack`); ingest is idempotent, so a redelivered
message that did commit is only a replay. The MQTT v5 Receive Maximum bounds the messages in
flight, and so the worker's memory.

Failing over. Each worker has its own client id (`{mqtt_client_id}-{node}-{index}`,
`api.node`) and a session that expires SESSION_EXPIRY_S after it disconnects. A broker keeps
routing a shared subscription's share to a member's session while that session lives, so a
long-lived session of a killed node strands its readers' messages; a short one ends that
within seconds, and the survivors get everything after. What the dead member held is lost at
the broker, and that is safe: the reader agents keep every row until the API's end-to-end ack
covers it (`api.ingest.acks`) and re-send what is not acknowledged. The few seconds of
session still let a worker that only reconnects (`redeliver`, a network blip) resume it.

Leaving (`leave`, when the node stops): the worker unsubscribes, so the broker gives new
messages to the rest of the group, then stores and acknowledges what it already has before it
disconnects, so no message waits for this node to come back.

The client is driven by paho's network thread alone (`loop_start`): the ingest thread never
reconnects it. It once did, to have unacknowledged messages redelivered after a failed batch;
paho then swapped the socket under the network thread mid-read, which parsed the tail of a
redelivered PUBLISH as a CONNACK refusing the protocol version ("Unsupported protocol
version" in the log, though every CONNACK the broker sent was a success). A failed batch is
now held and tried again (`api.ingest.worker`).

An events message may carry several envelopes (`ledger.core.packing`: an agent sending a
backlog); it arrives as one `Delivery`, always stored in one batch and acknowledged once.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from api.broker_status import BrokerState
from api.config import Settings
from api.ingest.broker_security import describe_connect_failure, secure
from api.ingest.checks import InboundMessage
from api.ingest.topics import events_subscription
from api.node import node_id
from ledger.core.packing import unpack

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 2
"""How long the broker keeps a worker's session after it disconnects: long enough for the
worker's own reconnect (`redeliver`, under a second) to resume it, short enough that a dead
node's share of the shared subscription goes to the survivors within the agents' first re-send
timeout (5 s). Durability does not rest on it: see "Failing over"."""

MAX_RECEIVE_MAXIMUM: Final = 65_535
"""MQTT v5's largest Receive Maximum (a 16-bit field)."""

MAX_ENVELOPES_PER_MESSAGE: Final = 64
"""Envelopes one events message may carry (the agent packs at most 50); a longer array is
refused whole, as one malformed message."""

MAX_EVENTS_BYTES: Final = 64 * 1024
"""Bytes of one events message (the agent packs at most 48 KiB); a larger one is not looked
into but refused whole, as oversize."""

DECISIONS_IN_FLIGHT: Final = 200
"""Decision publishes awaiting their PUBACK at once. paho's default, 20, queues the rest of a
batch's answers and sends each only when an earlier one is acknowledged: a wake-up of the
network thread per decision, which cost the worker about a third of its CPU. Not much larger
either: paho scans the whole window on every PUBACK."""


def closed_before_accepted(settings: Settings) -> str:
    """Why a broker closes a connection before answering it, as far as the settings tell."""
    if not settings.mqtt_tls:
        hint = "a TLS port needs an mqtts:// mqtt_url"
    elif settings.mqtt_tls_cert is None:
        hint = "a broker asking for a client certificate needs mqtt_tls_cert"
    else:
        hint = "check that the broker accepts mqtt_tls_cert"
    return f"connection closed before the broker accepted it ({hint})"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One MQTT message: the envelopes it carries, and what acknowledging it takes."""

    envelopes: list[InboundMessage]
    mid: int
    qos: int


class MqttTransport:
    """The worker's MQTT client: deliveries queue in `inbox` (paho's network thread puts,
    the ingest thread takes); `on_connected` runs on every (re)connection."""

    def __init__(
        self, settings: Settings, client_id: str | None, on_connected: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._on_connected = on_connected
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.subscribed = threading.Event()
        """Set once the broker has granted the events subscription (its SUBACK)."""
        self.connected = threading.Event()
        self.connections = 0
        """Connections the broker accepted (CONNACKs), this one included."""
        self.last_message_at = time.monotonic()
        self._leaving = False
        self._unsubscribed = threading.Event()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{settings.mqtt_client_id}-{node_id(settings)}",
            protocol=mqtt.MQTTv5, manual_ack=True,
        )
        self.last_error: str | None = None
        """Why the last connection attempt failed (None once the broker accepts one)."""
        self.granted = False
        """The broker granted the events subscription on this connection (its SUBACK)."""
        self.subscription_refused: str | None = None
        """Why the broker refused the events subscription (an ACL), None if it did not."""
        self._refused = False
        secure(self.client, settings)
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.on_unsubscribe = self._on_unsubscribe
        self.client.on_subscribe = self._on_subscribe
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(DECISIONS_IN_FLIGHT)

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # Twice a batch: one batch committing while the next one fills.
        props.ReceiveMaximum = min(MAX_RECEIVE_MAXIMUM, 2 * self._settings.ingest_batch_size)
        return props

    def start(self) -> None:
        """Connect (retrying in the background if the broker is down) and start receiving."""
        self.client.connect_async(
            self._settings.mqtt_host, self._settings.mqtt_port, clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect; unacknowledged messages stay with the session until it expires, and
        the agents re-send whatever was not stored."""
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, deliveries: list[Delivery]) -> None:
        """Acknowledge `deliveries`: their batch has committed."""
        for delivery in deliveries:
            self.client.ack(delivery.mid, delivery.qos)

    def leave(self, timeout: float) -> bool:
        """Unsubscribe from the shared subscription, so the broker gives new messages to the
        rest of the group; True once it has confirmed. Messages it queued for this client
        before still arrive, to be stored and acknowledged; a reconnection no longer
        subscribes."""
        self._leaving = True
        if not self.connected.is_set():
            return False
        self._unsubscribed.clear()
        result, _ = self.client.unsubscribe(events_subscription(self._settings.mqtt_share_group))
        return result == mqtt.MQTT_ERR_SUCCESS and self._unsubscribed.wait(timeout)

    def broker_state(self) -> tuple[BrokerState, str]:
        """Where this client stands with the broker, and why when it is not subscribed."""
        where = f"mqtt {self._settings.mqtt_host}:{self._settings.mqtt_port}"
        if self._leaving:
            return BrokerState.LEAVING, "the worker is stopping"
        if not self.connected.is_set():
            if self.last_error is None:
                return BrokerState.CONNECTING, f"{where}: connecting"
            return BrokerState.UNREACHABLE, f"{where}: {self.last_error}"
        if self.subscription_refused is not None:
            return BrokerState.REFUSED, f"{where}: {self.subscription_refused}"
        if not self.granted:
            return BrokerState.CONNECTING, f"{where}: connected, subscribing"
        return BrokerState.SUBSCRIBED, f"{where}: subscribed"

    def quiet_for(self, seconds: float) -> bool:
        """No message has arrived for `seconds`."""
        return time.monotonic() - self.last_message_at >= seconds

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
        reason: ReasonCode, properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = True  # the disconnect that follows says no more
            self._failed(f"broker refused connection: {reason}")
            return
        self.last_error = None
        self.granted = False
        self.connections += 1
        if not self._leaving:
            client.subscribe(events_subscription(self._settings.mqtt_share_group), qos=1)
        else:
            self.subscribed.set()
        self.connected.set()
        self._on_connected()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        # paho calls this inside its `except OSError` and passes no exception: the one being
        # handled is the cause (an untrusted broker certificate, a refused TCP connection).
        self._failed(describe_connect_failure(sys.exc_info()[1]))

    def _failed(self, error: str) -> None:
        """Record a failed connection; log each distinct cause once, not once per retry."""
        if error != self.last_error:
            log.warning("ingest worker: mqtt %s:%d: %s (retrying)", self._settings.mqtt_host,
                        self._settings.mqtt_port, error)
        self.last_error = error

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
        reason: ReasonCode, properties: Properties | None,
    ) -> None:
        if not self.connected.is_set() and not self._refused:
            # Closed before any CONNACK: a TLS port spoken to in plain text, no certificate.
            self._failed(closed_before_accepted(self._settings))
        self._refused = False
        self.granted = False
        self.connected.clear()

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        refused = [str(reason) for reason in reasons if reason.is_failure]
        if refused:
            # An ACL that forbids the group's topic: connected, yet no message will come.
            why = f"broker refused the events subscription: {', '.join(refused)}"
            if why != self.subscription_refused:
                log.error("ingest worker: mqtt %s:%d: %s", self._settings.mqtt_host,
                          self._settings.mqtt_port, why)
            self.subscription_refused = why
        else:
            self.subscription_refused = None
            self.granted = True
            self.subscribed.set()  # only now does the broker route the group's share here

    def _on_unsubscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        self._unsubscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.last_message_at = time.monotonic()
        topic = message.topic if isinstance(message.topic, str) else ""
        payload = bytes(message.payload)
        envelopes = ([payload] if len(payload) > MAX_EVENTS_BYTES
                     else unpack(payload, MAX_ENVELOPES_PER_MESSAGE))
        self.inbox.put(Delivery(
            [InboundMessage(topic, envelope, message.mid) for envelope in envelopes],
            message.mid, message.qos))
