"""Helpers shared by the agent tests: read builders, configs, a real MQTT subscriber."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.config import MAX_ENVELOPES_PER_MESSAGE, AntennaZone, PipelineSettings
from reader_agent.reads import TagRead

from ledger.core.envelope import Envelope
from ledger.core.packing import unpack
from tests.fixtures.polling import wait_for


def epc(n: int, prefix: str = "3034") -> bytes:
    """A distinct 96-bit EPC per n (SGTIN-96 header by default)."""
    return bytes.fromhex(prefix) + n.to_bytes(12 - len(bytes.fromhex(prefix)), "big")


def read(n: int, t: float, antenna: int = 1, rssi: int | None = -50,
         prefix: str = "3034") -> TagRead:
    return TagRead(epc(n, prefix), antenna, rssi, t)


def settings(**overrides: Any) -> PipelineSettings:
    values: dict[str, Any] = {
        "antennas": {1: AntennaZone("desk", -70), 2: AntennaZone("shelf", -60)},
        "min_reads": 2, "debounce_s": 1.0, "depart_after_s": 5.0,
    }
    values.update(overrides)
    return PipelineSettings(**values)


AGENT_TOML = """\
[reader]
id = "desk-1"
agency = "testforce"
site = "stores"
role = "issue_desk"
protocol = "{protocol}"
port = "{port}"

[reader.settings]
{settings}

[identity]
key_file = "keys/reader.key"

[outbox]
path = "outbox.db"
max_rows = {max_rows}

[mqtt]
host = "127.0.0.1"
port = {mqtt_port}
client_id = "agent-desk-1"
reconnect_max_s = 1
health_interval_s = 0.2

[pipeline]
min_reads = 1
debounce_s = 1.0
depart_after_s = 600

[antennas.1]
zone = "desk"
rssi_floor = -90
"""


def write_capture(path: Path, count: int, start: int = 0) -> None:
    """A replay capture of `count` distinct tags, one read each."""
    lines = [f"{epc(start + i).hex().upper()} 1 -40" for i in range(count)]
    path.write_text("# epc antenna rssi\n" + "\n".join(lines) + "\n")


class Subscriber:
    """A real MQTT subscriber with a persistent session, recording every event payload.

    With `ack`, it also answers each events message as the API does (`reader_agent.acks`):
    `through` the highest number received with none missing below. It stands in for the API
    in the agent's own tests, which are about the agent and the broker; the real API answers
    the real agent in tests/api/test_end_to_end_ack.py."""

    def __init__(self, port: int, topic: str, client_id: str = "test-subscriber",
                 ack: bool = False) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ack = ack
        self._seen: set[int] = set()
        self._through = -1
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=False)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        # Sub-second retries keep the tests short; paho's annotation says int, floats work.
        self.client.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client: Any, _u: Any, message: Any) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))
            if not (self._ack and message.topic.endswith("/events")):
                return
            for envelope in unpack(bytes(message.payload), MAX_ENVELOPES_PER_MESSAGE):
                seq = Envelope.from_bytes(envelope).payload.get("seq")
                if isinstance(seq, int):
                    self._seen.add(seq)
            while self._through + 1 in self._seen:
                self._through += 1
            through = self._through
        acks = message.topic.rsplit("/", 1)[0] + "/acks"
        client.publish(acks, json.dumps({"v": 1, "through": through}).encode(), qos=1)

    def payloads(self, suffix: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t.endswith(suffix)]

    def envelopes(self) -> list[bytes]:
        """Every envelope received on an events topic, unpacked from the messages that carried
        several (`ledger.core.packing`), in order of arrival."""
        return [envelope for payload in self.payloads("/events")
                for envelope in unpack(payload, MAX_ENVELOPES_PER_MESSAGE)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
        return wait_for(predicate, timeout)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class ListSource:
    """A read source yielding given tags once each, stamped with the real monotonic clock."""

    def __init__(self, tags: list[int]) -> None:
        self.tags = tags
        self.connected = True
        self.last_error: str | None = None
        self.closed = False

    def reads(self) -> Any:
        for n in self.tags:
            if self.closed:
                return
            yield read(n, time.monotonic(), rssi=-40)

    def close(self) -> None:
        self.closed = True


def verified_events(envelopes: list[bytes], public_key: Any) -> dict[int, bytes]:
    """seq -> envelope bytes, checking signatures and that no seq carries two different bodies."""
    from ledger.core.envelope import Envelope, verify_envelope

    by_seq: dict[int, bytes] = {}
    for payload in envelopes:
        seq = verify_envelope(Envelope.from_bytes(payload), public_key)["seq"]
        assert by_seq.setdefault(seq, payload) == payload, f"seq {seq} reused"
    return by_seq
