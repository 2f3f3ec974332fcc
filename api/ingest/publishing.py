"""Decisions out to the readers, at least once: publish, then mark published on the PUBACK.
End-to-end acks go out through the same client, at QoS 0 and unrecorded (`api.ingest.acks`).

A decision row is committed with its observation's batch and `published_at` empty. The worker
publishes it at QoS 1 after the commit; when the broker has acknowledged the publish, the row
is marked published (many at a time, in one short transaction). A worker that crashes in
between leaves rows unmarked, and every worker re-sends the unmarked rows when it starts, so a
reader never waits forever for an answer. A decision may therefore arrive twice; the agent
matches answers to its observations by sequence number, so a repeat changes nothing.

A batch's answers to one reader go out together: one message holding a JSON array of decisions
(a lone answer stays a bare object), at most `MAX_DECISIONS_PER_MESSAGE` and
`MAX_MESSAGE_BYTES` each. A tray of 250 radios is then a few publishes rather than 250, and
each publish and its PUBACK cost the worker as much CPU as ruling on a read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Final, Protocol

from sqlalchemy import ColumnElement, Engine, select, update
from sqlmodel import Session

from api.db import among, table, writer_turn
from api.ingest.acks import AckMessage
from api.ingest.answers import DecisionMessage, decision_payload
from api.models.custody import Decision
from ledger.core.packing import chunks, pack

_DECISIONS = table(Decision)

MAX_RESEND: Final = 10_000
"""Unpublished decisions re-sent at start: more than a crashed worker can have had in flight
(two batches), bounded so a start after a long broker outage stays quick."""

MAX_INFLIGHT: Final = 100_000
"""Publishes awaiting their PUBACK; beyond this the oldest are forgotten (still unmarked, so
the next start re-sends them), so a broker that never acknowledges cannot grow memory."""

SETTLE_INTERVAL_S: Final = 0.5
"""How often acknowledged publishes are marked: one small write transaction per interval."""


MAX_DECISIONS_PER_MESSAGE: Final = 256
"""Decisions packed into one message: the reader agent refuses a longer array
(`reader_agent.decisions.MAX_DECISIONS_PER_MESSAGE`)."""

MAX_MESSAGE_BYTES: Final = 60_000
"""Bytes of one decisions message, under the agent's 64 KiB limit
(`reader_agent.decisions.MAX_DECISION_BYTES`); a decision is at most about 800 bytes."""


def packed(decisions: list[DecisionMessage]) -> Iterator[tuple[str, bytes, list[int]]]:
    """`decisions` as messages: (topic, payload, decision ids), each reader's answers in their
    order, as many to a message as the limits allow."""
    by_topic: dict[str, list[DecisionMessage]] = {}
    for decision in decisions:
        by_topic.setdefault(decision.topic, []).append(decision)
    for topic, answers in by_topic.items():
        sizes = [len(answer.payload) for answer in answers]
        for span in chunks(sizes, MAX_DECISIONS_PER_MESSAGE, MAX_MESSAGE_BYTES):
            chunk = answers[span.start:span.stop]
            yield (topic, pack([d.payload for d in chunk]),
                   [d.decision_id for d in chunk if d.decision_id is not None])


class PublishReceipt(Protocol):
    """paho's `MQTTMessageInfo`, as far as it is used here: `is_published` raises
    RuntimeError when the publish was refused (the client was not connected)."""

    def is_published(self) -> bool: ...


class DecisionSink(Protocol):
    """An MQTT client's `publish`, as far as it is used here."""

    def publish(self, topic: str, payload: bytes, qos: int) -> PublishReceipt: ...


class DecisionPublisher:
    """Publishes decisions through `client` and records which ones the broker has."""

    def __init__(self, engine: Engine, client: DecisionSink) -> None:
        self._engine = engine
        self._client = client
        self._inflight: list[tuple[list[int], PublishReceipt]] = []
        self._inflight_lock = threading.Lock()  # `settle` may run in a thread of its own
        self._next_settle = 0.0
        self.resend_needed = False
        """Some publish was refused (no connection): re-send the unpublished rows once the
        client is connected again (`resend_unpublished`)."""

    def publish(self, decisions: list[DecisionMessage]) -> None:
        sent = []
        for topic, payload, ids in packed(decisions):
            receipt = self._client.publish(topic, payload, qos=1)
            if ids:
                sent.append((ids, receipt))
        with self._inflight_lock:
            self._inflight += sent
            if len(self._inflight) > MAX_INFLIGHT:
                del self._inflight[: len(self._inflight) - MAX_INFLIGHT]

    def publish_acks(self, acks: list[AckMessage]) -> None:
        """Send end-to-end acks: QoS 0, nothing recorded (an ack is repeated, not re-sent)."""
        for ack in acks:
            self._client.publish(ack.topic, ack.payload, qos=0)

    def unsettled(self) -> int:
        """Publishes not yet marked published (awaiting their PUBACK, or the next settle)."""
        with self._inflight_lock:
            return len(self._inflight)

    def settle(self, now: datetime, *, force: bool = False) -> int:
        """Mark the acknowledged publishes published; return how many were marked."""
        if not self._inflight or (not force and time.monotonic() < self._next_settle):
            return 0
        self._next_settle = time.monotonic() + SETTLE_INTERVAL_S
        done: list[int] = []
        waiting: list[tuple[list[int], PublishReceipt]] = []
        with self._inflight_lock:
            inflight, self._inflight = self._inflight, []
        for ids, receipt in inflight:
            try:
                if receipt.is_published():
                    done += ids
                else:
                    waiting.append((ids, receipt))
            except RuntimeError:  # never sent: the rows stay unpublished, to be re-sent
                self.resend_needed = True
        with self._inflight_lock:
            self._inflight[:0] = waiting  # ahead of what was published meanwhile
        if not done:
            return 0
        with writer_turn(self._engine), Session(self._engine) as session:
            connection = session.connection()
            connection.execute(update(_DECISIONS).where(
                among(_DECISIONS.c.id, done, connection)).values(published_at=now))
            session.commit()
        return len(done)

    def resend_unpublished(self, created_before: datetime | None = None) -> int:
        """Publish again every decision committed but never acknowledged (after a crash, or
        publishes refused while the broker was away); `created_before`: only those older
        (at a worker's start, not another node's answers that are still being settled)."""
        self.resend_needed = False
        columns = _DECISIONS.c
        unpublished: list[ColumnElement[bool]] = [columns.published_at.is_(None)]
        if created_before is not None:
            unpublished.append(columns.created_at < created_before)
        with Session(self._engine) as session:
            rows = session.connection().execute(
                select(columns.id, columns.topic, columns.seq, columns.decision, columns.reason,
                       columns.asset_id, columns.action)
                .where(*unpublished).order_by(columns.id).limit(MAX_RESEND)
            ).all()
        self.publish([
            DecisionMessage(topic, decision_payload({
                "seq": seq, "decision": decision, "reason": reason, "asset": asset_id,
                "action": action,
            }), decision_id)
            for decision_id, topic, seq, decision, reason, asset_id, action in rows
        ])
        return len(rows)
