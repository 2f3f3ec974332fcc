"""Verification in a child process (`api.ingest.verifier_pool`): the same verdicts as the worker's
own, batches still stored in order, and a child that dies costs nothing but a retry."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import timedelta

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine

from api.config import load_settings
from api.db import make_engine
from api.ingest import batching
from api.ingest import verifier_pool as verifier
from api.ingest.checks import MAX_MESSAGE_BYTES, InboundMessage, Rejected, Verified
from api.ingest.pipeline import IngestPipeline
from api.ingest.verifier_pool import MIN_OFFLOADED, VerifierPool, shareable
from api.ingest.worker import IngestWorker
from api.models import IngestedObservation, QuarantinedMessage
from api.models.ingest import SequenceGap
from ledger.core.envelope import sign_envelope
from ledger.core.packing import pack
from ledger.core.records import format_time
from tests.api.api_support import RegisteredReader, register_reader, stored
from tests.fixtures.polling import wait_for


def _mixed_batch(reader: RegisteredReader, pipeline: IngestPipeline) -> list[InboundMessage]:
    """Good reads, and one of each refusal verification can make."""
    good = [reader.message(seq) for seq in range(MIN_OFFLOADED + 4)]
    stranger = RegisteredReader(reader.reader_id, reader.agency_id, reader.site_id,
                                Ed25519PrivateKey.generate())
    forged = reader.signed(90).replace(b'"seq":90', b'"seq":91')
    ahead = format_time(pipeline.now() + timedelta(hours=1))
    skewed = sign_envelope(reader.observation(92, time=ahead).to_record(), reader.key)
    return [
        *good,
        InboundMessage(reader.topic, forged, 90),
        stranger.message(93),
        InboundMessage(reader.topic, b"{not json", 94),
        InboundMessage(reader.topic, b" " * (MAX_MESSAGE_BYTES + 1), 95),
        InboundMessage(reader.topic, skewed.to_bytes(), 96),
        InboundMessage("kitledger/v1/other/place/rdr-9/events", reader.signed(97), 97),
    ]


def _when_ready(pool: VerifierPool, submit: Callable[[], object]) -> None:
    """Submit once, to start the children; wait until they are ready."""
    assert submit() is None  # starting: this batch is verified in the worker
    assert wait_for(pool.ready, 60)


def test_a_child_gives_the_verdicts_the_worker_would(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    messages = _mixed_batch(reader, pipeline)
    now = pipeline.now()
    pool = VerifierPool(engine)
    try:
        assert not pool.ready()  # nothing started before a batch needs it
        _when_ready(pool, lambda: pool.submit(messages, pipeline.policy(now)))
        future = pool.submit(messages, pipeline.policy(now))
        assert future is not None
        verdicts = future.result(timeout=60)
    finally:
        pool.close()
    assert verdicts == pipeline.verify(messages, now)
    assert pool.offloaded == 1
    accepted = [v for v in verdicts if isinstance(v, Verified)]
    assert [v.observation.seq for v in accepted] == list(range(MIN_OFFLOADED + 4))
    assert sorted(v.reason.value for v in verdicts if isinstance(v, Rejected)) == [
        "bad_signature", "bad_topic", "clock_skew", "malformed", "oversize", "unknown_device"]


def test_verdicts_that_do_not_match_their_batch_are_refused(
    reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    """Verdicts travel without their messages and are paired with them by position, so a
    child answering for another number of messages is an error (the worker then verifies
    the batch itself), never a verdict given to the wrong envelope."""
    messages = [reader.message(seq) for seq in range(3)]
    answered: Future[list[object]] = Future()
    answered.set_result([verifier._compact(o)
                         for o in pipeline.verify(messages[:2], pipeline.now())])
    with pytest.raises(RuntimeError, match="2 verdicts for 3 messages"):
        verifier.Verdicts(messages, answered).result()  # type: ignore[arg-type]


def test_a_small_batch_is_verified_in_the_worker(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    pool = VerifierPool(engine)
    try:
        messages = [reader.message(seq) for seq in range(MIN_OFFLOADED - 1)]
        assert pool.submit(messages, pipeline.policy(pipeline.now())) is None
        assert not pool.ready()  # and no child was started for it
        big = [reader.message(seq) for seq in range(MIN_OFFLOADED)]
        _when_ready(pool, lambda: pool.submit(big, pipeline.policy(pipeline.now())))
        assert pool.submit(messages, pipeline.policy(pipeline.now())) is None
        assert pool.offloaded == 0
    finally:
        pool.close()


def test_started_ahead_the_children_take_the_first_big_batch(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    """As `serve` starts them: ready before any batch, so the first big one goes to them."""
    pool = VerifierPool(engine)
    try:
        pool.start()
        assert wait_for(pool.ready, 60)
        pool.start()  # running already: nothing more is started
        messages = [reader.message(seq) for seq in range(MIN_OFFLOADED)]
        future = pool.submit(messages, pipeline.policy(pipeline.now()))
        assert future is not None
        assert future.result(timeout=60) == pipeline.verify(messages, pipeline.now())
    finally:
        pool.close()
    assert not pool.ready()


def test_a_hung_child_is_killed_and_its_batch_verified_in_the_worker(
    engine: Engine, mosquitto: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped child (SIGSTOP: as hung as a process gets) never answers: after
    `VERDICTS_TIMEOUT_S` the worker verifies the batch itself and kills the child."""
    port: int = mosquitto.port  # type: ignore[attr-defined]
    reader = register_reader(engine)
    monkeypatch.setattr(batching, "VERDICTS_TIMEOUT_S", 1.0)
    before = _children()
    with _worker(engine, port) as pool:
        pool.start()
        assert wait_for(pool.ready, 60)
        hung = _children() - before
        assert hung
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(50)])])
        assert wait_for(lambda: _stored(engine) == 50)
        assert pool.offloaded == 1
        assert not pool.ready()
        assert wait_for(lambda: not (_children() & hung))  # killed, and reaped


