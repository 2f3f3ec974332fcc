"""Reader health over MQTT: each agent's health and status messages in, the latest per reader
stored, reader alerts raised by one elected scan.

An agent publishes `kitledger/v1/{agency}/{site}/{reader}/health` (JSON, QoS 0, every few
seconds) and a retained `.../status`, "online" or "offline" (its Last Will when it dies).
`HealthListener` takes both on its own MQTT client, beside the ingest worker's: health
messages are neither signed nor acknowledged, so they stay out of the custody pipeline.

Every message is checked before anything is stored, and what fails is dropped and counted
(`kitledger_reader_health_messages_total{outcome}`), never stored: a payload over
`MAX_HEALTH_BYTES`, one that is not a JSON object of the known fields with their types, one
naming another reader than its topic, and a topic that is not a registered, active reader of
that agency and site. Accepted messages are kept in memory, latest per reader, and written in
one transaction every `FLUSH_S` (an upsert per reader), so ten thousand readers reporting
every thirty seconds cost a few small transactions a second.

Health is unsigned: anyone who may publish on a reader's topic can make it look healthy or
sick. It is a hint for people and alerts (`api.custody.reader_health`), never custody evidence;
the broker's ACLs are what keep one agency's agents off another's topics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from api.config import Settings
from api.custody.reader_health import ScanResult, scan_reader_health
from api.db import table, utcnow
from api.ingest.broker_security import secure
from api.ingest.topics import HEALTH, STATUS, health_subscriptions, parse_reader_topic
from api.metrics import READER_HEALTH_MESSAGES
from api.models.health import MAX_HEALTH_ERROR_CHARS, ReaderHealth
from api.models.registry import Reader, ReaderStatus
from api.node import node_id
from api.outage import DATABASE
from api.roles import Election, Role

log = logging.getLogger(__name__)

MAX_HEALTH_BYTES: Final = 8 * 1024
"""Bytes of one health message (the agent's are under 2 KiB); a larger one is not parsed."""

MAX_HEALTH_FIELDS: Final = 64
"""Top-level fields of one health message (the agent sends about 35)."""

FLUSH_S: Final = 0.5
"""Seconds between writes of the health received meanwhile."""

SCAN_S: Final = 5.0
"""Seconds between reader-alert scans (by the elected listener)."""

_LEAVES: Final = frozenset({HEALTH, STATUS})
_STATUS_VALUES: Final = {b"online": True, b"offline": False}
_HEALTH = table(ReaderHealth)
_COUNTER = 1 << 62
"""Bound of the counters a health message carries (any real one is far below)."""


class _Counters(BaseModel):
    """The driver counters the API reads; the rest are the agent's to show."""

    model_config = ConfigDict(strict=True, extra="allow")
    antenna_faults: int = Field(default=0, ge=0, lt=_COUNTER)
    antennas_down: int = Field(default=0, ge=0, lt=_COUNTER)


class HealthMessage(BaseModel):
    """The fields of an agent's health message (`reader_agent.agent.Agent.health`) that the
    API reads, strictly typed; other fields are allowed (newer agents), only bounded."""

    model_config = ConfigDict(strict=True, extra="allow")
    reader: str = Field(min_length=1, max_length=128)
    reader_connected: bool
    mqtt_connected: bool
    last_error: str | None = Field(default=None, max_length=4096)
    reads_per_s: float = Field(ge=0, le=1e7, allow_inf_nan=False)
    reader_counters: _Counters = _Counters()
    temperature_c: float | None = Field(default=None, ge=-100, le=300, allow_inf_nan=False)
    disk_state: str = Field(pattern=r"^(ok|low|full|read_only)$")
    outbox_depth: int = Field(ge=0, lt=_COUNTER)
    outbox_max: int = Field(ge=0, lt=_COUNTER)
    outbox_alarm: bool


class HealthRejected(ValueError):
    """A health or status message that is dropped; the message is its counted reason."""


def _refuse_constant(name: str) -> None:
    raise HealthRejected("malformed")


def parse_health(payload: bytes) -> HealthMessage:
    """The health message `payload` carries, or `HealthRejected` with the reason."""
    if len(payload) > MAX_HEALTH_BYTES:
        raise HealthRejected("oversize")
    try:
        data = json.loads(payload, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise HealthRejected("malformed") from None
    if not isinstance(data, dict) or len(data) > MAX_HEALTH_FIELDS:
        raise HealthRejected("malformed")
    try:
        return HealthMessage.model_validate(data)
    except ValidationError:
        raise HealthRejected("schema") from None


def health_row(message: HealthMessage, now: datetime) -> dict[str, Any]:
    """The `reader_health` columns a health message sets."""
    error = message.last_error
    return {"seen_at": now, "reader_connected": message.reader_connected,
            "mqtt_connected": message.mqtt_connected, "reads_per_s": message.reads_per_s,
            "antennas_down": message.reader_counters.antennas_down,
            "antenna_faults": message.reader_counters.antenna_faults,
            "temperature_c": message.temperature_c, "disk_state": message.disk_state,
            "outbox_depth": message.outbox_depth, "outbox_max": message.outbox_max,
            "outbox_alarm": message.outbox_alarm,
            "last_error": None if error is None else error[:MAX_HEALTH_ERROR_CHARS]}


class HealthStore:
    """Accepted health, latest per reader, until `flush` writes it; thread-safe (`offer` on
    paho's network thread, `flush` on the listener's)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str, str], dict[str, Any]] = {}

    def offer(self, topic: str, payload: bytes, now: datetime) -> str:
        """Check one message and keep it for the next flush; returns its outcome so far
        ("pending"), or raises `HealthRejected`."""
        parsed = parse_reader_topic(topic, _LEAVES)
        if parsed is None:
            raise HealthRejected("topic")
        address, leaf = parsed
        if leaf == STATUS:
            if payload not in _STATUS_VALUES:
                raise HealthRejected("malformed")
            values: dict[str, Any] = {"online": _STATUS_VALUES[payload], "status_at": now}
        else:
            message = parse_health(payload)
            if message.reader != address.reader:
                raise HealthRejected("mismatch")
            values = health_row(message, now)
        key = (address.agency, address.site, address.reader)
        with self._lock:
            self._pending.setdefault(key, {}).update(values)
        return "pending"

    def flush(self) -> int:
        """Write what is pending for registered, active readers of the topic's agency and
        site; the rest is dropped and counted. Returns the rows written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        try:
            written = self._write(pending)
        except Exception:
            with self._lock:  # kept for the next flush, under anything newer
                for key, values in pending.items():
                    self._pending[key] = {**values, **self._pending.get(key, {})}
            raise
        READER_HEALTH_MESSAGES.labels("stored").inc(written)
        return written

    def _write(self, pending: dict[tuple[str, str, str], dict[str, Any]]) -> int:
        with Session(self._engine) as session:
            known = set(session.exec(
                select(Reader.agency_id, Reader.site_id, Reader.id).where(
                    col(Reader.id).in_({key[2] for key in pending}),
                    col(Reader.status) == ReaderStatus.ACTIVE)).all())
            rows = []
            for key, values in pending.items():
                if key not in known:
                    READER_HEALTH_MESSAGES.labels("unknown_reader").inc()
                    continue
                rows.append({"agency_id": key[0], "site_id": key[1], "reader_id": key[2],
                             **values})
            for row in rows:
                _upsert(session, row)
            session.commit()
        return len(rows)


def _upsert(session: Session, row: dict[str, Any]) -> None:
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    changed = {name: value for name, value in row.items() if name != "reader_id"}
    statement = dialect.insert(_HEALTH).values(row).on_conflict_do_update(
        index_elements=[_HEALTH.c.reader_id], set_=changed)
    session.connection().execute(statement)


class HealthListener:
    """An MQTT client on the health and status topics, a thread writing what it accepts, and
    (while elected) the reader-alert scan; `start()` then `stop()`."""

    def __init__(self, settings: Settings, engine: Engine, *, client_id: str | None = None,
                 on_scan: Callable[[ScanResult], None] | None = None) -> None:
        self._settings = settings
        self._engine = engine
        self._on_scan = on_scan
        self.store = HealthStore(engine)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.subscribed = threading.Event()
        self._listening_since: float | None = None
        self._scanning = threading.Lock()
        """One scan at a time: the listener's thread, or a caller of `scan` (tests, tools)."""
        self._election = Election(engine, (Role.READER_HEALTH,), node=node_id(settings))
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{settings.mqtt_client_id}-health-{node_id(settings)}",
            protocol=mqtt.MQTTv5)
        secure(self.client, settings)  # the broker's TLS and credentials, as ingest's
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)

    def start(self) -> None:
        self.client.connect_async(self._settings.mqtt_host, self._settings.mqtt_port)
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="kitledger-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.client.disconnect()
        self.client.loop_stop()
        self._election.close()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Any) -> None:
        if reason.is_failure:
            log.warning("health listener: broker refused connection: %s", reason)
            return
        for topic in health_subscriptions(self._settings.mqtt_share_group):
            client.subscribe(topic, qos=1)
        self._listening_since = time.monotonic()
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason: ReasonCode, properties: Any) -> None:
        self._listening_since = None

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic if isinstance(message.topic, str) else ""
        try:
            self.store.offer(topic, bytes(message.payload), utcnow())
        except HealthRejected as exc:
            READER_HEALTH_MESSAGES.labels(str(exc)).inc()

    def _run(self) -> None:
        next_scan = time.monotonic()
        while not self._stopping.wait(FLUSH_S):
            try:
                self.store.flush()
                if time.monotonic() >= next_scan:
                    next_scan = time.monotonic() + SCAN_S
                    self.scan()
                DATABASE.ok()
            except Exception as exc:  # the database away: what is pending waits for the next try
                DATABASE.failed(exc, "storing reader health")

    def scan(self) -> ScanResult | None:
        """One reader-alert round, if this process holds the role. Silence counts as down
        only once this listener has been subscribed for the timeout itself."""
        with self._scanning:
            return self._scan()

    def _scan(self) -> ScanResult | None:
        if Role.READER_HEALTH not in self._election.refresh():
            return None
        since = self._listening_since
        timeout = self._settings.reader_health_timeout_s
        trusted = since is not None and time.monotonic() - since >= timeout
        with Session(self._engine) as session:
            result = scan_reader_health(
                session, utcnow(), timeout, trust_silence=trusted,
                temperature_limit_c=self._settings.reader_temperature_alert_c)
            session.commit()
        if self._on_scan is not None:
            self._on_scan(result)
        return result
