"""The MQTT ingest worker: shared subscription in, one committed batch, then PUBACKs.

Several workers join the MQTT v5 shared subscription `$share/<group>/kitledger/v1/+/+/+/events`
and the broker splits messages among them. paho's `manual_ack` holds each PUBACK until the
batch holding that message has committed, so a worker that dies before commit leaves its
messages unacknowledged and the broker redelivers them (persistent session, stable client id);
ingest is idempotent, so a redelivered message that did commit is only a replay. The MQTT v5
Receive Maximum bounds the messages in flight, and so this worker's memory.

An events message may carry several envelopes (`ledger.core.packing`: an agent sending a
backlog). Its envelopes are verified and recorded one by one, always in the same batch, and
the message is acknowledged once, when that batch has committed.

Batches are verified in a child process (`api.ingest.verifier`, `ingest_verify_processes`),
and under load they overlap by one: while batch N is stored (one transaction), batch N+1 is
verified, so a worker uses a second core. Batches are still stored and acknowledged one at a
time, in the order received.

Marking answered decisions published (`DecisionPublisher.settle`, an UPDATE of every decision
the broker acknowledged in the last half second) runs, on PostgreSQL, in a thread of its own,
over its own connection: between batches, its wait on the server held up the next batch,
costing ingest about a tenth of its rate. On SQLite, whose one writer it would queue behind
anyway, the ingest thread settles between batches.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from api.config import Settings
from api.custody.apply import release_stale_holds
from api.custody.overdue import raise_overdue_alerts
from api.custody.pending import HOLD_LIMIT, STALE_SCAN_WINDOW, stale_holds
from api.db import utcnow
from api.ingest.pipeline import BatchResult, IngestPipeline, Outcome
from api.ingest.publishing import SETTLE_INTERVAL_S, DecisionPublisher
from api.ingest.topics import events_subscription
from api.ingest.verifier import VERDICTS_TIMEOUT_S, Verdicts, VerifierPool, shareable
from api.ingest.verify import InboundMessage
from api.logstore import claim_log_writer
from api.metrics import DECISION_LATENCY_SECONDS
from ledger.core.packing import unpack

log = logging.getLogger(__name__)

SESSION_EXPIRY_S: Final = 24 * 3600
"""How long the broker keeps a worker's unacknowledged messages while it is away: a day covers
a crashed worker being restarted by hand after a night."""

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

STOP_POLL_S: Final = 0.2

OVERDUE_SCAN_S: Final = 60.0
"""Seconds between overdue-loan scans: loans run for days, so a minute's delay is harmless."""

HELD_SCAN_S: Final = 5.0
"""Seconds between scans for reads held past `api.custody.pending.HOLD_LIMIT`: a query on the
devices with an open gap (a handful), so cheap enough to run often."""


@dataclass(frozen=True, slots=True)
class _Delivery:
    """One MQTT message: the envelopes it carries, and what acknowledging it takes."""

    envelopes: list[InboundMessage]
    mid: int
    qos: int


@dataclass(frozen=True, slots=True)
class _Verifying:
    """A batch taken from the inbox, being verified (`verdicts`: in a child process)."""

    batch: list[_Delivery]
    envelopes: list[InboundMessage]
    now: datetime
    verdicts: Verdicts | None


