"""Prometheus metrics of the service: ingest rate, rejections by reason, latencies, anchoring,
witness cosignatures, the roles this node holds.

Metrics live on prometheus_client's default registry, which `/metrics` serves; they are
process-wide counters, so creating them at import is the library's intended use. Anchoring
runs in another process, so its lag and backlog are read from the database at scrape time
(`watch_anchoring`), which every HTTP worker can answer alike; so are the witnesses' lag and
the checkpoints they have not cosigned yet (`watch_witnesses`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from api import readiness
from api.anchor_status import AnchorState, backlogs
from api.config import Settings
from api.custody.reader_health import DEFAULT_TEMPERATURE_LIMIT_C, reader_problems
from api.custody.rules import AlertKind
from api.models.anchoring import SERVICE_SCOPE
from api.models.health import ReaderHealth
from api.roles import Role, roles_of_node
from ledger.core.note import parse_vkey

INGEST_MESSAGES = Counter(
    "kitledger_ingest_messages_total",
    "MQTT observation messages processed, by outcome (accepted, duplicate, rejected).",
    ["outcome"],
)
INGEST_REJECTED = Counter(
    "kitledger_ingest_rejected_total",
    "Observation messages quarantined, by reason.",
    ["reason"],
)
INGEST_LOST_AT_READER = Counter(
    "kitledger_ingest_lost_at_reader_total",
    "Sequence numbers closed as lost at their reader, on the reader's signed word.",
)
READER_HEALTH_MESSAGES = Counter(
    "kitledger_reader_health_messages_total",
    "Reader health and status messages, by outcome: stored, or why dropped (oversize, "
    "malformed, schema, mismatch, topic, unknown_reader).",
    ["outcome"],
)
INGEST_BATCH_SECONDS = Histogram(
    "kitledger_ingest_batch_seconds",
    "Time to verify and commit one ingest batch.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
DECISION_LATENCY_SECONDS = Histogram(
    "kitledger_decision_latency_seconds",
    "From receiving an observation to publishing the reader's decision.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


_FIRST_UNANCHORED = text(  # a leaf is a custody event or a registry record (api.registry_log)
    "SELECT created_at FROM custody_event WHERE agency_id = :agency AND leaf_index = :leaf"
    " UNION ALL"
    " SELECT created_at FROM registry_record WHERE agency_id = :agency AND leaf_index = :leaf"
)


_ANCHORING_STATES = text("SELECT agency_id, state FROM anchoring_status ORDER BY agency_id")


class AnchoringCollector(Collector):
    """Per agency log: leaves not yet anchored (backlog), the age of the oldest (lag), and the
    anchoring state (`api.anchor_status.AnchorState`, one series per state, 1 for the current
    one); the service's own state apart, as the anchoring process last recorded them."""

    def __init__(self) -> None:
        self.engine: Engine | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        backlog = GaugeMetricFamily("kitledger_anchoring_backlog_leaves",
                                    "Custody events in an agency's log not yet anchored.",
                                    labels=["agency"])
        lag = GaugeMetricFamily("kitledger_anchoring_lag_seconds",
                                "Age of the oldest custody event not yet anchored (0: none).",
                                labels=["agency"])
        state = GaugeMetricFamily("kitledger_anchoring_state",
                                  "Anchoring state of an agency's log: 1 for the current state.",
                                  labels=["agency", "state"])
        service = GaugeMetricFamily("kitledger_anchoring_service_state",
                                    "Anchoring state of the service: 1 for the current state.",
                                    labels=["state"])
        if self.engine is not None:
            now = time.time()
            with self.engine.connect() as conn:
                for scope, current in conn.execute(_ANCHORING_STATES).all():
                    for name in AnchorState:
                        value = 1.0 if name == current else 0.0
                        if scope == SERVICE_SCOPE:
                            service.add_metric([name.value], value)
                        else:
                            state.add_metric([scope, name.value], value)
                for agency, waiting, anchored in backlogs(conn):
                    backlog.add_metric([agency], waiting)
                    oldest = None if waiting == 0 else conn.execute(
                        _FIRST_UNANCHORED, {"agency": agency, "leaf": anchored}).scalar()
                    lag.add_metric([agency], 0.0 if oldest is None else
                                   max(now - _timestamp(oldest), 0.0))
        yield backlog
        yield lag
        yield state
        yield service