def test_an_in_memory_database_is_not_shared_with_a_child(tmp_path: object) -> None:
    memory = make_engine(load_settings(database_url="sqlite://"))
    assert not shareable(memory)
    with pytest.raises(ValueError, match="in-memory"):
        VerifierPool(memory)
    worker = IngestWorker(load_settings(mqtt_url="mqtt://127.0.0.1:1"),
                          IngestPipeline(memory, load_settings(database_url="sqlite://")))
    assert worker.verifiers is None  # verified in the worker


def _stored(engine: Engine, model: type = IngestedObservation) -> int:
    return stored(engine, model)


def _publish(port: int, topic: str, payloads: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-agent",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(topic, p, qos=1) for p in payloads]:
            info.wait_for_publish(10)
    finally:
        client.loop_stop()


@contextmanager
def _worker(engine: Engine, port: int) -> Iterator[VerifierPool]:
    """An ingest worker taking batches of 50 envelopes, subscribed; its verifier pool."""
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{port}", ingest_batch_size=50,
                             ingest_batch_wait_ms=5)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    try:
        assert worker.wait_subscribed(10)
        assert worker.verifiers is not None
        yield worker.verifiers
    finally:
        worker.stop()


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


def test_batches_verified_in_a_child_are_stored_in_order_and_a_dead_child_loses_nothing(
    engine: Engine, mosquitto: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first batch big enough starts the child (and is verified in the worker). Then four
    packed messages, batches of 50 envelopes: each is verified in the child while the one
    before is stored, and stored in order (no sequence gap ever opens). Then the child is
    killed: the next batches are verified in the worker, all stored, and after
    `RESTART_AFTER_S` a new child takes over."""
    port: int = mosquitto.port  # type: ignore[attr-defined]
    reader = register_reader(engine)
    monkeypatch.setattr(verifier, "RESTART_AFTER_S", 1.0)
    before = _children()
    with _worker(engine, port) as pool:
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(50)])])
        assert wait_for(lambda: _stored(engine) == 50)
        assert wait_for(pool.ready, 60)
        assert pool.offloaded == 0
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(n, n + 50)])
                                      for n in range(50, 250, 50)])
        assert wait_for(lambda: _stored(engine) == 250)
        assert pool.offloaded == 4
        assert _stored(engine, SequenceGap) == 0
        assert _children() - before
        for pid in _children() - before:
            os.kill(pid, signal.SIGKILL)
        offloaded = pool.offloaded
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(n, n + 50)])
                                      for n in range(250, 350, 50)])
        assert wait_for(lambda: _stored(engine) == 350)
        # Both may have gone to the dead child before its death was noticed (the second is
        # sent while the first is stored); both were then verified in the worker.
        assert pool.offloaded - offloaded <= 2
        assert not pool.ready()
        time.sleep(1.2)  # RESTART_AFTER_S: the next batch big enough starts a new child
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(350, 400)])])
        assert wait_for(lambda: _stored(engine) == 400)
        assert wait_for(pool.ready, 60)
        offloaded = pool.offloaded
        _publish(port, reader.topic, [pack([reader.signed(seq) for seq in range(400, 450)])])
        assert wait_for(lambda: _stored(engine) == 450)
        assert pool.offloaded == offloaded + 1
    assert _stored(engine, QuarantinedMessage) == 0
    assert _stored(engine, SequenceGap) == 0
