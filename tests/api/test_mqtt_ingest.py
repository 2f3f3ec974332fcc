"""MQTT ingest with a real Mosquitto: shared subscription, ack after commit, redelivery."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.decisions import Decision as Answer
from reader_agent.decisions import parse_decisions
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from api.config import Settings, load_settings
from api.custody.batch import CustodyBatch
from api.custody.pending import HOLD_LIMIT
from api.custody.reads import VerifiedRead
from api.custody.ruling import rule_on_arrivals
from api.ingest.checks import InboundMessage
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.transport import MAX_ENVELOPES_PER_MESSAGE
from api.ingest.worker import IngestWorker
from api.models import Decision, IngestedObservation, QuarantinedMessage
from api.models.assets import AssetClass, AssetCreate
from api.models.people import PersonCreate
from api.registry import create_asset, create_person
from ledger.core.packing import pack
from tests.api.api_support import (
    RegisteredReader,
    register_radio,
    register_reader,
    stored,
)
from tests.fixtures.polling import wait_for


def _settings(port: int) -> Settings:
    return load_settings(mqtt_url=f"mqtt://127.0.0.1:{port}", ingest_batch_wait_ms=5)


def _publisher(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-agent",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _subscribe(client: mqtt.Client, topic: str) -> None:
    """Subscribes and waits for the broker's SUBACK: a decision published before the broker
    holds the subscription would never reach the test."""
    acknowledged = threading.Event()
    client.on_subscribe = lambda *_: acknowledged.set()
    client.subscribe(topic, qos=1)
    assert acknowledged.wait(10), f"the broker did not acknowledge the subscription to {topic}"


def _publish(client: mqtt.Client, topic: str, payloads: list[bytes]) -> None:
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)


@contextmanager
def _worker_and_agent(engine: Engine, port: int) -> Iterator[mqtt.Client]:
    """An ingest worker, subscribed, and a client publishing as an agent; both stopped after."""
    settings = _settings(port)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    agent = _publisher(port)
    try:
        yield agent
    finally:
        agent.loop_stop()
        worker.stop()


def _stored(engine: Engine, model: type = IngestedObservation) -> int:
    return stored(engine, model)


def _wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    return wait_for(predicate, timeout)


def test_worker_ingests_published_envelopes_and_quarantines_junk(
    engine: Engine, reader: RegisteredReader, mosquitto: object
) -> None:
    with _worker_and_agent(engine, mosquitto.port) as agent:  # type: ignore[attr-defined]
        payloads = [reader.signed(seq) for seq in range(50)]
        _publish(agent, reader.topic, payloads + payloads[:10] + [b"\x00junk", b"{}"])
        assert _wait_for(lambda: _stored(engine) == 50 and _stored(engine, QuarantinedMessage) == 2)
    time.sleep(0.3)  # replays are acknowledged, not stored: still 50
    assert _stored(engine) == 50


def test_packed_messages_are_ingested_envelope_by_envelope_and_bad_packs_quarantined(
    engine: Engine, reader: RegisteredReader, mosquitto: object
) -> None:
    """An agent with a backlog packs up to 50 envelopes to a message: each is verified on its
    own (a forged one among good ones is refused alone); an array that is not a packing (too
    long, an element not an object) is refused whole, as one message."""
    forged = reader.signed(60).replace(b'"seq":60', b'"seq":61')
    assert forged != reader.signed(60)
    with _worker_and_agent(engine, mosquitto.port) as agent:  # type: ignore[attr-defined]
        first = [reader.signed(seq) for seq in range(50)]
        _publish(agent, reader.topic, [
            pack(first),
            pack([reader.signed(50), forged, first[3], reader.signed(51)]),  # first[3]: a replay
            pack([reader.signed(seq) for seq in range(100, 100 + MAX_ENVELOPES_PER_MESSAGE + 1)]),
            b"[" + reader.signed(200) + b",5]",
        ])
        assert _wait_for(lambda: _stored(engine, QuarantinedMessage) == 3)
        assert _wait_for(lambda: _stored(engine) == 52)
    with Session(engine) as session:
        reasons = sorted(session.exec(select(QuarantinedMessage.reason)).all())
        seqs = set(session.exec(select(IngestedObservation.seq)).all())
    assert reasons == ["bad_signature", "malformed", "oversize"]
    assert seqs == set(range(52))


def test_two_workers_share_the_load_and_store_each_message_once(
    engine: Engine, reader: RegisteredReader, mosquitto: object
) -> None:
    port: int = mosquitto.port  # type: ignore[attr-defined]
    settings = _settings(port)
    counts = {"a": 0, "b": 0}
    lock = threading.Lock()

    def counter(name: str) -> Callable[[BatchResult], None]:
        def count(result: BatchResult) -> None:
            with lock:
                counts[name] += len(result.recorded.accepted)
        return count

    workers = [
        IngestWorker(settings, IngestPipeline(engine, settings), client_id=f"ingest-{name}",
                     on_batch=counter(name))
        for name in counts
    ]
    for worker in workers:
        worker.start()
        assert worker.wait_subscribed(10)
    publisher = _publisher(port)
    try:
        _publish(publisher, reader.topic, [reader.signed(seq) for seq in range(300)])
        assert _wait_for(lambda: _stored(engine) == 300)
    finally:
        publisher.loop_stop()
        for worker in workers:
            worker.stop()
    assert counts["a"] > 0 and counts["b"] > 0 and counts["a"] + counts["b"] == 300


@pytest.mark.parametrize("per_message", [1, 5])
def test_batch_that_fails_before_commit_is_redelivered_not_lost(
    engine: Engine, reader: RegisteredReader, mosquitto: object, per_message: int
) -> None:
    port: int = mosquitto.port  # type: ignore[attr-defined]
    settings = _settings(port)
    failures = {"left": 2}

    def crash_twice(
        batch: CustodyBatch, reads: Sequence[VerifiedRead], refilled: Mapping[str, int]
    ) -> None:
        if failures["left"] > 0 and reads:
            failures["left"] -= 1
            raise RuntimeError("simulated crash before commit")
        rule_on_arrivals(batch, reads, refilled)

    worker = IngestWorker(settings, IngestPipeline(engine, settings, custody=crash_twice))
    worker.start()
    assert worker.wait_subscribed(10)
    publisher = _publisher(port)
    try:
        envelopes = [reader.signed(seq) for seq in range(20)]
        _publish(publisher, reader.topic, [pack(envelopes[n:n + per_message])
                                           for n in range(0, 20, per_message)])
        assert _wait_for(lambda: _stored(engine) == 20)
    finally:
        publisher.loop_stop()
        worker.stop()
    assert failures["left"] == 0


def test_unacknowledged_messages_go_to_the_next_worker_after_a_crash(
    engine: Engine, reader: RegisteredReader, mosquitto: object
) -> None:
    """A worker dies holding messages it never acknowledged: a restarted worker with the same
    client id gets them again from the broker's persistent session."""
    port: int = mosquitto.port  # type: ignore[attr-defined]
    settings = _settings(port)
    stuck, release = threading.Event(), threading.Event()

    class HangingPipeline(IngestPipeline):
        # Hangs before its transaction: a killed process holds no database lock.
        def process(self, messages: Sequence[InboundMessage], **_: Any) -> BatchResult:
            stuck.set()
            release.wait(30)  # the worker is "killed" while in here
            raise RuntimeError("never commits")

    doomed = IngestWorker(settings, HangingPipeline(engine, settings), client_id="ingest-crash")
    doomed.start()
    assert doomed.wait_subscribed(10)
    publisher = _publisher(port)
    _publish(publisher, reader.topic, [reader.signed(seq) for seq in range(10)])
    assert stuck.wait(10)
    doomed.client.loop_stop()
    sock = doomed.client.socket()
    assert sock is not None
    sock.close()  # like kill -9: no DISCONNECT, no PUBACK
    doomed._stopping.set()
    # A killed process's database sessions end with it, and the scans' roles (PostgreSQL
    # advisory locks) with them: left open, they would outlive the test on the shared database
    # and keep every later worker from the held-read scan.
    doomed._scans.close()
    time.sleep(0.5)
    revived = IngestWorker(settings, IngestPipeline(engine, settings), client_id="ingest-crash")
    revived.start()
    try:
        assert _wait_for(lambda: _stored(engine) == 10)
    finally:
        release.set()
        publisher.loop_stop()
        revived.stop()