def _timestamp(value: object) -> float:
    if isinstance(value, str):  # SQLite hands raw text back through a text() query
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    return time.time()


ANCHORING = AnchoringCollector()
REGISTRY.register(ANCHORING)


def watch_anchoring(engine: Engine) -> None:
    """Report anchoring lag and backlog from `engine`'s database on every scrape."""
    ANCHORING.engine = engine


_WITNESS_STATUS = text(
    "SELECT c.agency_id, c.tree_size, c.signed_at FROM log_checkpoint c"
    " WHERE c.tree_size > COALESCE((SELECT MAX(w.tree_size) FROM checkpoint_cosignature w"
    "   WHERE w.agency_id = c.agency_id AND w.witness = :name AND w.key_id = :key_id), 0)"
    " ORDER BY c.agency_id, c.tree_size"
)
_LOGS = text("SELECT agency_id FROM agency_log WHERE log_id IS NOT NULL ORDER BY agency_id")


class WitnessCollector(Collector):
    """Per agency log and configured witness: checkpoints the witness has not cosigned yet
    (behind) and the age of the oldest of them (lag): a witness that is down, or refuses the
    log, shows here long before an auditor's verification fails for want of its cosignature."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.witnesses: list[tuple[str, str]] = []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        behind = GaugeMetricFamily("kitledger_witness_behind_checkpoints",
                                   "Checkpoints newer than the last one a witness cosigned.",
                                   labels=["agency", "witness"])
        lag = GaugeMetricFamily("kitledger_witness_lag_seconds",
                                "Age of the oldest checkpoint a witness has not cosigned (0: "
                                "none).", labels=["agency", "witness"])
        if self.engine is not None and self.witnesses:
            now = time.time()
            with self.engine.connect() as conn:
                agencies = [str(a) for (a,) in conn.execute(_LOGS).all()]
                for name, key_id in self.witnesses:
                    waiting: dict[str, list[object]] = {a: [] for a in agencies}
                    for agency, _size, signed_at in conn.execute(
                            _WITNESS_STATUS, {"name": name, "key_id": key_id}).all():
                        waiting.setdefault(str(agency), []).append(signed_at)
                    for agency, times in waiting.items():
                        behind.add_metric([agency, name], len(times))
                        lag.add_metric([agency, name], 0.0 if not times else
                                       max(now - _timestamp(times[0]), 0.0))
        yield behind
        yield lag


WITNESSES = WitnessCollector()
REGISTRY.register(WITNESSES)


def watch_witnesses(engine: Engine, vkeys: list[str]) -> None:
    """Report each configured witness's lag (`vkeys`: their verifier keys) on every scrape."""
    WITNESSES.engine = engine
    WITNESSES.witnesses = [(v.name, v.key_id.hex()) for v in map(parse_vkey, vkeys)]


class RolesCollector(Collector):
    """Per role (`api.roles.Role`): 1 if this node holds it, read from the database at scrape
    time (the holder is another process of the node: its anchorer, an ingest worker)."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.node = ""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        held = GaugeMetricFamily("kitledger_role_held",
                                 "1 on the node holding the role (one of all the nodes).",
                                 labels=["role"])
        if self.engine is not None:
            mine = set(roles_of_node(self.engine, self.node))
            for role in Role:
                held.add_metric([role.value], 1.0 if role.value in mine else 0.0)
        yield held


ROLES = RolesCollector()
REGISTRY.register(ROLES)


def watch_roles(engine: Engine, node: str) -> None:
    """Report which roles node `node` holds, from `engine`'s database, on every scrape."""
    ROLES.engine = engine
    ROLES.node = node


