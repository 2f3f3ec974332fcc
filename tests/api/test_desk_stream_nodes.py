"""The desk's live stream across API nodes: a read ingested by one `kitledger serve` node
reaches a desk whose stream is served by another, which runs no ingest at all (real
PostgreSQL, real Mosquitto, real processes). The stream works from the database, not from
anything held in the process that ruled on the read."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth import authenticate, create_api_client
from api.models import Scope
from api.web.session import COOKIE, open_session
from tests.api.api_support import RADIO_EPC
from tests.api.test_nodes import broker, database, migrated
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.nodes import ServeNode, desk_readers
from tests.fixtures.polling import wait_for
from tests.fixtures.postgres import postgres_database

__all__ = ["broker", "database", "migrated", "postgres_database"]

SECRET_ENV = "KITLEDGER_SECRET_KEY"


@pytest.fixture
def two_nodes(database: Engine, postgres_database: str, broker: MosquittoBroker,
              tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ServeNode]]:
    monkeypatch.setenv(SECRET_ENV, "desk-stream-" + "s" * 40)
    started = [ServeNode("ingesting", database_url=postgres_database, mqtt_url=broker.url,
                         data_dir=tmp_path),
               ServeNode("pages", database_url=postgres_database, mqtt_url=broker.url,
                         data_dir=tmp_path, ingest_workers=0)]
    try:
        for node in started:
            node.start()
        assert wait_for(lambda: f"SUBSCRIBE from {started[0].client_id}" in broker.log(),
                        timeout=60), started[0].log()[-3000:]
        yield started
    finally:
        for node in started:
            node.kill()


def _web_cookie(database: Engine) -> str:
    secret = "desk-stream-" + "s" * 40
    with Session(database) as session:
        _, key = create_api_client(session, agency_id="north", name="desk tablet",
                                   scopes=[Scope.ASSETS_READ], server_secret=secret,
                                   now=datetime.now(UTC))
        session.commit()
        caller = authenticate(session, key, secret)
        assert caller is not None
        return open_session(session, caller, datetime.now(UTC))


def test_desk_stream_on_one_node_shows_a_read_another_node_ingested(
        database: Engine, broker: MosquittoBroker, two_nodes: list[ServeNode]) -> None:
    ingesting, pages = two_nodes
    (reader,) = desk_readers(database, 1)
    cookie = _web_cookie(database)
    events: list[str] = []
    opened = threading.Event()

    def listen() -> None:
        url = f"http://127.0.0.1:{pages.port}/web/desk/stream?reader={reader.reader_id}"
        with httpx.stream("GET", url, cookies={COOKIE: cookie},
                          timeout=httpx.Timeout(10, read=30)) as answer:
            assert answer.status_code == 200
            opened.set()
            data: list[str] = []
            for line in answer.iter_lines():
                if line.startswith("data:"):
                    data.append(line[5:])
                elif not line and data:  # a blank line ends the event
                    events.append("\n".join(data))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert opened.wait(30), pages.log()[-2000:]
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="desk-test-agent",
                            protocol=mqtt.MQTTv5)
    publisher.connect("127.0.0.1", broker.port)
    publisher.loop_start()
    started = time.monotonic()
    try:
        publisher.publish(reader.topic, reader.signed(1, RADIO_EPC), qos=1).wait_for_publish(10)
        listener.join(30)
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert events, (ingesting.log()[-2000:], pages.log()[-2000:])
    assert "R-1" in events[0] and "refused because no badge session open" in events[0]
    assert "SUBSCRIBE from kitledger-ingest-pages" not in broker.log()  # it ingests nothing
    print(f"read published to decision on the other node's desk: "
          f"{time.monotonic() - started:.2f} s")