def test_desk_reader_gets_its_decisions_without_waiting_for_a_timer(
    engine: Engine, mosquitto: object
) -> None:
    """A badge and three radios published as the agent does become three check-outs, and the
    reader's decisions topic carries four green answers well inside the hold limit: nothing
    waited for a scan. (How fast is `bench/api_ingest.py`'s business; a second is typical.)"""
    port: int = mosquitto.port  # type: ignore[attr-defined]
    desk = register_reader(engine, reader_id="desk-1")
    badge = "E2800000000000000000000A"
    radios = [f"E280116060000205000000{i:02d}" for i in range(3)]
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_person(session, agency_id="north", now=now,
                      data=PersonCreate(id="alice", badges=[badge]))
        for i, epc in enumerate(radios):
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=f"R-{i}", class_id="radio", epc_hex=epc, home_site_id="north-store"))
        session.commit()
    settings = _settings(port)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    # Read with the reader agent's own parser: the wire contract.
    answers: list[tuple[float, Answer]] = []
    agent = _publisher(port)
    agent.on_message = lambda c, u, m: answers.extend(
        (time.monotonic(), d) for d in parse_decisions(m.payload))
    _subscribe(agent, desk.topic.replace("/events", "/decisions"))
    try:
        sent = time.monotonic()
        _publish(agent, desk.topic, [desk.signed(0, badge, kind="badge", session="s1")] + [
            desk.signed(1 + i, epc, session="s1") for i, epc in enumerate(radios)])
        assert _wait_for(lambda: len(answers) == 4, timeout=10)
    finally:
        agent.loop_stop()
        worker.stop()
    assert [(a.seq, a.accepted, a.action) for _, a in answers] == [
        (0, True, None), (1, True, "check_out"), (2, True, "check_out"), (3, True, "check_out")]
    assert max(t for t, _ in answers) - sent < HOLD_LIMIT.total_seconds() / 3


