"""Verifying ingest batches in a second process, while the worker stores the batch before.

An ingest worker is one Python process: its interpreter runs one thread at a time, so however
many cores the server has, checking a batch's signatures and schemas and storing the batch
before it would take turns. Verification needs no database writes and no state from the
batches before it (`api.ingest.checks`: only the registered readers, looked up by key id), so
a worker hands each batch's envelopes to a `VerifierPool`, one or more child processes with
their own reader directory, and meanwhile stores the previous batch. Batches are still stored
one at a time and in the order they were received.

The verdicts come back as the same `Verified` and `Rejected` values the worker would have
made itself. Both ways a batch travels as plain tuples, without what the other side has
already (the worker keeps the messages, so a verdict does not carry its message back): a
frozen dataclass pickles field by field in Python, which cost about 20 µs an envelope on
each side, a tenth of what verifying it takes.

The children start with the first batch of `MIN_OFFLOADED` envelopes or more (a quiet
worker never needs them), and until they are ready batches are verified in the worker. A
child that fails or dies only costs that batch being verified in the worker (`IngestWorker`),
and a fresh pool after `RESTART_AFTER_S`.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Final

from sqlalchemy import Engine

from api.db import engine_for_url
from api.ingest.checks import (
    ClockPolicy,
    InboundMessage,
    ReaderKey,
    Rejected,
    RejectReason,
    Verified,
    verify_messages,
)
from api.ingest.pipeline import Outcome, ReaderDirectory
from api.processes import die_with_parent, tune_collector
from ledger.core.records import Observation

log = logging.getLogger(__name__)

MIN_OFFLOADED: Final = 16
"""Envelopes a batch needs to be verified in a child: a smaller one (a lone read, a quiet
store) is verified in the worker, where it costs less than the round trip to the child."""

RESTART_AFTER_S: Final = 30.0
"""After a child dies, batches are verified in the worker this long before a new pool is
started: a child that crashes on start-up must not be re-spawned for every batch."""

VERDICTS_TIMEOUT_S: Final = 30.0
"""How long a worker waits for a batch's verdicts before it takes the child for hung and
verifies the batch itself: a child checks thousands of envelopes a second."""

_directory: ReaderDirectory | None = None
"""The registered readers, in a child process (`_start_child`)."""


def shareable(engine: Engine) -> bool:
    """Whether another process can open `engine`'s database (not an in-memory SQLite)."""
    return engine.url.get_backend_name() != "sqlite" or engine.url.database not in (
        None, "", ":memory:")


def _start_child(url: str, parent: int) -> None:
    """A child's set-up: leave with the worker, leave Ctrl-C to it, own database engine."""
    global _directory
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker stops its children itself
    _directory = ReaderDirectory(engine_for_url(url))
    tune_collector()


def _ready() -> int:
    return os.getpid()


_Accepted = tuple[ReaderKey, tuple[object, ...], datetime, bytes]
"""A `Verified` less its message: reader, observation's fields, time, envelope hash."""
_Refused = tuple[RejectReason, str, str | None, ReaderKey | None, tuple[int, int] | None]
"""A `Rejected` less its message: reason, detail, device, and whom it is attributed to."""

_observation_fields = attrgetter(*(f.name for f in fields(Observation)))
"""An observation's fields as a tuple, in `Observation(*values)` order."""


def _compact(outcome: Outcome) -> _Accepted | _Refused:
    if isinstance(outcome, Verified):
        return (outcome.reader, _observation_fields(outcome.observation), outcome.observed_at,
                outcome.envelope_hash)
    return (outcome.reason, outcome.detail, outcome.device_id, outcome.reader, outcome.seqs)


def _expand(message: InboundMessage, verdict: _Accepted | _Refused) -> Outcome:
    """The outcome `_compact` made of verifying `message`."""
    if not isinstance(verdict[0], RejectReason):
        reader, values, observed_at, envelope_hash = verdict
        return Verified(message, reader, Observation(*values), observed_at,  # type: ignore[arg-type]
                        message.payload, envelope_hash)
    reason, detail, device, signer, seqs = verdict
    return Rejected(message, reason, detail, device, signer, seqs)


