"""End to end on both databases: manual desk entries, a correction and retirements made through
the REST API -> the agency's log -> an anchored checkpoint -> an audit bundle -> the real
`kitledger verify` passes and `kitledger report` shows them; and the attacks: a correction of
another asset's or another agency's event, or of none, is refused; a bundle whose correction
is dropped, or whose corrected event is edited, fails verification."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.logstore import open_log
from api.models import CustodyEventRow, Refusal, Scope
from api.models.assets import AssetClassCreate, AssetCreate
from api.models.people import PersonCreate, PersonSecret
from api.models.registry import ReaderRole
from api.models.webhooks import WebhookEvent, WebhookSubscription
from api.registry import create_asset, create_class, create_person
from tests.api.api_support import RegisteredReader, register_reader
from tests.api.test_export import SECRET, _anchor, _verify
from tests.paths import VECTORS_DIR

sys.path.insert(0, str(VECTORS_DIR))
from tampering import Sections, edit_json, sealed

KITLEDGER = Path(sys.executable).with_name("kitledger")
DESKS: dict[str, RegisteredReader] = {}
SCOPES = [Scope.CUSTODY_WRITE, Scope.ASSETS_WRITE, Scope.ASSETS_READ, Scope.AUDIT_READ,
          Scope.ADMIN]
TAGS = {"R-0": "E28011606000020500000001", "E-1": "E28011606000020500000002",
        "R-2": "E28011606000020500000003"}
REASON = "tag unreadable: label torn"
WRONG = "checked out to the wrong officer: was alice"


BADGE = "E28000000000000000000009"
"""Alice's staff badge."""


def _world(engine: Engine, key_dir: Path) -> tuple[TestClient, dict[str, str]]:
    """North: an issue and a return desk, a radio class and an evidence class (dual
    sign-off), three people (alice badged), three assets; south: one asset. An all-scopes key
    per agency."""
    DESKS["desk-1"] = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    register_reader(engine, reader_id="desk-2", role=ReaderRole.RETURN_DESK)
    register_reader(engine, agency_id="south", site_id="south-store", reader_id="desk-9")
    now = datetime.now(UTC)
    keys = {}
    with Session(engine) as session:
        create_class(session, agency_id="north", now=now,
                     data=AssetClassCreate(id="radio", name="Radio"))
        create_class(session, agency_id="north", now=now,
                     data=AssetClassCreate(id="evidence", name="Exhibit", dual_signoff=True))
        create_class(session, agency_id="south", now=now,
                     data=AssetClassCreate(id="s-radio", name="Radio"))
        session.flush()
        for person in ("alice", "bob", "carol"):
            create_person(session, agency_id="north", now=now, data=PersonCreate(
                id=person, badges=[BADGE] if person == "alice" else []))
        for asset, epc in TAGS.items():
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=asset, class_id="evidence" if asset == "E-1" else "radio", epc_hex=epc,
                home_site_id="north-store"))
        create_asset(session, agency_id="south", now=now, data=AssetCreate(
            id="S-1", class_id="s-radio", epc_hex="E28011606000020500000099",
            home_site_id="south-store"))
        for agency in ("north", "south"):
            _, keys[agency] = create_api_client(session, agency_id=agency, name="staff",
                                                scopes=SCOPES, server_secret=SECRET, now=now)
        session.commit()
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=key_dir)
    return TestClient(create_app(settings, engine), raise_server_exceptions=False), keys


class Api:
    def __init__(self, client: TestClient, key: str) -> None:
        self.client, self.headers = client, {"Authorization": f"Bearer {key}"}

    def post(self, url: str, body: dict[str, Any] | None = None) -> Any:
        return self.client.post(url, json=body or {}, headers=self.headers)

    def get(self, url: str, **params: Any) -> Any:
        return self.client.get(url, params=params, headers=self.headers)

    def delete(self, url: str) -> Any:
        return self.client.delete(url, headers=self.headers)


def _manual(api: Api, asset: str, action: str, desk: str, **people: str) -> Any:
    return api.post(f"/v1/assets/{asset}/manual-entries",
                    {"action": action, "desk": desk, "reason": REASON, **people})