def test_a_read_held_for_a_badge_that_never_comes_is_answered(
    engine: Engine, mosquitto: object
) -> None:
    """A desk read waits for the missing number below it (perhaps its badge); when that number
    has not come after the hold limit, the worker's scan answers the read (refused), so the
    reader is never left waiting."""
    from datetime import timedelta

    port: int = mosquitto.port  # type: ignore[attr-defined]
    desk = register_reader(engine, reader_id="desk-1")
    register_radio(engine)
    settings = _settings(port)
    # Stored as if it arrived a little over the hold limit ago, with seq 0 never arriving.
    past = IngestPipeline(engine, settings,
                          clock=lambda: datetime.now(UTC) - HOLD_LIMIT - timedelta(seconds=2))
    assert past.process([desk.message(1, session="s1")]).decisions == []
    # Behind a gap that old, a new read is not held: refused at once (published at the
    # worker's start with whatever else is unpublished).
    fresh = IngestPipeline(engine, settings)
    assert len(fresh.process([desk.message(2, session="s1")]).decisions) == 1
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    answers: list[Answer] = []
    agent = _publisher(port)
    agent.on_message = lambda c, u, m: answers.extend(parse_decisions(m.payload))
    _subscribe(agent, desk.topic.replace("/events", "/decisions"))
    worker.start()  # its first held-read scan runs at once
    try:
        assert worker.wait_subscribed(10)
        assert _wait_for(lambda: len(answers) >= 2, timeout=10)
        time.sleep(0.3)
    finally:
        agent.loop_stop()
        worker.stop()
    assert sorted((a.seq, a.accepted, a.reason) for a in answers) == [
        (1, False, "no badge session open at this desk"),
        (2, False, "no badge session open at this desk")]


def test_answers_refused_while_the_broker_is_away_are_sent_when_it_returns(
    engine: Engine, mosquitto: object
) -> None:
    """Decisions published while the broker is down are refused by the client; the worker
    keeps running, re-sends them from their rows when it reconnects, and goes on ingesting."""
    broker: Any = mosquitto
    desk = register_reader(engine, reader_id="desk-1")
    register_radio(engine)
    settings = _settings(broker.port)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    broker.stop()
    assert _wait_for(lambda: not worker.client.is_connected(), timeout=10)
    # A batch committed while the broker is away (as one in hand when it went): its answer
    # cannot be published now.
    held = IngestPipeline(engine, settings).process([desk.message(0, session=None)])
    worker.decisions.publish(held.decisions)
    time.sleep(0.6)  # a settle interval passes with the refusal in hand
    broker.start()
    assert _wait_for(worker.client.is_connected, timeout=20)
    answers: list[Answer] = []
    agent = _publisher(broker.port)
    agent.on_message = lambda c, u, m: answers.extend(parse_decisions(m.payload))
    _subscribe(agent, desk.topic.replace("/events", "/decisions"))

    def unpublished() -> int:
        with Session(engine) as session:
            return int(session.exec(select(func.count()).select_from(Decision).where(
                col(Decision.published_at).is_(None))).one())

    try:
        _publish(agent, desk.topic, [desk.signed(1, session=None)])  # still ingesting
        assert _wait_for(lambda: 1 in {a.seq for a in answers}, timeout=10)
        # Seq 0's row is marked only on the PUBACK of a fresh publish: the refused one never
        # counts, so this proves the reconnect re-sent it.
        assert _wait_for(lambda: unpublished() == 0, timeout=10)
    finally:
        agent.loop_stop()
        worker.stop()