def _verify(
    messages: Sequence[tuple[str, bytes]], policy: ClockPolicy
) -> list[_Accepted | _Refused]:
    """In a child: `verify_messages` against the child's reader directory, on (topic,
    payload) pairs."""
    if _directory is None:
        raise RuntimeError("verifier child was not initialised")
    return [_compact(outcome) for outcome in verify_messages(
        [InboundMessage(topic, payload) for topic, payload in messages], _directory, policy)]


class Verdicts:
    """A batch's verdicts on their way from a child: `result()` gives the outcomes."""

    def __init__(
        self, messages: Sequence[InboundMessage], future: Future[list[_Accepted | _Refused]]
    ) -> None:
        self._messages = messages
        self._future = future

    def result(self, timeout: float | None = None) -> list[Outcome]:
        """The outcomes, in the messages' order; raises what the child raised, or
        TimeoutError."""
        verdicts = self._future.result(timeout)
        if len(verdicts) != len(self._messages):
            raise RuntimeError(f"{len(verdicts)} verdicts for {len(self._messages)} messages")
        return [_expand(m, v) for m, v in zip(self._messages, verdicts, strict=True)]


class VerifierPool:
    """`processes` children verifying the batches of one ingest worker, reading the
    registered readers from `engine`'s database (`shareable`)."""

    def __init__(self, engine: Engine, processes: int = 1) -> None:
        if not shareable(engine):
            raise ValueError("an in-memory database cannot be shared with a verifier process")
        self._url = engine.url.render_as_string(hide_password=False)
        self._processes = processes
        self.offloaded = 0
        """Batches sent to a child so far."""
        self._executor: ProcessPoolExecutor | None = None
        self._ready: list[Future[int]] = []
        self._broken_at: float | None = None

    def start(self) -> None:
        """Start the children now rather than with the first batch big enough (`serve` does,
        so a worker is ready for the first burst); no-op if they are running."""
        if self._executor is None:
            self._start()

    def _start(self) -> None:
        """Start the children; they take a second or two to import, and until they are ready
        batches are verified in the worker rather than wait for them."""
        self._executor = ProcessPoolExecutor(
            self._processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_child, initargs=(self._url, os.getpid()),
        )
        self._ready = [self._executor.submit(_ready) for _ in range(self._processes)]

    def submit(
        self, messages: Sequence[InboundMessage], policy: ClockPolicy
    ) -> Verdicts | None:
        """Start verifying `messages` in a child; None: verify them in the worker (too few to
        be worth the trip, or no child to send them to)."""
        if len(messages) < MIN_OFFLOADED:
            return None
        if self._executor is None:
            # Started on the first batch big enough: a quiet worker never needs them.
            if self._broken_at is not None:
                if time.monotonic() - self._broken_at < RESTART_AFTER_S:
                    return None
                log.info("restarting the ingest verifier processes")
            try:
                self._start()
            except OSError:
                log.exception("could not start the ingest verifier processes")
                self.broken()
            return None
        if not self.ready():
            return None
        try:
            future = self._executor.submit(
                _verify, [(m.topic, m.payload) for m in messages], policy)
        except RuntimeError:  # BrokenProcessPool, or shut down by a concurrent close()
            self.broken()
            return None
        self.offloaded += 1
        return Verdicts(list(messages), future)

    def ready(self) -> bool:
        """Whether batches go to the children now (started, and done importing)."""
        return self._executor is not None and all(ready.done() for ready in self._ready)

    def broken(self) -> None:
        """A child died, hung or failed: stop the pool and its children; batches are verified
        in the worker until a new one starts, `RESTART_AFTER_S` from now."""
        # The children's own pids (each `_ready` answered with its child's): a hung child
        # would outlive a shut-down pool, so it is killed.
        pids = {ready.result() for ready in self._ready
                if ready.done() and not ready.cancelled() and ready.exception() is None}
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._executor = None
        self._ready = []
        self._broken_at = time.monotonic()

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = None
        self._ready = []
