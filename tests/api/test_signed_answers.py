"""The ingest worker signs every decisions and acks message with the reader's agency's answers
key (`api.ingest.answer_signing`), bound to the reader's topic, on a real Mosquitto; the real
agent's checks (`reader_agent.publisher`) accept exactly these."""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.acks import parse_ack
from reader_agent.decisions import parse_decisions
from sqlalchemy import Engine

from api import commands
from api.agency_keys import answers_key
from api.config import load_settings
from api.ingest.answer_signing import AnswerSigner
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from ledger.cli import EXIT_OK, EXIT_UNUSABLE, VerdictParser, run_command
from ledger.core.answers import AnswerSignatureError, open_answer
from ledger.core.envelope import key_id, raw_public_key
from tests.api.api_support import register_radio, register_reader
from tests.fixtures.mosquitto import MosquittoBroker
from tests.fixtures.polling import wait_for


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
def test_decisions_and_acks_leave_signed_by_the_agency_for_that_reader(
        engine: Engine, mosquitto: MosquittoBroker, tmp_path: Path) -> None:
    desk = register_reader(engine, reader_id="desk-1")
    register_radio(engine)
    settings = load_settings(mqtt_url=mosquitto.url, ingest_batch_wait_ms=5,
                             log_key_dir=tmp_path / "keys")
    received: list[tuple[str, bytes]] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="test-desk")
    client.on_message = lambda c, u, m: received.append((m.topic, bytes(m.payload)))
    client.connect("127.0.0.1", mosquitto.port)
    client.subscribe(desk.topic.replace("/events", "/#"), qos=1)
    client.loop_start()
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    try:
        assert worker.wait_subscribed(10)
        client.publish(desk.topic, desk.signed(0, session="s1"), qos=1).wait_for_publish(10)
        assert wait_for(lambda: {t.rsplit("/", 1)[1] for t, _ in received}
                        >= {"decisions", "acks"}, 20), received
    finally:
        worker.stop()
        client.loop_stop()
        client.disconnect()
    key = answers_key(tmp_path / "keys", "north").public_key()
    answers = [(t, p) for t, p in received if t.endswith(("/decisions", "/acks"))]
    for topic, payload in answers:
        body = open_answer(key, topic, payload)
        if topic.endswith("/decisions"):
            assert [d.seq for d in parse_decisions(body)] == [0]
        else:
            assert parse_ack(body, 1).through == 0
        with pytest.raises(AnswerSignatureError):  # not for another reader of the agency
            open_answer(key, topic.replace("/desk-1/", "/desk-2/"), payload)
    assert (tmp_path / "keys" / "north.answers.key").stat().st_mode & 0o777 == 0o600


def test_each_agency_signs_with_its_own_key(tmp_path: Path) -> None:
    signer = AnswerSigner(tmp_path)
    north = "kitledger/v1/north/store/desk-1/acks"
    south = "kitledger/v1/south/store/desk-1/acks"
    payload = signer.sign(south, b'{"v":1,"through":0}')
    open_answer(answers_key(tmp_path, "south").public_key(), south, payload)
    with pytest.raises(AnswerSignatureError, match="not the pinned"):
        open_answer(answers_key(tmp_path, "north").public_key(), south, payload)
    assert signer.key("north") is signer.key("north")  # read once
    with pytest.raises(ValueError, match="not a reader's topic"):
        signer.sign("elsewhere/" + north, b"{}")


def test_answers_key_prints_what_readers_pin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KITLEDGER_LOG_KEY_DIR", str(tmp_path / "keys"))
    code, verdict = run_answers_key(capsys, "--agency", "north")
    assert code == EXIT_OK, verdict
    public = answers_key(tmp_path / "keys", "north").public_key()
    assert verdict["api_key"] == raw_public_key(public).hex() and verdict["kid"] == key_id(public)
    assert run_answers_key(capsys, "--agency", "north") == (code, verdict)  # the same key
    code, verdict = run_answers_key(capsys, "--agency", "../north")
    assert code == EXIT_UNUSABLE and "cannot name a key file" in str(verdict["reason"])


def run_answers_key(capsys: pytest.CaptureFixture[str],
                    *argv: str) -> tuple[int, dict[str, object]]:
    parser = VerdictParser(prog="kitledger")
    commands.register(parser.add_subparsers(dest="command", required=True,
                                            parser_class=VerdictParser))
    code = run_command(parser.parse_args(["answers-key", *argv]))
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])
