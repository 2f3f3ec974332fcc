"""End to end on both databases: a class's blocking schedule -> the item, never checked, is
refused at the issue desk through the real ingest (a real Mosquitto broker, the agent's own
decision parser) and by a manual entry -> a failed check still refuses it -> a passing check
is recorded -> the desk issues it -> an anchored checkpoint -> an audit bundle -> the real
`kitledger verify` passes and `kitledger report` shows the maintenance; and the attacks: a
maintenance record edited or dropped from the bundle fails verification."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.decisions import Decision as Answer
from reader_agent.decisions import parse_decisions
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.ingest.worker import IngestWorker
from api.logstore import open_log
from api.models import CustodyEventRow, Refusal, WebhookEvent, WebhookSubscription
from tests.api.test_export import SECRET, _anchor, _verify
from tests.api.test_property_room import BADGE, DESKS, TAGS, Api, _manual, _report, _world
from tests.fixtures.polling import wait_for
from tests.paths import VECTORS_DIR

sys.path.insert(0, str(VECTORS_DIR))
from tampering import Sections, edit_json, sealed

SCHEDULE = {"key": "radio-battery", "name": "battery replacement", "interval_days": 365,
            "blocking": True}
NEVER = "overdue for battery replacement (never done)"
FAILED = "failed battery replacement: not issued until it passes"


def _subscribe(engine: Engine) -> None:
    with Session(engine) as session:
        session.add(WebhookSubscription(
            id="hook-north", agency_id="north", url="https://hooks.example/north",
            events=["maintenance.done", "asset.out_of_service", "asset.back_in_service",
                    "reservation.created", "reservation.cancelled"], sealed_secret=b"x"))
        session.commit()


def _desk_answers(engine: Engine, port: int, messages: list[tuple[int, str, dict[str, Any]]],
                  reader: str = "desk-1") -> list[Answer]:
    """Publish a desk's (`DESKS[reader]`) signed reads through the broker; the worker's
    answers to them."""
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{port}", ingest_batch_wait_ms=5)
    worker = IngestWorker(settings, IngestPipeline(engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    desk = DESKS[reader]
    answers: list[Answer] = []
    agent = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=reader, protocol=mqtt.MQTTv5)
    agent.on_message = lambda c, u, m: answers.extend(parse_decisions(m.payload))
    agent.connect("127.0.0.1", port)
    agent.loop_start()
    try:
        agent.subscribe(desk.topic.replace("/events", "/decisions"), qos=1)
        time.sleep(0.3)
        for seq, epc, fields in messages:
            agent.publish(desk.topic, desk.signed(seq, epc, **fields),
                          qos=1).wait_for_publish(10)
        assert wait_for(lambda: len(answers) >= len(messages), timeout=20), answers
    finally:
        agent.loop_stop()
        agent.disconnect()
        worker.stop()
    return sorted(answers, key=lambda a: a.seq)


def test_an_overdue_item_is_refused_until_its_check_passes_and_the_bundle_verifies(
    engine: Engine, tmp_path: Path, mosquitto: Any
) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    _subscribe(engine)
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    added = north.post("/v1/classes/radio/schedules", SCHEDULE)
    assert added.status_code == 201, added.text
    assert north.post("/v1/classes/radio/schedules", SCHEDULE).status_code == 409
    assert south.post("/v1/classes/radio/schedules", SCHEDULE).status_code == 404
    due = north.get("/v1/maintenance/due").json()
    assert {(d["asset_id"], d["state"]) for d in due} == {("R-0", "never_done"),
                                                          ("R-2", "never_done")}
    assert south.get("/v1/maintenance/due").json() == []
    # Alice badges in at the issue desk and it reads R-0: refused, with the reason.
    answers = _desk_answers(engine, mosquitto.port, [(0, BADGE, {"kind": "badge",
                                                                 "session": "s1"}),
                                                     (1, TAGS["R-0"], {"session": "s1"})])
    assert answers[1].accepted is False and answers[1].reason == NEVER
    refused = _manual(north, "R-0", "check_out", "desk-1", officer="alice", holder="alice")
    assert refused.status_code == 409 and refused.json()["detail"] == NEVER
    # A failed check keeps it from issue; a pass clears it.
    failed = north.post("/v1/assets/R-0/maintenance",
                        {"schedule": "radio-battery", "result": "fail", "officer": "bob"})
    assert failed.status_code == 201 and failed.json()["next_due"] is None
    refused = _manual(north, "R-0", "check_out", "desk-1", officer="alice", holder="alice")
    assert refused.json()["detail"] == FAILED
    passed = north.post("/v1/assets/R-0/maintenance",
                        {"schedule": "radio-battery", "result": "pass", "officer": "bob"})
    assert passed.status_code == 201 and passed.json()["next_due"] is not None
    # Out of service refuses an item whatever its checks; back in service frees it.
    out = north.post("/v1/assets/E-1/out-of-service", {"officer": "bob",
                                                       "reason": "seal broken"})
    assert out.status_code == 201, out.text
    assert north.post("/v1/assets/E-1/out-of-service", {"officer": "bob",
                                                        "reason": "again"}).status_code == 409
    refused = _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                      holder="alice")
    assert refused.json()["detail"] == "out of service: seal broken"
    assert ("E-1", "out_of_service") in {(d["asset_id"], d["state"])
                                         for d in north.get("/v1/maintenance/due").json()}
    assert north.post("/v1/assets/E-1/back-in-service", {"officer": "bob",
                                                         "reason": "resealed"}).status_code == 201
    answers = _desk_answers(engine, mosquitto.port, [(2, BADGE, {"kind": "badge",
                                                                 "session": "s2"}),
                                                     (3, TAGS["R-0"], {"session": "s2"})])
    assert answers[1].accepted is True and answers[1].action == "check_out", answers
    with Session(engine) as session:
        reasons = [r.reason for r in session.exec(select(Refusal).where(
            Refusal.asset_id == "R-0"))]
        assert reasons.count(NEVER) == 2 and FAILED in reasons
        out_leaf = session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == "R-0", CustodyEventRow.action == "check_out")
        ).one().leaf_index
        hooks = list(session.exec(select(WebhookEvent)))
    events = [w.event_type for w in hooks]
    assert "bob" not in json.dumps([w.data for w in hooks])  # ids and leaves, never a person
    assert events.count("maintenance.done") == 2
    assert {"asset.out_of_service", "asset.back_in_service"} <= set(events)
    assert out_leaf > passed.json()["leaf_index"]

    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    with Session(engine) as session:
        size = open_log(session, "north").size
    _anchor(settings, engine, size)
    response = north.get("/v1/audit/bundles", asset=["R-0", "E-1"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = _report(bundle, "R-0")
    assert "<h3>Maintenance</h3>" in report and "radio-battery" in report
    assert '<span class="fail">FAIL</span>' in report and report.count("PASS") == 1
    assert "seal broken" in _report(bundle, "E-1")

    def forge_pass(s: Sections) -> None:  # the failed check rewritten as a pass
        s.registry = [(edit_json(r, lambda d: d.update(result="pass"))
                       if json.loads(r)["type"] == "maintenance-done"
                       and json.loads(r)["result"] == "fail" else r, p) for r, p in s.registry]

    def drop_pass(s: Sections) -> None:  # the operator hides the check the issue rests on
        s.registry = [(r, p) for r, p in s.registry
                      if not (json.loads(r)["type"] == "maintenance-done"
                              and json.loads(r)["result"] == "pass")]

    for attack, phrase in ((forge_pass, "registry record at leaf"),
                           (drop_pass, "registry records left out")):
        tampered = tmp_path / f"{attack.__name__}.jsonl"
        tampered.write_bytes(sealed(response.content, attack))
        failed_check = _verify(tampered, "--offline")
        assert failed_check.returncode == 1 and phrase in failed_check.stdout, (
            failed_check.stdout)


@pytest.mark.parametrize(("body", "status"), [
    ({**SCHEDULE, "interval_days": 0}, 422),
    ({**SCHEDULE, "interval_days": 3651}, 422),
    ({**SCHEDULE, "interval_days": "365"}, 422),  # strict: no strings for numbers
    ({**SCHEDULE, "blocking": "yes"}, 422),
    ({**SCHEDULE, "name": "x" * 201}, 422),
    ({**SCHEDULE, "name": "line\nbreak"}, 422),
    ({**SCHEDULE, "key": "has space"}, 422),
    ({**SCHEDULE, "key": "k" * 129}, 422),
    ({**SCHEDULE, "edit": True}, 422),
])
def test_bad_schedules_are_refused(engine: Engine, tmp_path: Path, body: dict[str, Any],
                                   status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    assert Api(client, keys["north"]).post("/v1/classes/radio/schedules",
                                           body).status_code == status


def test_bad_checks_are_refused(engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    assert north.post("/v1/classes/radio/schedules", SCHEDULE).status_code == 201
    check = {"schedule": "radio-battery", "result": "pass", "officer": "bob"}
    assert north.post("/v1/assets/R-0/maintenance", {**check, "result": "ok"}).status_code == 422
    assert north.post("/v1/assets/R-0/maintenance",
                      {**check, "schedule": "none"}).status_code == 422
    assert north.post("/v1/assets/R-0/maintenance",
                      {**check, "officer": "mallory"}).status_code == 422
    assert north.post("/v1/assets/R-0/maintenance", {**check, "x": 1}).status_code == 422
    # The schedule is the radio class's: an exhibit cannot be "checked" against it.
    assert north.post("/v1/assets/E-1/maintenance", check).status_code == 409
    # Another agency's asset and schedule are invisible.
    assert south.post("/v1/assets/R-0/maintenance", check).status_code == 404
    assert south.get("/v1/schedules").json() == []
    assert [s["key"] for s in north.get("/v1/schedules").json()] == ["radio-battery"]
    assert north.delete("/v1/assets/R-2").status_code == 200
    assert north.post("/v1/assets/R-2/maintenance", check).status_code == 409
    assert north.post("/v1/assets/R-2/out-of-service",
                      {"officer": "bob", "reason": "x"}).status_code == 409
