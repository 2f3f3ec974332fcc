"""The ingest worker through a database outage: a real PostgreSQL cut by a loopback proxy, a
real Mosquitto. The worker holds the batch it cannot store (its messages unacknowledged) and
tries it again until the database is back, without reconnecting to the broker; the outage is
logged once when it starts and once when it ends; nothing is lost or answered twice."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.decisions import parse_decisions
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

from api.config import load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import AssetClass, IngestedObservation
from api.models.assets import AssetCreate
from api.outage import DATABASE
from api.registry import create_asset
from tests.api.api_support import RADIO_EPC, register_reader, stored
from tests.fixtures.polling import wait_for
from tests.fixtures.tcp_proxy import TcpProxy, postgres_proxy

__all__ = ["postgres_proxy"]

CLIENT_ID = "ingest-outage"


@pytest.fixture
def pg(_migrated_postgres: Engine) -> Engine:
    tables = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with _migrated_postgres.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return _migrated_postgres


def _through(proxy: TcpProxy, engine: Engine) -> str:
    return engine.url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)


def test_a_database_outage_holds_the_batch_without_reconnecting_to_the_broker(
    pg: Engine, postgres_proxy: TcpProxy, mosquitto: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    desk = register_reader(pg, reader_id="desk-1")
    with Session(pg) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex=RADIO_EPC, home_site_id="north-store"))
        session.commit()
    settings = load_settings(database_url=_through(postgres_proxy, pg),
                             mqtt_url=mosquitto.url, ingest_batch_wait_ms=5)
    engine = make_engine(settings)
    worker = IngestWorker(settings, IngestPipeline(engine, settings), client_id=CLIENT_ID)
    answers: list[int] = []
    agent = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="agent", protocol=mqtt.MQTTv5)
    agent.on_message = lambda c, u, m: answers.extend(
        d.seq for d in parse_decisions(bytes(m.payload)))
    agent.connect("127.0.0.1", mosquitto.port)
    agent.subscribe(desk.topic.replace("/events", "/decisions"), qos=1)
    agent.loop_start()
    worker.start()
    try:
        assert worker.wait_subscribed(10)

        def send(seqs: range) -> None:
            for seq in seqs:
                agent.publish(desk.topic, desk.signed(seq, session=None), qos=1
                              ).wait_for_publish(10)

        send(range(20))
        assert wait_for(lambda: stored(pg, IngestedObservation) == 20)
        failures_before = DATABASE.failures
        postgres_proxy.stop()
        send(range(20, 50))  # arrive while the database is away
        assert wait_for(lambda: DATABASE.failures >= failures_before + 5, timeout=60)
        assert stored(pg, IngestedObservation) == 20
        postgres_proxy.start()
        assert wait_for(lambda: stored(pg, IngestedObservation) == 50, timeout=60)
        assert wait_for(lambda: set(answers) == set(range(50)), timeout=30)
    finally:
        agent.loop_stop()
        worker.stop()
        engine.dispose()
    assert worker._transport.connections == 1
    assert mosquitto.log().count(f"as {CLIENT_ID}") == 1  # the broker's view: one connection
    assert sorted(answers) == list(range(50))  # each answered once
    lines = [r for r in caplog.records if r.name.startswith(("kitledger", "api"))]
    outage = [r.getMessage() for r in lines if r.name == "kitledger.outage"]
    assert len([m for m in outage if m.startswith("database unavailable")]) == 1, outage
    assert len([m for m in outage if m.startswith("database available again")]) == 1, outage
    assert all(r.exc_info is None for r in lines), [r.getMessage() for r in lines if r.exc_info]
    assert not [r for r in lines if r.levelno >= logging.ERROR], [r.getMessage() for r in lines]
    assert "Unsupported protocol version" not in caplog.text
