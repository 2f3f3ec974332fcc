"""MQTT publishing of signed observations, the reader's status, health and decisions.

Topic scheme (`{agency}/{site}/{reader}` are the config's ids, restricted to MQTT-safe
characters so no id can inject a `/`, `+` or `#`)::

    kitledger/v1/{agency}/{site}/{reader}/events     QoS 1, payload: an envelope's canonical bytes,
                                                     or a JSON array of up to 50 (a backlog,
                                                     `[mqtt] envelopes_per_message`)
    kitledger/v1/{agency}/{site}/{reader}/status     QoS 1, retained: "online"; Last Will "offline"
    kitledger/v1/{agency}/{site}/{reader}/health     QoS 0, JSON health snapshot, periodic
    kitledger/v1/{agency}/{site}/{reader}/decisions  QoS 1, subscribed: the API's answers (JSON)
    kitledger/v1/{agency}/{site}/{reader}/acks       subscribed: the API's end-to-end acks
                                                     (JSON, `reader_agent.acks`)

The client uses paho's v2 callback API, MQTT 3.1.1 with a persistent session (clean_session
False) under a stable client id, and capped reconnect backoff. Delivery state is the outbox's,
not paho's (paho keeps its queue in RAM). Two windows bound what is out: at most
`inflight_window` rows await the broker's PUBACK (below 65,535, past which paho reuses packet
ids), and at most `unacked_max` rows await the API's acknowledgement (`reader_agent.delivery`,
which alone deletes rows). A PUBACK only frees room in the first window. Callbacks run on
paho's thread and only append to deques; the agent's loop does the rest, so no lock is held
across paho's own mutex (on_publish runs under it).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import ssl
import sys
from dataclasses import dataclass
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ledger.core.answers import AnswerSignatureError, open_answer
from ledger.core.envelope import public_key_from_raw
from ledger.core.packing import chunks, pack
from reader_agent.config import MqttSettings
from reader_agent.decisions import DecisionError, DecisionIndicator, parse_decisions
from reader_agent.errors import PublisherError

MAX_PASSWORD_BYTES: Final = 1024
"""A broker password file holds one line; refuse anything that is clearly not one."""

MAX_MESSAGE_BYTES: Final = 48 * 1024
"""Bytes of one events message, under the API's limit (`api.ingest.transport.MAX_EVENTS_BYTES`);
an envelope is about 450 bytes and at most about 1.2 KiB."""

MAX_PENDING_DECISIONS: Final = 1000
"""Decisions queued between loop turns; a flood beyond this is counted and dropped."""

MAX_PENDING_ACKS: Final = 1000
"""Acks queued between loop turns (a batch a few milliseconds each at most); a flood beyond
this is counted and dropped: a later ack says as much, and re-sending covers the rest."""

log = logging.getLogger("reader_agent.publisher")


@dataclass(frozen=True, slots=True)
class Topics:
    events: str
    status: str
    health: str
    decisions: str
    acks: str

    @classmethod
    def for_reader(cls, agency: str, site: str, reader: str) -> Topics:
        base = f"kitledger/v1/{agency}/{site}/{reader}"
        return cls(f"{base}/events", f"{base}/status", f"{base}/health", f"{base}/decisions",
                   f"{base}/acks")


def _read_password(settings: MqttSettings) -> str | None:
    if settings.password_file is None:
        return None
    try:
        data = settings.password_file.read_bytes()[: MAX_PASSWORD_BYTES + 1]
    except OSError as exc:
        raise PublisherError(f"cannot read password file: {exc.strerror}") from None
    if len(data) > MAX_PASSWORD_BYTES:
        raise PublisherError("password file is too large to hold one password")
    return data.decode("utf-8", errors="strict").strip()


def describe_connect_failure(exc: BaseException | None) -> str:
    """A short, secret-free cause of a failed connection attempt, naming the setting to check."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS: broker certificate not trusted ({exc.verify_message}); check tls_ca"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed ({exc.reason or type(exc).__name__}); check tls_* settings"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (broker down or wrong port)"
    if isinstance(exc, OSError):
        return f"cannot connect: {exc.strerror or type(exc).__name__}"
    return "cannot connect"


