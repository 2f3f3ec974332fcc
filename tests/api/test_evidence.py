"""Evidence specifics end to end on both databases: an exhibit given case and exhibit
references, checked out and back with dual sign-off, disposed of to a named recipient ->
the log (references and disposal as registry records, the recipient by commitment only) ->
an anchored checkpoint -> the receipt of the disposal -> an audit bundle -> the real
`kitledger verify` passes and `kitledger report` shows the case, exhibit and disposal; and
hostile references, recipients and dispositions are refused."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.auth import create_api_client
from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.logstore import open_log
from api.models import CustodyEventRow, RegistryRecordRow, Scope
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_person
from tests.api.api_support import register_reader
from tests.api.test_export import SECRET, _anchor, _verify
from tests.api.test_property_room import BADGE, TAGS, Api, _manual, _report, _world
from tests.paths import VECTORS_DIR

sys.path.insert(0, str(VECTORS_DIR))
from tampering import Sections, edit_json, sealed

CASE, EXHIBIT, RECIPIENT = "24-001234", "JD/1", "Jane Ówner-Smith"
GONE = "E28000000000000000000010"
"""The badge of a person no longer active."""


def test_an_exhibit_is_referenced_disposed_of_and_proven(engine: Engine,
                                                         tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    put = north.client.put("/v1/assets/E-1/evidence", headers=north.headers,
                           json={"case_ref": CASE, "exhibit_ref": EXHIBIT})
    assert put.status_code == 200, put.text
    again = north.client.put("/v1/assets/E-1/evidence", headers=north.headers,
                             json={"case_ref": CASE, "exhibit_ref": EXHIBIT})
    assert again.status_code == 409  # a replay logs nothing
    found = north.get("/v1/evidence", case=CASE).json()
    assert [(e["asset_id"], e["exhibit_ref"]) for e in found] == [("E-1", EXHIBIT)]
    assert north.get("/v1/evidence", case="24-999999").json() == []
    assert _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                   holder="alice").status_code == 201
    assert north.post("/v1/assets/E-1/disposals", {
        "disposition": "released", "recipient": RECIPIENT}).status_code == 409  # not in store
    assert _manual(north, "E-1", "check_in", "desk-2", officer="bob",
                   supervisor="alice").status_code == 201
    disposed = north.post("/v1/assets/E-1/disposals",
                          {"disposition": "returned_to_owner", "recipient": RECIPIENT})
    assert disposed.status_code == 201, disposed.text
    commitment = disposed.json()["recipient_commitment"]
    assert len(commitment) == 64 and disposed.json()["recipient_name"] == RECIPIENT
    assert north.get("/v1/assets/E-1/disposal").json()["recipient_name"] == RECIPIENT
    assert north.post("/v1/assets/E-1/disposals",
                      {"disposition": "destroyed"}).status_code == 409  # already disposed
    with Session(engine) as session:
        logged = b"".join(r.record for r in session.exec(select(RegistryRecordRow)))
        dispose_row = session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == "E-1", CustodyEventRow.action == "dispose")).one()
        size = open_log(session, "north").size
    assert commitment.encode() in logged and b"Owner" not in logged
    assert RECIPIENT.encode() not in logged

    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, engine, size)
    receipt = north.get(f"/v1/custody-events/{dispose_row.event_hash.hex()}/receipt.pdf")
    assert receipt.status_code == 200, receipt.text
    text = "".join(PdfReader(io.BytesIO(receipt.content)).pages[0].extract_text().split())
    root = north.get("/v1/checkpoints", size=size).json()["root"]
    assert f"Leafindex{dispose_row.leaf_index}" in text and root in text
    assert f"Case{CASE}" in text and f"Exhibit{EXHIBIT}" in text
    assert "returnedtoowner" in text and "".join(RECIPIENT.split()) in text

    response = north.get("/v1/audit/bundles", asset=["E-1"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = _report(bundle, "E-1")
    assert f"Case <strong>{CASE}</strong>, exhibit <strong>{EXHIBIT}</strong>" in report
    assert "DISPOSED: returned to owner" in report and commitment[:8] in report
    assert "Jane" not in report and report.count("MANUAL ENTRY") == 2
    assert "pass        corrections (1 items)" in checked.stdout  # the disposal, tied to its event

    def later(r: dict[str, Any]) -> None:  # another millisecond, still a well-formed time
        r["time"] = r["time"][:-4] + ("998Z" if r["time"].endswith("999Z") else "999Z")

    def edit(s: Sections) -> None:  # the operator edits the dispose event the record names
        for i, (record, proof) in enumerate(s.events):
            if json.loads(proof)["leaf"] == dispose_row.leaf_index:
                s.events[i] = (edit_json(record, later), proof)

    tampered = tmp_path / "edited.jsonl"
    tampered.write_bytes(sealed(response.content, edit))
    failed = _verify(tampered, "--offline")
    assert failed.returncode == 1 and "the disposed event was changed" in failed.stdout, (
        failed.stdout)


@pytest.mark.parametrize(("body", "status"), [
    ({"case_ref": "x" * 65, "exhibit_ref": "1"}, 422),
    ({"case_ref": "24-1\x00", "exhibit_ref": "1"}, 422),
    ({"case_ref": " 24-1", "exhibit_ref": "1"}, 422),
    ({"case_ref": "24-1", "exhibit_ref": "é"}, 422),
    ({"case_ref": "24-1", "exhibit_ref": ""}, 422),
    ({"case_ref": "24-1", "exhibit_ref": "1\n2"}, 422),
    ({"case_ref": "24-1", "exhibit_ref": 1}, 422),
    ({"case_ref": "24-1", "exhibit_ref": "1", "note": "x"}, 422),
    ({"case_ref": "<script>alert(1)</script>", "exhibit_ref": "1"}, 200),  # shown escaped
])
def test_bad_references_are_refused(engine: Engine, tmp_path: Path, body: dict[str, Any],
                                    status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    answer = client.put("/v1/assets/E-1/evidence", json=body,
                        headers={"Authorization": f"Bearer {keys['north']}"})
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize(("body", "status"), [
    ({"disposition": "burned"}, 422),
    ({"disposition": "released"}, 409),  # names no recipient
    ({"disposition": "released", "recipient": "x" * 129}, 422),
    ({"disposition": "released", "recipient": "Jane\x00"}, 422),
    ({"disposition": "released", "recipient": "Jane\u0007"}, 422),
    ({"disposition": "released", "recipient": "  "}, 422),
    ({"disposition": "destroyed", "leaf": 3}, 422),
    ({"disposition": "destroyed"}, 201),
])
def test_bad_disposals_are_refused(engine: Engine, tmp_path: Path, body: dict[str, Any],
                                   status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    answer = Api(client, keys["north"]).post("/v1/assets/R-0/disposals", body)
    assert answer.status_code == status, answer.text


def test_another_agencys_exhibit_is_not_found(engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    south = Api(client, keys["south"])
    assert south.post("/v1/assets/E-1/disposals",
                      {"disposition": "destroyed"}).status_code == 404
    assert south.client.put("/v1/assets/E-1/evidence", headers=south.headers, json={
        "case_ref": CASE, "exhibit_ref": EXHIBIT}).status_code == 404
    assert south.get("/v1/assets/E-1/disposal").status_code == 404
    north = Api(client, keys["north"])
    assert north.client.put("/v1/assets/E-1/evidence", headers=north.headers, json={
        "case_ref": CASE, "exhibit_ref": EXHIBIT}).status_code == 200
    assert south.get("/v1/evidence", case=CASE).json() == []
    assert south.get("/v1/evidence", case="x" * 65).status_code == 422


def test_badges_at_the_evidence_room_door_make_its_access_log(engine: Engine,
                                                              tmp_path: Path) -> None:
    """A `door` reader's badge reads are access-log rows (admitted or refused), answered at
    the door, and never custody events; the list is the agency's own, newest first."""
    client, keys = _world(engine, tmp_path / "keys")
    door = register_reader(engine, reader_id="door-1", role=ReaderRole.DOOR)
    with Session(engine) as session:
        create_person(session, agency_id="north", now=datetime.now(UTC), data=PersonCreate(
            id="eve", badges=[GONE], active=False))
        session.commit()
        events_before = len(list(session.exec(select(CustodyEventRow))))
    IngestPipeline(engine, load_settings()).process([
        door.message(0, BADGE, kind="badge"), door.message(1, GONE, kind="badge"),
        door.message(2, TAGS["E-1"])])  # an exhibit carried past the door: not custody
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    log = north.get("/v1/evidence-room/access").json()
    assert [(r["person_id"], r["admitted"], r["reason"]) for r in log] == [
        ("eve", False, "badge holder is not active"), ("alice", True, "entry logged")]
    assert all(r["reader_id"] == "door-1" and r["site_id"] == "north-store" and
               len(r["observation_hash"]) == 64 for r in log)
    assert north.get("/v1/evidence-room/access", person="alice").json()[0]["admitted"]
    assert north.get("/v1/evidence-room/access", site="elsewhere").json() == []
    assert south.get("/v1/evidence-room/access").json() == []
    with Session(engine) as session:
        assert len(list(session.exec(select(CustodyEventRow)))) == events_before
    for params in ({"limit": 0}, {"site": "x" * 129}, {"person": ""}):
        assert north.get("/v1/evidence-room/access", **params).status_code == 422, params
    with Session(engine) as session:
        _, reader_key = create_api_client(session, agency_id="north", name="assets-only",
                                          scopes=[Scope.ASSETS_READ], server_secret=SECRET,
                                          now=datetime.now(UTC))
        session.commit()
    assert Api(client, reader_key).get("/v1/evidence-room/access").status_code == 403
