"""The MQTT ingest worker: messages in, one committed batch at a time, then answers and acks.

`IngestWorker` composes three parts that each read alone: the MQTT side (`transport`: the
client, its callbacks, manual acks), taking and verifying batches (`batching`: adaptive batch
size, verification in a child process overlapping the batch before), and the periodic work
beside the batches (`scans`: overdue loans, reads held too long, decisions to mark
published). Its ingest thread takes a batch, has the pipeline commit it, publishes the
answers, and only then acknowledges the batch's messages: a batch that does not commit is
redelivered, never lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from api.config import Settings
from api.ingest.batching import STOP_POLL_S, Batcher, Verifying
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.publishing import DecisionPublisher
from api.ingest.scans import PeriodicScans
from api.ingest.transport import MqttTransport
from api.ingest.verifier_pool import VerifierPool, shareable
from api.metrics import DECISION_LATENCY_SECONDS

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0
"""How long `stop` waits for the batch in hand (and the settler) to finish."""


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
        self._thread: threading.Thread | None = None
        self._transport = MqttTransport(settings, client_id, self._on_connected)
        self.client = self._transport.client
        self.decisions = DecisionPublisher(pipeline.engine, self.client)
        self._batcher = Batcher(settings, self._transport.inbox, pipeline)
        self._scans = PeriodicScans(pipeline, self.decisions)

    def _on_connected(self) -> None:
        # Publishes refused while the broker was away are re-sent from their rows.
        self.decisions.resend_needed = True

    @property
    def verifiers(self) -> VerifierPool | None:
        """The child processes verifying this worker's batches (None: verified in the worker,
        or not started)."""
        return self._batcher.verifiers

    def start(self) -> None:
        """Connect (retrying in the background if the broker is down) and start consuming."""
        if self._settings.ingest_verify_processes and shareable(self._pipeline.engine):
            self._batcher.verifiers = VerifierPool(self._pipeline.engine,
                                                   self._settings.ingest_verify_processes)
        self._transport.start()
        self._scans.start_settler(self._stopping)
        self._thread = threading.Thread(target=self._run, name="kitledger-ingest", daemon=True)
        self._thread.start()

    def wait_subscribed(self, timeout: float) -> bool:
        return self._transport.subscribed.wait(timeout)

    def stop(self) -> None:
        """Finish the batch in hand, then disconnect; unacknowledged messages stay queued."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)
        self._scans.join_settler(STOP_TIMEOUT_S)
        self._scans.settle(force=True)
        self._transport.stop()
        if self._batcher.verifiers is not None:
            self._batcher.verifiers.close()

    def _run(self) -> None:
        batcher = self._batcher
        ahead: Verifying | None = None
        while not self._stopping.is_set():
            try:
                # Answers go out only through a connected client; batches need one anyway.
                if not self._transport.connected.wait(STOP_POLL_S):
                    continue
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
                following = None  # redelivered after the failed one, in order
            if following is not None and following.verdicts is None:
                # Verified here (a small batch): nothing to overlap, so no reason to wait.
                self._store(following)
                following = None
            ahead = following
        if ahead is not None:  # finish the batch in hand
            self._store(ahead)

    def _store(self, job: Verifying) -> bool:
        """Commit `job`'s batch, answer its readers, acknowledge its messages; False if it
        did not commit (its messages are redelivered)."""
        started = time.perf_counter()
        try:
            result = self._pipeline.process(job.envelopes, outcomes=self._batcher.verdicts(job),
                                            now=job.now)
        except Exception:
            # IngestError or a bug in the custody rules alike: nothing committed. Leave
            # the messages unacknowledged and drop the connection, so the broker
            # redelivers them to whichever worker of the group is alive.
            log.exception("ingest batch of %d failed; awaiting redelivery", len(job.batch))
            if not self._stopping.is_set():
                self._transport.redeliver()
            return False
        # Answers first (the reader is waiting), then the PUBACKs that end redelivery.
        self.decisions.publish(result.decisions)
        self.decisions.publish_acks(result.acks)  # the agents may now drop these rows
        if result.decisions:
            DECISION_LATENCY_SECONDS.observe(time.perf_counter() - started)
        self._transport.ack(job.batch)
        if self._on_batch is not None:
            self._on_batch(result)
        return True
