"""Taking batches from the worker's inbox, and verifying the next while the last is stored.

Batches are adaptive: when idle, the worker takes what is queued and goes (a lone read is
answered at once); only after a full batch (under load) does it wait to fill the next one,
where the fixed cost of a transaction is worth spreading over many reads. A packed message is
never split across batches: it is acknowledged once, when all of it has committed.

Batches are verified in a child process (`api.ingest.verifier_pool`, setting
`ingest_verify_processes`), and under load they overlap by one: while batch N is stored (one
transaction), batch N+1 is verified, so a worker uses a second core. Batches are still stored
and acknowledged one at a time, in the order received.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from api.config import Settings
from api.ingest.checks import InboundMessage
from api.ingest.pipeline import IngestPipeline, Outcome
from api.ingest.transport import Delivery
from api.ingest.verifier_pool import VERDICTS_TIMEOUT_S, Verdicts, VerifierPool
from api.outage import DATABASE, is_unavailable

log = logging.getLogger(__name__)

STOP_POLL_S: Final = 0.2
"""How long the ingest thread waits for a message before it looks whether to stop."""


@dataclass(frozen=True, slots=True)
class Verifying:
    """A batch taken from the inbox, being verified (`verdicts`: in a child process)."""

    batch: list[Delivery]
    envelopes: list[InboundMessage]
    now: datetime
    verdicts: Verdicts | None


class Batcher:
    """Takes batches from `inbox` and starts verifying them (in `verifiers`, when given)."""

    def __init__(
        self, settings: Settings, inbox: queue.Queue[Delivery], pipeline: IngestPipeline,
    ) -> None:
        self._settings = settings
        self._inbox = inbox
        self._pipeline = pipeline
        self.verifiers: VerifierPool | None = None
        self.loaded = False
        """The last batch taken was full: the worker is under load."""

    def take(self, *, wait: bool = True) -> list[Delivery]:
        """Whole messages, about `ingest_batch_size` envelopes. Not `wait`: a batch is in
        hand already, so return at once if nothing is queued."""
        try:
            batch = [self._inbox.get(timeout=STOP_POLL_S) if wait else self._inbox.get_nowait()]
        except queue.Empty:
            return []
        wait_ms = self._settings.ingest_batch_wait_ms if self.loaded else 0
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
        self.loaded = envelopes >= self._settings.ingest_batch_size
        return batch

    def verify(self, batch: list[Delivery]) -> Verifying:
        """Start verifying `batch`: in a child if one takes it, else later, when stored."""
        envelopes = [envelope for delivery in batch for envelope in delivery.envelopes]
        now = self._pipeline.now()
        verdicts = (None if self.verifiers is None
                    else self.verifiers.submit(envelopes, self._pipeline.policy(now)))
        return Verifying(batch, envelopes, now, verdicts)

    def verdicts(self, job: Verifying) -> list[Outcome] | None:
        """The batch's verdicts from its child; None: verify it in the worker (no child, or
        it failed: the pool is restarted later, and this batch is not lost)."""
        if job.verdicts is None:
            return None
        try:
            return job.verdicts.result(timeout=VERDICTS_TIMEOUT_S)
        except Exception as exc:  # it died (BrokenProcessPool), hung (TimeoutError), or failed
            if is_unavailable(exc):  # its reader lookup found the database away: not broken
                DATABASE.failed(exc, "verifying a batch")
                return None
            log.exception("ingest verifier process failed; verifying in the worker")
            if self.verifiers is not None:
                self.verifiers.broken()
            return None