class IngestWorker:
    """One MQTT client feeding an `IngestPipeline` in batches; `start()` then `stop()`."""

    def __init__(
        self, settings: Settings, pipeline: IngestPipeline, *, client_id: str | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._on_batch = on_batch
        self._inbox: queue.Queue[_Delivery] = queue.Queue()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self._thread: threading.Thread | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id or settings.mqtt_client_id,
            protocol=mqtt.MQTTv5, manual_ack=True,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.max_inflight_messages_set(DECISIONS_IN_FLIGHT)
        self.decisions = DecisionPublisher(pipeline.engine, self.client)
        self._verifiers: VerifierPool | None = None
        self._settler: threading.Thread | None = None
        self._loaded = False

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        # Twice a batch: one batch committing while the next one fills.
        props.ReceiveMaximum = min(MAX_RECEIVE_MAXIMUM, 2 * self._settings.ingest_batch_size)
        return props

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.ConnectFlags,
        reason: ReasonCode, properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            log.warning("ingest worker: broker refused connection: %s", reason)
            return
        client.subscribe(events_subscription(self._settings.mqtt_share_group), qos=1)
        self._subscribed.set()
        self._connected.set()
        # Publishes refused while the broker was away are re-sent from their rows.
        self.decisions.resend_needed = True

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: mqtt.DisconnectFlags,
        reason: ReasonCode, properties: Properties | None,
    ) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        topic = message.topic if isinstance(message.topic, str) else ""
        payload = bytes(message.payload)
        envelopes = ([payload] if len(payload) > MAX_EVENTS_BYTES
                     else unpack(payload, MAX_ENVELOPES_PER_MESSAGE))
        self._inbox.put(_Delivery(
            [InboundMessage(topic, envelope, message.mid) for envelope in envelopes],
            message.mid, message.qos))

    def start(self) -> None:
        """Connect (retrying in the background if the broker is down) and start consuming."""
        if self._settings.ingest_verify_processes and shareable(self._pipeline.engine):
            self._verifiers = VerifierPool(self._pipeline.engine,
                                           self._settings.ingest_verify_processes)
        self.client.connect_async(
            self._settings.mqtt_host, self._settings.mqtt_port, clean_start=False,
            properties=self._connect_properties(),
        )
        self.client.loop_start()
        self._thread = threading.Thread(target=self._run, name="kitledger-ingest", daemon=True)
        self._thread.start()
        if self._pipeline.engine.dialect.name != "sqlite":
            self._settler = threading.Thread(target=self._run_settler, name="kitledger-settle",
                                             daemon=True)
            self._settler.start()

    @property
    def verifiers(self) -> VerifierPool | None:
        """The child processes verifying this worker's batches (None: verified in the worker,
        or not started)."""
        return self._verifiers

    def wait_subscribed(self, timeout: float) -> bool:
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; unacknowledged messages stay queued."""
        self._stopping.set()
        for thread in (self._thread, self._settler):
            if thread is not None:
                thread.join(timeout=30)
        self._settle_decisions(force=True)
        self.client.disconnect()
        self.client.loop_stop()
        if self._verifiers is not None:
            self._verifiers.close()

    def _take_batch(self, *, wait: bool = True) -> list[_Delivery]:
        """Whole messages, about `ingest_batch_size` envelopes (a packed message is never
        split across batches: it is acknowledged once, when all of it has committed).
        Not `wait`: a batch is in hand already, so return at once if nothing is queued."""
        try:
            batch = [self._inbox.get(timeout=STOP_POLL_S) if wait else self._inbox.get_nowait()]
        except queue.Empty:
            return []
        # Adaptive: when idle, take what is queued and go (a lone read is answered at once);
        # only after a full batch (under load) wait to fill the next one, where the fixed cost
        # of a transaction is worth spreading over many reads.
        wait_ms = self._settings.ingest_batch_wait_ms if self._loaded else 0
        deadline = time.monotonic() + wait_ms / 1000
        envelopes = len(batch[0].envelopes)
        while envelopes < self._settings.ingest_batch_size:
            remaining = deadline - time.monotonic()
            try:
                delivery = (self._inbox.get(timeout=remaining) if remaining > 0
                            else self._inbox.get_nowait())
            except queue.Empty:
                break
            batch.append(delivery)
            envelopes += len(delivery.envelopes)
        self._loaded = envelopes >= self._settings.ingest_batch_size
        return batch

    def _scan_overdue(self) -> None:
        try:
            with Session(self._pipeline.engine) as session:
                raise_overdue_alerts(session, utcnow())
                session.commit()
        except SQLAlchemyError:
            log.exception("overdue scan failed; retrying at the next interval")

    def _scan_held(self, *, everything: bool) -> None:
        """Answer reads held past `HOLD_LIMIT` for a badge that never came; `everything`
        looks behind every open gap (the first scan), else behind recent ones."""
        now = utcnow()
        since = None if everything else now - STALE_SCAN_WINDOW
        try:
            with Session(self._pipeline.engine) as session:  # read only: usually nothing held
                if not stale_holds(session, now - HOLD_LIMIT, since):
                    return
            with Session(self._pipeline.engine) as session:
                claim_log_writer(session, now)
                decisions = release_stale_holds(
                    session, now, session_timeout=self._pipeline.session_timeout,
                    gaps_since=since)
                session.commit()
        except SQLAlchemyError:
            log.exception("held-read scan failed; retrying at the next interval")
            return
        self.decisions.publish(decisions)

    def _run(self) -> None:
        next_scan = next_held_scan = time.monotonic()
        everything = True  # the first held-read scan looks behind every open gap
        ahead: _Verifying | None = None
        while not self._stopping.is_set():
            try:
                # Answers go out only through a connected client; batches need one anyway.
                if not self._connected.wait(STOP_POLL_S):
                    continue
                if self.decisions.resend_needed:
                    self._resend_unpublished()
                if self._settler is None:
                    self._settle_decisions()
                if time.monotonic() >= next_scan:
                    self._scan_overdue()
                    next_scan = time.monotonic() + OVERDUE_SCAN_S
                if time.monotonic() >= next_held_scan:
                    self._scan_held(everything=everything)
                    everything = False
                    next_held_scan = time.monotonic() + HELD_SCAN_S
            except Exception:
                # Housekeeping must never end the ingest thread: log, and try again later.
                log.exception("ingest worker housekeeping failed; continuing")
            # Under load (the last batch was full) the next batch starts verifying, in a child,
            # before the one in hand is stored. Otherwise the one in hand is stored first: a
            # batch taken early is a small one, and each batch has a fixed cost.
            batch = self._take_batch(wait=ahead is None) if ahead is None or self._loaded else []
            following = self._verify(batch) if batch else None
            if ahead is not None and not self._store(ahead):
                following = None  # redelivered after the failed one, in order
            if following is not None and following.verdicts is None:
                # Verified here (a small batch): nothing to overlap, so no reason to wait.
                self._store(following)
                following = None
            ahead = following
        if ahead is not None:  # finish the batch in hand
            self._store(ahead)

    def _verify(self, batch: list[_Delivery]) -> _Verifying:
        envelopes = [envelope for delivery in batch for envelope in delivery.envelopes]
        now = self._pipeline.now()
        verdicts = (None if self._verifiers is None
                    else self._verifiers.submit(envelopes, self._pipeline.policy(now)))
        return _Verifying(batch, envelopes, now, verdicts)

    def _verdicts(self, job: _Verifying) -> list[Outcome] | None:
        """The batch's verdicts from its child; None: verify it here (no child, or it
        failed: the pool is restarted later, and this batch is not lost)."""
        if job.verdicts is None:
            return None
        try:
            return job.verdicts.result(timeout=VERDICTS_TIMEOUT_S)
        except Exception:  # it died (BrokenProcessPool), hung (TimeoutError), or failed
            log.exception("ingest verifier process failed; verifying in the worker")
            if self._verifiers is not None:
                self._verifiers.broken()
            return None

    def _store(self, job: _Verifying) -> bool:
        """Commit `job`'s batch, answer its readers, acknowledge its messages; False if it
        did not commit (its messages are redelivered)."""
        started = time.perf_counter()
        try:
            result = self._pipeline.process(job.envelopes, outcomes=self._verdicts(job),
                                            now=job.now)
        except Exception:
            # IngestError or a bug in the custody rules alike: nothing committed. Leave
            # the messages unacknowledged and drop the connection, so the broker
            # redelivers them to whichever worker of the group is alive.
            log.exception("ingest batch of %d failed; awaiting redelivery", len(job.batch))
            if not self._stopping.is_set():
                self._redeliver()
            return False
        # Answers first (the reader is waiting), then the PUBACKs that end redelivery.
        self.decisions.publish(result.decisions)
        if result.decisions:
            DECISION_LATENCY_SECONDS.observe(time.perf_counter() - started)
        for delivery in job.batch:
            self.client.ack(delivery.mid, delivery.qos)
        if self._on_batch is not None:
            self._on_batch(result)
        return True

    def _resend_unpublished(self) -> None:
        try:
            resent = self.decisions.resend_unpublished()
        except SQLAlchemyError:
            log.exception("could not re-send unpublished decisions; retrying")
            self.decisions.resend_needed = True
            return
        if resent:
            log.info("re-sent %d decisions not yet acknowledged by the broker", resent)

    def _run_settler(self) -> None:
        while not self._stopping.wait(SETTLE_INTERVAL_S):
            try:
                self._settle_decisions(force=True)  # paced here
            except Exception:  # as housekeeping in `_run`: never end the thread
                log.exception("marking decisions published failed; continuing")

    def _settle_decisions(self, *, force: bool = False) -> None:
        try:
            self.decisions.settle(utcnow(), force=force)
        except SQLAlchemyError:
            log.exception("marking decisions published failed; they are re-sent on restart")

    def _redeliver(self) -> None:
        while not self._inbox.empty():
            self._inbox.get_nowait()
        self.client.reconnect()
