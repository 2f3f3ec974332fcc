"""Prometheus metrics of the service: ingest rate, rejections by reason, latencies.

Metrics live on prometheus_client's default registry, which `/metrics` serves; they are
process-wide counters, so creating them at import is the library's intended use.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

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