class Publisher:
    """One paho client; call `start()`, then from the agent's loop `publish_rows()`,
    `take_acknowledged()`, `publish_health()`; `stop()` at the end."""

    def __init__(self, settings: MqttSettings, topics: Topics,
                 indicator: DecisionIndicator | None = None) -> None:
        self.settings, self.topics = settings, topics
        self.indicator = indicator or DecisionIndicator()
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=settings.client_id,
                             clean_session=False, protocol=mqtt.MQTTv311)
        client.will_set(topics.status, b"offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=settings.reconnect_max_s)
        # The agent bounds what is in flight (`inflight_window`); paho's own limit would scan
        # every unacknowledged message on each PUBACK (O(window) per ack, most of the CPU).
        client.max_inflight_messages_set(0)
        try:
            if settings.tls_ca is not None:
                client.tls_set(ca_certs=str(settings.tls_ca),
                               certfile=str(settings.tls_cert) if settings.tls_cert else None,
                               keyfile=str(settings.tls_key) if settings.tls_key else None,
                               cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, ssl.SSLError) as exc:
            raise PublisherError(f"cannot load TLS files: {exc}") from None
        if settings.username is not None:
            client.username_pw_set(settings.username, _read_password(settings))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self._client = client
        self._acked_mids: collections.deque[int] = collections.deque()
        self._decisions: collections.deque[bytes] = collections.deque()
        self._acks: collections.deque[bytes] = collections.deque()
        self.acks_dropped = 0
        self.connections = 0
        """Successful connections so far: a change tells the agent to re-send."""
        self._inflight: dict[int, list[int]] = {}  # paho mid -> the outbox seqs it carries
        self._inflight_rows = 0
        self.connected = False
        self.last_error: str | None = None
        self._last_alarm: str | None = None
        self._refused = False  # this attempt's CONNACK refused us (set on paho's thread)
        self.decisions_shown = 0
        self.decisions_rejected = 0
        self._api_key = (None if settings.api_key is None
                         else public_key_from_raw(settings.api_key))
        self.answers_refused = 0
        """Decisions and acks ignored because the API's signature was missing or wrong."""
        self._refusal_logged: set[str] = set()
        if self._api_key is None:
            log.warning("[mqtt] api_key is not set: decisions and acks are taken without "
                        "checking that the API sent them")

    # paho callbacks (paho's network thread) -------------------------------------------------
    def _alarm(self, error: str) -> None:
        """Record a connection problem; log it once per distinct cause, not once per retry."""
        self.last_error = error
        if error != self._last_alarm:
            self._last_alarm = error
            log.error("mqtt %s:%d: %s (retrying, backoff capped at %d s)", self.settings.host,
                      self.settings.port, error, self.settings.reconnect_max_s)

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        # paho calls this inside its `except OSError` block and passes no exception: the one
        # being handled is the cause (a TLS verification failure, a refused TCP connection).
        self._alarm(describe_connect_failure(sys.exc_info()[1]))

    def _on_connect(self, client: mqtt.Client, _userdata: Any, _flags: Any,
                    reason: Any, _properties: Any) -> None:
        if reason.is_failure:
            # e.g. "Bad user name or password", "Not authorized": never the credentials.
            self._refused = True
            self._alarm(f"broker refused the connection: {reason}")
            return
        self._last_alarm = None
        self.connected = True
        self.connections += 1
        client.subscribe([(self.topics.decisions, 1), (self.topics.acks, 1)])
        client.publish(self.topics.status, b"online", qos=1, retain=True)
        log.info("mqtt connected host=%s port=%d", self.settings.host, self.settings.port)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any, _flags: Any,
                       reason: Any, _properties: Any) -> None:
        was_connected, refused = self.connected, self._refused
        self.connected, self._refused = False, False
        if not reason.is_failure or refused:  # a refusal was already said, more precisely
            return
        if was_connected:
            self._alarm(f"connection lost: {reason}")
        else:  # e.g. a TLS 1.3 broker that wanted a client certificate hangs up after CONNECT
            self._alarm(f"connection closed before the broker accepted it ({reason}); "
                        f"{self._listener_hint()}")

    def _listener_hint(self) -> str:
        """What to check when the broker hangs up before accepting us, for this config: the
        client certificate only where TLS is in use."""
        if self.settings.tls_ca is None:
            return "check the broker's listener (a TLS port needs tls_ca)"
        if self.settings.tls_cert is None:
            return "check the broker's listener (it may want a client certificate: tls_cert)"
        return "check tls_cert/tls_key and the broker's listener"

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int,
                    _reason: Any, _properties: Any) -> None:
        self._acked_mids.append(mid)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, message: Any) -> None:
        if message.topic == self.topics.acks:
            if len(self._acks) >= MAX_PENDING_ACKS:
                self.acks_dropped += 1
                return
            self._acks.append(bytes(message.payload))
            return
        if len(self._decisions) >= MAX_PENDING_DECISIONS:
            self.decisions_rejected += 1
            return
        self._decisions.append(bytes(message.payload))

    # the agent's loop -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background; paho retries with capped backoff until it succeeds."""
        self._client.connect_async(self.settings.host, self.settings.port,
                                   keepalive=self.settings.keepalive_s)
        self._client.loop_start()

    @property
    def window_free(self) -> int:
        return max(0, self.settings.inflight_window - self._inflight_rows)

    @property
    def inflight(self) -> int:
        """Rows published and not yet acknowledged."""
        return self._inflight_rows

    def publish_rows(self, rows: list[tuple[int, bytes]]) -> int:
        """Hand rows to paho (it queues them while disconnected), several envelopes to a
        message when there is a backlog (`ledger.core.packing`). Returns how many it took."""
        taken = 0
        sizes = [len(envelope) for _, envelope in rows]
        for span in chunks(sizes, self.settings.envelopes_per_message, MAX_MESSAGE_BYTES):
            message = rows[span.start:span.stop]
            info = self._client.publish(
                self.topics.events, pack([envelope for _, envelope in message]), qos=1)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                self.last_error = f"publish refused by client: {mqtt.error_string(info.rc)}"
                break
            self._inflight[info.mid] = [seq for seq, _ in message]
            self._inflight_rows += len(message)
            taken += len(message)
        return taken

    def take_acknowledged(self) -> int:
        """Free the in-flight window of rows whose PUBACK arrived since the last call; return
        how many. (The broker has them; only the API's ack releases them from the outbox.)"""
        freed = 0
        acked, inflight = self._acked_mids, self._inflight
        while acked:
            message = inflight.pop(acked.popleft(), None)
            if message is not None:  # status/health/lost mids are not ours to track
                freed += len(message)
        self._inflight_rows -= freed
        return freed

    def _signed_by_api(self, topic: str, payload: bytes) -> bool:
        """Whether `payload` carries the pinned API key's signature for `topic` (always
        True with no key pinned); a refusal is counted, and logged once per cause."""
        if self._api_key is None:
            return True
        try:
            open_answer(self._api_key, topic, payload)
        except AnswerSignatureError as exc:
            self.answers_refused += 1
            if str(exc) not in self._refusal_logged and len(self._refusal_logged) < 16:
                self._refusal_logged.add(str(exc))
                log.error("%s ignored: %s (counted in answers_refused)",
                          topic.rsplit("/", 1)[-1], exc)
            return False
        return True

    def take_acks(self) -> list[bytes]:
        """The acks payloads received since the last call, oldest first, that carry the
        API's signature (their content is checked by `reader_agent.acks`)."""
        taken: list[bytes] = []
        while self._acks:
            payload = self._acks.popleft()
            if self._signed_by_api(self.topics.acks, payload):
                taken.append(payload)
        return taken

    def publish_envelope(self, envelope: bytes) -> bool:
        """Publish one signed envelope outside the outbox's numbering (a "lost" statement,
        `ledger.core.lost`) on the events topic; False if the client refused it."""
        info = self._client.publish(self.topics.events, envelope, qos=1)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def show_decisions(self) -> None:
        """Parse and show decisions received since the last call; count the garbage."""
        while self._decisions:
            payload = self._decisions.popleft()
            if not self._signed_by_api(self.topics.decisions, payload):
                continue
            try:
                decisions = parse_decisions(payload)
            except DecisionError as exc:
                self.decisions_rejected += 1
                log.warning("decision rejected: %s", exc)
                continue
            self.decisions_shown += len(decisions)
            self.indicator.show(decisions)

    def publish_health(self, health: bytes) -> None:
        if self.connected:
            self._client.publish(self.topics.health, health, qos=0)

    def stop(self, timeout_s: float = 2.0) -> None:
        """Say "offline" (retained) and disconnect cleanly; the Will covers unclean exits."""
        if self.connected:
            info = self._client.publish(self.topics.status, b"offline", qos=1, retain=True)
            # Not connected any more: the broker publishes our Will instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