class ReadinessCollector(Collector):
    """Per readiness condition (`api.readiness.Condition`): 1 if it holds on this node, as
    `/readyz` checks it at scrape time."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.settings: Settings | None = None
        self.node = ""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ready = GaugeMetricFamily("kitledger_ready_condition",
                                  "1 if the readiness condition holds on this node, 0 if "
                                  "/readyz fails for it.", labels=["condition"])
        if self.engine is not None and self.settings is not None:
            failing = readiness.check(self.engine, self.settings, self.node).failing
            for condition in readiness.Condition:
                ready.add_metric([condition.value], 0.0 if condition in failing else 1.0)
        yield ready


READINESS = ReadinessCollector()
REGISTRY.register(READINESS)


def watch_readiness(engine: Engine, settings: Settings, node: str) -> None:
    """Report each readiness condition of node `node` on every scrape."""
    READINESS.engine = engine
    READINESS.settings = settings
    READINESS.node = node


class ReaderHealthCollector(Collector):
    """Readers' health from the `reader_health` table at scrape time: per agency, how many
    readers are up, down or with an antenna fault (a handful of series however many readers);
    per reader (up, read rate, age of its last health, and the temperature of readers that
    report one) only with `metrics_per_reader`: three or four series per reader, so ten
    thousand readers add thirty to forty thousand series to every scrape, which a Prometheus
    server takes but a small one should not be asked to."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.timeout_s = 120.0
        self.per_reader = False
        self.temperature_limit_c = DEFAULT_TEMPERATURE_LIMIT_C

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readers = GaugeMetricFamily("kitledger_readers", "Readers reporting health, by state "
                                    "(up, down, antenna_fault, overheat).",
                                    labels=["agency", "state"])
        up = GaugeMetricFamily("kitledger_reader_up", "1 if the reader is up (per reader).",
                               labels=["agency", "reader"])
        rate = GaugeMetricFamily("kitledger_reader_reads_per_second",
                                 "Tag reads a second the reader last reported.",
                                 labels=["agency", "reader"])
        age = GaugeMetricFamily("kitledger_reader_last_seen_seconds",
                                "Age of the reader's last health message.",
                                labels=["agency", "reader"])
        temperature = GaugeMetricFamily("kitledger_reader_temperature_celsius",
                                        "The reader's own temperature as last reported "
                                        "(readers whose protocol gives one).",
                                        labels=["agency", "reader"])
        if self.engine is not None:
            now = datetime.now(UTC)
            counts: dict[tuple[str, str], int] = {}
            with Session(self.engine) as session:
                for health in session.exec(select(ReaderHealth)):
                    problems = reader_problems(health, now, self.timeout_s,
                                               temperature_limit_c=self.temperature_limit_c)
                    down = AlertKind.READER_DOWN in problems
                    states = ["down" if down else "up"]
                    if AlertKind.ANTENNA_FAULT in problems:
                        states.append("antenna_fault")
                    if AlertKind.READER_OVERHEAT in problems:
                        states.append("overheat")
                    for state in states:
                        counts[(health.agency_id, state)] = counts.get(
                            (health.agency_id, state), 0) + 1
                    if self.per_reader:
                        labels = [health.agency_id, health.reader_id]
                        up.add_metric(labels, 0.0 if down else 1.0)
                        rate.add_metric(labels, health.reads_per_s or 0.0)
                        if health.temperature_c is not None:
                            temperature.add_metric(labels, health.temperature_c)
                        if health.seen_at is not None:
                            age.add_metric(labels, max(now.timestamp()
                                                       - _timestamp(health.seen_at), 0.0))
            for agency in sorted({agency for agency, _ in counts}):
                for state in ("up", "down", "antenna_fault", "overheat"):
                    readers.add_metric([agency, state], counts.get((agency, state), 0))
        yield readers
        if self.per_reader:
            yield up
            yield rate
            yield age
            yield temperature


READER_HEALTH = ReaderHealthCollector()
REGISTRY.register(READER_HEALTH)


def watch_reader_health(engine: Engine | None, timeout_s: float, *, per_reader: bool,
                        temperature_limit_c: float = DEFAULT_TEMPERATURE_LIMIT_C) -> None:
    """Report readers' health from `engine`'s database on every scrape."""
    READER_HEALTH.engine = engine
    READER_HEALTH.timeout_s = timeout_s
    READER_HEALTH.per_reader = per_reader
    READER_HEALTH.temperature_limit_c = temperature_limit_c