def _leaf(engine: Engine, asset: str, seq: int) -> int:
    with Session(engine) as session:
        return session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == asset, CustodyEventRow.seq == seq)).one().leaf_index


def _report(bundle: Path, asset: str) -> str:
    html = bundle.with_suffix(f".{asset}.html")
    done = subprocess.run([str(KITLEDGER), "report", str(bundle), "--asset", asset,
                           "--offline", "--html", str(html)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode in (0, 4), done.stdout + done.stderr  # 4: no trust file given
    return html.read_text()


def _check_case_report(bundle: Path) -> None:
    """The case report of R-0 (loaned, handed on, returned, one step corrected) and E-1 (checked
    out under dual sign-off), pinned to north's log key: its certificate names each check with
    its result, field by field; the PDF stays PDF/A-3a with the bundle inside; CSV of the steps."""
    from api.agency_keys import log_key
    from ledger.certificate import RESULTS
    from ledger.core.bundle_parse import parse_bundle
    from ledger.core.envelope import raw_public_key
    from ledger.report import build_collection
    from ledger.verify import OfflineChainReader, verify_bundle
    from ledger.verify.trust import LogTrust, TrustFile

    key = raw_public_key(log_key(bundle.parent / "keys", "north").public_key())
    out = {kind: bundle.with_suffix(f".case.{kind}") for kind in ("html", "pdf", "csv")}
    done = subprocess.run(
        [str(KITLEDGER), "report", str(bundle), "--asset", "R-0", "--asset", "E-1", "--case",
         "OP-2026/0042", "--offline", "--no-state", "--log-key", key.hex(),
         *(arg for kind, path in out.items() for arg in (f"--{kind}", str(path)))],
        capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("VERIFIED: 6 steps")

    parsed = parse_bundle(bundle.read_bytes())
    pins = LogTrust("north", (key,), None, None)
    result = verify_bundle(parsed, OfflineChainReader(parsed), trust=TrustFile((pins,)))
    case = build_collection(parsed, result, ["R-0", "E-1"], "Case report: OP-2026/0042",
                            "2026-03-02T00:00:00.000Z", pins=pins)
    cert = case.certificate
    assert {c.name: c.result for c in cert.checks} == {
        c.name: RESULTS[c.passed] for c in result.checks}
    results = {c.name: c.result for c in cert.checks}
    for passed in ("fingerprint", "trust-roots", "checkpoint-signatures", "hash-chains",
                   "inclusion-proofs", "registry", "corrections", "completeness", "anchors"):
        assert results[passed] == "passed", (passed, cert.checks)
    assert results["witness-cosignatures"] == "not checked"
    assert next(c for c in cert.checks if c.name == "corrections").items == 1
    assert cert.corrections == 1 and cert.fingerprint == parsed.computed_fingerprint.hex()
    assert ("log public key", key.hex()) in cert.trust_roots
    assert cert.anchors and all(a.block >= 1 and a.transaction.startswith("0x")
                                for a in cert.anchors)
    html = out["html"].read_text()
    assert "<h1>Case report: OP-2026/0042</h1>" in html
    for check in cert.checks:  # each check's row: its name, what it establishes, its result
        shown = {"passed": '<span class="ok">passed</span>',
                 "FAILED": '<span class="fail">FAILED</span>',
                 "not checked": '<span class="fail">not checked</span>'}[check.result]
        assert (f'<td class="check">{check.name}</td><td>{check.description}</td>'
                f"<td>{shown}</td><td>{check.items}</td>") in html.replace("&#39;", "'")
    for anchor in cert.anchors:
        assert f"<td>{anchor.block}</td><td class=\"mono\">{anchor.transaction}</td>" in html

    with out["csv"].open(newline="", encoding="utf-8") as sheet:
        rows = list(csv.DictReader(sheet))
    assert [(r["asset"], r["action"]) for r in rows] == [
        ("R-0", "register"), ("R-0", "check out"), ("R-0", "transfer"), ("R-0", "check in"),
        ("E-1", "register"), ("E-1", "check out")]
    loan = rows[1]
    assert loan["to"].startswith("person (commitment ") and WRONG in loan["corrections"]
    assert loan["manual_entry"] == REASON and loan["verified"] == "yes"
    signed = next(r for r in rows if r["asset"] == "E-1" and r["action"] == "check out")
    assert len(signed["signed_off_by"].split("; ")) == 2  # officer and supervisor

    pdf = out["pdf"]
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                          capture_output=True, text=True).stdout
    pages = [page for page in text.split("\f") if page.strip()]
    assert all(f"VERIFIED · page {n} of {len(pages)}" in page
               for n, page in enumerate(pages, 1))
    assert sum("Certificate of the verification process" in page for page in pages) == 1
    assert "Declaration" in pages[-1] and "Signature" in pages[-1]
    info = subprocess.run(["pdfinfo", "-meta", str(pdf)], check=True, capture_output=True,
                          text=True).stdout
    assert "pdfaid:part" in info and "bundle.jsonl" in subprocess.run(
        ["pdfdetach", "-list", str(pdf)], check=True, capture_output=True, text=True).stdout


def test_overrides_corrections_and_retirements_reach_a_verified_bundle(
    engine: Engine, tmp_path: Path
) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    # An exhibit needs a supervisor's co-signature; the officer cannot co-sign alone.
    alone = _manual(north, "E-1", "check_out", "desk-1", officer="alice", holder="alice")
    assert alone.status_code == 409 and "dual sign-off" in alone.json()["detail"]
    self_signed = _manual(north, "E-1", "check_out", "desk-1", officer="alice",
                          supervisor="alice", holder="alice")
    assert self_signed.status_code == 409
    signed = _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                     holder="alice")
    assert signed.status_code == 201, signed.text
    # A check-out is entered at an issue desk only; a return desk takes the check-in.
    assert _manual(north, "R-0", "check_out", "desk-2", officer="alice",
                   holder="carol").status_code == 409
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="carol").status_code == 201
    assert _manual(north, "R-0", "transfer", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    assert _manual(north, "R-0", "check_in", "desk-2", officer="bob").status_code == 201
    assert _manual(north, "S-1", "check_in", "desk-2", officer="bob").status_code == 404
    counts = north.get("/v1/manual-entries/counts").json()
    assert counts == [{"desk_id": "desk-1", "officer_id": "alice", "entries": 3},
                      {"desk_id": "desk-2", "officer_id": "bob", "entries": 1}]
    assert len(north.get("/v1/manual-entries", desk="desk-1").json()) == 3
    # R-0's check-out (seq 1) went to the wrong person: corrected, never edited.
    wrong_leaf = _leaf(engine, "R-0", 1)
    corrected = north.post("/v1/assets/R-0/corrections",
                           {"leaf_index": wrong_leaf, "reason": WRONG})
    assert corrected.status_code == 201, corrected.text
    assert corrected.json()["corrects_leaf"] == wrong_leaf
    replayed = north.post("/v1/assets/R-0/corrections", {"leaf_index": wrong_leaf,
                                                          "reason": WRONG})
    assert replayed.status_code == 409 and "already corrected" in replayed.json()["detail"]
    history = north.get("/v1/assets/R-0/history").json()["events"]
    assert [e["manual"] for e in history] == [None, REASON, REASON, REASON]
    assert [c["reason"] for c in history[1]["corrected_by"]] == [WRONG]
    # Deleting an asset retires it: refused at the desk and by the API after.
    retired = north.delete("/v1/assets/R-2")
    assert retired.status_code == 200 and retired.json()["status"] == "retired"
    assert north.delete("/v1/assets/R-2").status_code == 409
    late = _manual(north, "R-2", "check_out", "desk-1", officer="alice", holder="alice")
    assert late.status_code == 409 and "retired" in late.json()["detail"]
    desk = DESKS["desk-1"]  # alice badges in and the desk reads R-2's tag
    IngestPipeline(engine, load_settings()).process([
        desk.message(0, BADGE, kind="badge", session="s1"),
        desk.message(1, TAGS["R-2"], session="s1")])
    with Session(engine) as session:
        reasons = [r.reason for r in session.exec(select(Refusal).where(
            Refusal.asset_id == "R-2", Refusal.reader_id == "desk-1"))]
    assert reasons == ["asset is retired (deleted from the register)"]
    shared = north.client.patch("/v1/assets/R-2", json={"shared_with": ["south"]},
                                headers=north.headers)
    assert shared.status_code == 409  # a share record after the retirement would break the log
    assert north.post("/v1/assets/R-2/loans", {"to_agency": "south"}).status_code == 409
    assert north.post("/v1/assets/R-2/dispose").status_code == 409
    # A person is retired, then their personal data erased; their commitments stay.
    assert north.post("/v1/people/carol/retire", {"reason": "left the force"}).json()[
        "active"] is False
    assert north.post("/v1/people/carol/retire", {"reason": "again"}).status_code == 409
    assert north.delete("/v1/people/carol").status_code == 204
    with Session(engine) as session:
        assert session.get(PersonSecret, ("north", "carol")) is None
    assert south.post("/v1/people/carol/retire", {}).status_code == 404

    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    with Session(engine) as session:
        size = open_log(session, "north").size
    _anchor(settings, engine, size)
    response = north.get("/v1/audit/bundles", asset=["R-0", "E-1", "R-2"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "pass        corrections (1 items)" in checked.stdout
    report = _report(bundle, "R-0")
    assert report.count("MANUAL ENTRY") == 3 and "CORRECTED</span> (leaf " in report
    assert WRONG in report
    assert "Asset retired" in _report(bundle, "R-2")
    exhibit = _report(bundle, "E-1")
    assert "MANUAL ENTRY" in exhibit and exhibit.count('class="who"') >= 2
    _check_case_report(bundle)

    epcis = subprocess.run([str(KITLEDGER), "epcis", str(bundle)], capture_output=True,
                           text=True, timeout=120, check=True)
    listed = json.loads(epcis.stdout)["epcisBody"]["eventList"]
    declared = [e for e in listed if "errorDeclaration" in e]
    assert [e["errorDeclaration"]["kl:reason"] for e in declared] == [WRONG]
    original = [e for e in listed if e["eventID"] == declared[0]["eventID"]]
    assert len(original) == 2  # the event as logged, and the copy declaring it wrong
    assert sum(e.get("kl:manualEntry") == REASON for e in listed if e not in declared) == 4

    # The operator drops the correction, or edits the corrected event: verify fails.
    def drop(s: Sections) -> None:
        s.registry = [(r, p) for r, p in s.registry
                      if json.loads(r)["type"] != "event-corrected"]

    def edit(s: Sections) -> None:
        for i, (record, proof) in enumerate(s.events):
            if json.loads(proof)["leaf"] == wrong_leaf:
                s.events[i] = (edit_json(record, lambda r: r.update(manual="tag read")),
                               proof)

    for attack, phrase in ((drop, "registry records left out"),
                           (edit, "the corrected event was changed")):
        tampered = tmp_path / f"{attack.__name__}.jsonl"
        tampered.write_bytes(sealed(response.content, attack))
        failed = _verify(tampered, "--offline")
        assert failed.returncode == 1 and phrase in failed.stdout, failed.stdout


@pytest.mark.parametrize(("body", "status"), [
    ({"leaf_index": 10**6, "reason": WRONG}, 409),  # no event at that leaf
    ({"event_hash": "ab" * 32, "reason": WRONG}, 409),  # no event with that hash
    ({"reason": WRONG}, 409),  # names no event
    ({"leaf_index": 0, "reason": "line\nbreak"}, 422),  # not printable ASCII
    ({"leaf_index": 0, "reason": "x" * 201}, 422),  # oversized
    ({"leaf_index": 0, "reason": ""}, 422),
    ({"leaf_index": -1, "reason": WRONG}, 422),
    ({"leaf_index": 2**60, "reason": WRONG}, 422),
    ({"event_hash": "AB" * 32, "reason": WRONG}, 422),
    ({"event_hash": "<script>", "reason": WRONG}, 422),
    ({"leaf_index": 0, "reason": WRONG, "edit": True}, 422),  # unknown field: no edits
])
def test_bad_corrections_are_refused(engine: Engine, tmp_path: Path, body: dict[str, Any],
                                     status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    answer = Api(client, keys["north"]).post("/v1/assets/R-0/corrections", body)
    assert answer.status_code == status, answer.text


def test_a_correction_of_another_assets_or_agencys_event_is_refused(
    engine: Engine, tmp_path: Path
) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    south_leaf = _leaf(engine, "S-1", 0)
    with Session(engine) as session:
        south_hash = session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == "S-1")).one().event_hash.hex()
    # North names south's event (by hash, or by its leaf in south's log): not in north's log.
    for body in ({"event_hash": south_hash}, {"leaf_index": south_leaf}):
        answer = north.post("/v1/assets/R-0/corrections", {**body, "reason": WRONG})
        assert answer.status_code == 409, answer.text
    # Another of north's assets' events, named through R-0: refused too.
    e1_leaf = _leaf(engine, "E-1", 0)
    assert north.post("/v1/assets/R-0/corrections",
                      {"leaf_index": e1_leaf, "reason": WRONG}).status_code == 409
    # South cannot correct north's asset at all (as if it did not exist).
    assert south.post("/v1/assets/R-0/corrections",
                      {"leaf_index": _leaf(engine, "R-0", 0), "reason": WRONG}
                      ).status_code == 404
    assert north.get("/v1/assets/R-0/corrections").json() == []


def test_manual_entry_input_is_bounded(engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    base = {"action": "check_out", "desk": "desk-1", "officer": "alice", "holder": "alice",
            "reason": REASON}
    for change, status in (({"action": "dispose"}, 422), ({"reason": "x" * 201}, 422),
                           ({"reason": "tab\there"}, 422), ({"officer": "x" * 129}, 422),
                           ({"officer": "nobody"}, 422), ({"desk": "desk-9"}, 422),
                           ({"holder": None}, 409)):
        answer = north.post("/v1/assets/R-0/manual-entries", {**base, **change})
        assert answer.status_code == status, (change, answer.text)
    scoped = Api(client, keys["north"])
    with Session(engine) as session:
        _, reader_key = create_api_client(session, agency_id="north", name="reader-only",
                                          scopes=[Scope.ASSETS_READ], server_secret=SECRET,
                                          now=datetime.now(UTC))
        session.commit()
    assert Api(client, reader_key).post("/v1/assets/R-0/manual-entries",
                                        base).status_code == 403
    assert Api(client, reader_key).get("/v1/manual-entries/counts").status_code == 403
    assert scoped.post("/v1/assets/R-0/manual-entries", base).status_code == 201
    replayed = scoped.post("/v1/assets/R-0/manual-entries", base)  # the same entry again
    assert replayed.status_code == 409 and "not in store" in replayed.json()["detail"]
    assert len(scoped.get("/v1/manual-entries").json()) == 1


def test_each_property_room_event_type_reaches_its_subscribers(engine: Engine,
                                                                tmp_path: Path) -> None:
    """`custody.manual`, `custody.corrected`, `asset.retired` and `person.retired` are written
    for a subscription that asks for them, in the change's transaction; their data names ids,
    leaves and hashes, never a person."""
    client, keys = _world(engine, tmp_path / "keys")
    with Session(engine) as session:
        session.add(WebhookSubscription(
            id="hook-north", agency_id="north", url="https://hooks.example/north",
            events=["custody.manual", "custody.corrected", "asset.retired", "person.retired"],
            sealed_secret=b"x"))
        session.commit()
    north = Api(client, keys["north"])
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="carol").status_code == 201
    assert north.post("/v1/assets/R-0/corrections", {"leaf_index": _leaf(engine, "R-0", 1),
                                                     "reason": WRONG}).status_code == 201
    assert north.delete("/v1/assets/R-2").status_code == 200
    assert north.delete("/v1/people/bob").status_code == 204
    refused = _manual(north, "R-2", "check_out", "desk-1", officer="alice", holder="alice")
    assert refused.status_code == 409  # a refusal writes no event
    with Session(engine) as session:
        events = list(session.exec(select(WebhookEvent).order_by(col(WebhookEvent.id))))
    assert [e.event_type for e in events] == [
        "custody.manual", "custody.corrected", "asset.retired", "person.retired"]
    assert events[0].data["desk_id"] == "desk-1" and events[0].data["co_signed"] is False
    assert events[1].data["corrects_leaf"] == _leaf(engine, "R-0", 1)
    text = json.dumps([e.data for e in events])
    assert "alice" not in text and "carol" not in text and "bob" not in text
