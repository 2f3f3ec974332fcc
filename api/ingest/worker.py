"""The MQTT ingest worker: messages in, one committed batch at a time, then answers and acks.

`IngestWorker` composes three parts that each read alone: the MQTT side (`transport`: the
client, its callbacks, manual acks), taking and verifying batches (`batching`: adaptive batch
size, verification in a child process overlapping the batch before), and the periodic work
beside the batches (`scans`: overdue loans, reads held too long, decisions to mark
published). Its ingest thread takes a batch, has the pipeline commit it, publishes the
answers, and only then acknowledges the batch's messages: a batch that does not commit is
held, its messages unacknowledged, and tried again with a capped backoff (a database outage
is logged once when it starts and once when it ends, `api.outage`), never lost.

Stopping hands the worker's share of the load over: it unsubscribes (the broker gives new
messages to the rest of the group), stores, answers and acknowledges whatever it received,
waits for the broker to take its answers, and only then disconnects; so a node restarted in
turn leaves no reader waiting for it to come back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Final

from api.broker_status import BrokerState
from api.config import Settings
from api.ingest.answer_signing import AnswerSigner, SigningSink
from api.ingest.batching import STOP_POLL_S, Batcher, Verifying
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.publishing import DecisionPublisher
from api.ingest.scans import PeriodicScans
from api.ingest.transport import MqttTransport
from api.ingest.verifier_pool import VerifierPool, shareable
from api.metrics import DECISION_LATENCY_SECONDS
from api.outage import DATABASE, Outage, is_unavailable

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
"""How long `stop` waits for the batch in hand (and the settler) to finish."""

LEAVE_TIMEOUT_S: Final = 5.0
"""How long `stop` waits for the broker to confirm the unsubscribe before it stops anyway
(what is unacknowledged then waits at the broker for this client to return)."""

DRAIN_QUIET_S: Final = 0.3
"""Once unsubscribed, the worker stops when no message has come for this long: messages the
broker had queued for it follow each acknowledgement at once."""

PUBLISHED_WAIT_S: Final = 5.0
"""How long a stopping worker waits for the broker to take its last answers, so they are
marked published and not sent again by the next worker to start."""

RETRY_FIRST_S: Final = 0.1
"""Wait before trying a failed batch again; doubled on each failure up to `RETRY_MAX_S`."""

RETRY_MAX_S: Final = 5.0
"""The longest wait between tries of a held batch: a database back after an outage is
written to within this."""

BATCH_FAILURES = Outage("ingest batches", log, down="failing", up="committing again",
                        traceback=True)
"""Batches failing for another reason than the database (a bug in a rule): logged, with its
traceback, when they start failing and when they commit again."""


class IngestWorker:
    """One MQTT client feeding an `IngestPipeline` in batches; `start()` then `stop()`."""

    def __init__(
        self, settings: Settings, pipeline: IngestPipeline, *, client_id: str | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
    ) -> None:
        self._settings = settings
        self._pipeline = pipeline
        self._on_batch = on_batch
        self._stopping = threading.Event()
        self._leaving = threading.Event()
        self._thread: threading.Thread | None = None
        self._transport = MqttTransport(settings, client_id, self._on_connected)
        self.client = self._transport.client
        self.decisions = DecisionPublisher(
            pipeline.engine, SigningSink(self.client, AnswerSigner(settings.log_key_dir)))
        self._batcher = Batcher(settings, self._transport.inbox, pipeline)
        self._scans = PeriodicScans(pipeline, self.decisions)

    def _on_connected(self) -> None:
        # Publishes refused while the broker was away are re-sent from their rows.
        self._scans.connected()
        self.decisions.resend_needed = True

    def broker_state(self) -> tuple[BrokerState, str]:
        """Whether the worker is subscribed to the broker, and why not (`api.broker_status`)."""
        return self._transport.broker_state()

    @property
    def verifiers(self) -> VerifierPool | None:
        """The child processes verifying this worker's batches (None: verified in the worker,
        or not started)."""
        return self._batcher.verifiers

    def start(self, *, warm_s: float = 0.0) -> None:
        """Connect (retrying in the background if the broker is down) and start consuming;
        `warm_s`: first wait up to this long for the verifier children to start and for a
        database connection, so the messages the broker gives a node that has just started
        are not held up by its start (`serve` does; tests start at once)."""
        if self._settings.ingest_verify_processes and shareable(self._pipeline.engine):
            self._batcher.verifiers = VerifierPool(self._pipeline.engine,
                                                   self._settings.ingest_verify_processes)
        if warm_s > 0:
            self._warm_up(time.monotonic() + warm_s)
        self._transport.start()
        self._scans.start_settler(self._stopping)
        self._thread = threading.Thread(target=self._run, name="kitledger-ingest", daemon=True)
        self._thread.start()

    def _warm_up(self, deadline: float) -> None:
        verifiers = self._batcher.verifiers
        if verifiers is not None:
            verifiers.start()
            while not verifiers.ready() and time.monotonic() < deadline:
                time.sleep(STOP_POLL_S / 4)
        try:
            with self._pipeline.engine.connect():
                pass  # a pooled connection, ready for the first batch
        except Exception as exc:  # the database away: the first batch is held until it is back
            DATABASE.failed(exc, "connecting at start")

    def wait_subscribed(self, timeout: float) -> bool:
        return self._transport.subscribed.wait(timeout)

    def stop(self) -> None:
        """Hand over, then disconnect: unsubscribe, store, answer and acknowledge everything
        received, wait for the answers to reach the broker. If the broker does not confirm
        the unsubscribe, or the batch in hand cannot commit within `STOP_TIMEOUT_S`, stop
        anyway; unacknowledged messages stay queued at the broker."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        if self._thread is not None and self._transport.leave(LEAVE_TIMEOUT_S):
            self._leaving.set()  # the ingest thread ends once nothing more arrives
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._scans.join_settler(max(0.0, deadline - time.monotonic()))
        self._settle_published(min(deadline, time.monotonic() + PUBLISHED_WAIT_S))
        self._scans.close()
        self._transport.stop()
        if self._batcher.verifiers is not None:
            self._batcher.verifiers.close()

    def _settle_published(self, deadline: float) -> None:
        """Mark the answers published as the broker acknowledges them, until all are or
        `deadline` passes (those left are re-sent by the next worker to start)."""
        self._scans.settle(force=True)
        while self.decisions.unsettled() and time.monotonic() < deadline:
            time.sleep(STOP_POLL_S / 4)
            self._scans.settle(force=True)

    def _run(self) -> None:
        batcher = self._batcher
        ahead: Verifying | None = None
        while not self._stopping.is_set():
            try:
                # Answers go out only through a connected client; batches need one anyway.
                if not self._transport.connected.wait(STOP_POLL_S):
                    continue
                if not self._leaving.is_set():
                    self._scans.run_due()
            except Exception:
                # Housekeeping must never end the ingest thread: log, and try again later.
                log.exception("ingest worker housekeeping failed; continuing")
            # Under load (the last batch was full) the next batch starts verifying, in a child,
            # before the one in hand is stored. Otherwise the one in hand is stored first: a
            # batch taken early is a small one, and each batch has a fixed cost.
            batch = batcher.take(wait=ahead is None) if ahead is None or batcher.loaded else []
            following = batcher.verify(batch) if batch else None
            if ahead is not None and not self._store(ahead):
                break  # stopped while it could not commit: all of it stays unacknowledged
            if following is not None and following.verdicts is None:
                # Verified here (a small batch): nothing to overlap, so no reason to wait.
                if not self._store(following):
                    break
                following = None
            ahead = following
            if (self._leaving.is_set() and ahead is None and not batch
                    and self._transport.quiet_for(DRAIN_QUIET_S)):
                return  # handed over: everything received is stored and acknowledged
        if ahead is not None and not self._stopping.is_set():  # finish the batch in hand
            self._store(ahead)

    def _store(self, job: Verifying) -> bool:
        """Commit `job`'s batch, answer its readers, acknowledge its messages; False if it
        did not commit before the worker was told to stop (its messages stay unacknowledged,
        for the broker to deliver again)."""
        started = time.perf_counter()
        delay = RETRY_FIRST_S
        while True:
            try:
                result = self._pipeline.process(
                    job.envelopes, outcomes=self._batcher.verdicts(job), now=job.now)
                break
            except Exception as exc:
                # The database away, or a bug in the custody rules: nothing committed. Hold
                # the batch (its messages unacknowledged) and try it again; reconnecting to
                # the broker would only bring the same messages back.
                failures = DATABASE if is_unavailable(exc) else BATCH_FAILURES
                failures.failed(exc, f"storing a batch of {len(job.batch)} messages")
                if self._stopping.wait(delay):
                    return False
                delay = min(2 * delay, RETRY_MAX_S)
        DATABASE.ok()
        BATCH_FAILURES.ok()
        # Answers first (the reader is waiting), then the PUBACKs that end redelivery.
        self.decisions.publish(result.decisions)
        self.decisions.publish_acks(result.acks)  # the agents may now drop these rows
        if result.decisions:
            DECISION_LATENCY_SECONDS.observe(time.perf_counter() - started)
        self._transport.ack(job.batch)
        if self._on_batch is not None:
            self._on_batch(result)
        return True
