"""Inventories end to end on both databases: a custodian change makes a full inventory due;
a handheld's offline stocktake uploaded as one batch of signed reads -> reconciled (expected,
found, missing, unexpected, unknown) -> an `inventory-taken` record in the log -> an anchored
checkpoint -> an audit bundle -> the real `kitledger verify` passes, `kitledger report --site`
shows the inventory and `kitledger inventory redraw` draws the same sample; a desk's session
from its signed reads published through a real Mosquitto broker; and hostile batches
(replayed, forged, another reader's, out of the window, oversized, malformed) refused whole
with nothing stored."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.auth import create_api_client
from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.logstore import open_log
from api.models import Alert, CustodyEventRow, IngestedObservation, Inventory, Scope
from api.models.assets import Asset, AssetCreate, AssetShare
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.models.webhooks import WebhookEvent, WebhookSubscription
from api.registry import create_asset, create_person
from api.scoping import own_row
from ledger.core.records import format_time
from ledger.core.sampling import draw, sample_size
from tests.api.api_support import RegisteredReader, register_reader
from tests.api.test_export import SECRET, _anchor, _verify
from tests.api.test_maintenance import _desk_answers
from tests.api.test_property_room import BADGE, DESKS, KITLEDGER, TAGS, Api, _manual, _world
from tests.paths import VECTORS_DIR

sys.path.insert(0, str(VECTORS_DIR))
from tampering import Sections, edit_json, sealed

STRAY = "E28011606000020500000077"
"""A tag nobody registered."""
ANNEX_TAG = "E28011606000020500000050"
SOUTH_TAG = "E28011606000020500000099"
LENT_TAG = "E28011606000020500000098"


def _handheld(engine: Engine) -> RegisteredReader:
    return register_reader(engine, reader_id="hh-1", role=ReaderRole.HANDHELD)


def _annex_asset(engine: Engine) -> None:
    """R-9, at the annex: read in the north store, it is unexpected there."""
    register_reader(engine, site_id="north-annex", reader_id="annex-desk",
                    role=ReaderRole.RETURN_DESK)
    with Session(engine) as session:
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-9", class_id="radio", epc_hex=ANNEX_TAG, home_site_id="north-annex"))
        session.commit()


def _reads(handheld: RegisteredReader, epcs: list[str], at: datetime, first: int = 0
           ) -> list[str]:
    return [handheld.signed(first + i, epc, time=format_time(at)).hex()
            for i, epc in enumerate(epcs)]


def _window() -> tuple[datetime, datetime]:
    """A walk of 200 ms starting now (after its session opened), over by the time it returns:
    reads at its start + 30 ms fall inside it."""
    now = datetime.now(UTC)
    time.sleep(0.25)
    return now, now + timedelta(milliseconds=200)


def _open(north: Api, **body: Any) -> Any:
    return north.post("/v1/inventories", {"site": "north-store", "reader": "hh-1",
                                          "officer": "bob", **body})


def _upload(north: Api, inventory: int, started: datetime, ended: datetime,
            observations: list[str]) -> Any:
    return north.post(f"/v1/inventories/{inventory}/upload", {
        "started_at": started.isoformat(), "ended_at": ended.isoformat(),
        "observations": observations})


def _count(engine: Engine, table: Any) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(table)).one())


def test_a_handheld_stocktake_after_a_custodian_change_is_logged_and_proven(
        engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    handheld = _handheld(engine)
    _annex_asset(engine)
    with Session(engine) as session:
        session.add(WebhookSubscription(id="wh-1", agency_id="north", url="https://x.example/h",
                                        sealed_secret=b"s" * 32, events=["inventory.taken"]))
        session.commit()
    # R-0 checked out and back in at the north store's desks: the log places it there.
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="alice").status_code == 201
    assert _manual(north, "R-0", "check_in", "desk-2", officer="bob").status_code == 201

    changed = north.client.put("/v1/sites/north-store/custodian", headers=north.headers,
                               json={"custodian": "carol"})
    assert changed.status_code == 200 and changed.json()["custodian_id"] == "carol"
    assert {s["id"]: s["custodian_id"] for s in north.get("/v1/sites").json()["items"]}[
        "north-store"] == "carol"
    assert north.client.put("/v1/sites/north-store/custodian", headers=north.headers,
                            json={"custodian": "carol"}).status_code == 409  # no change
    due = north.get("/v1/alerts", kind="inventory_due").json()
    assert [(a["site_id"], a["resolved_at"]) for a in due] == [("north-store", None)]

    opened = _open(north)
    assert opened.status_code == 201, opened.text
    inventory = opened.json()
    assert inventory["looked_for"] == inventory["population"] == ["E-1", "R-0", "R-2"]
    assert _open(north).status_code == 409  # one open session per site
    started, ended = _window()
    batch = _reads(handheld, [TAGS["R-0"], TAGS["E-1"], ANNEX_TAG, STRAY, SOUTH_TAG, BADGE],
                   started + timedelta(milliseconds=30))
    done = _upload(north, inventory["id"], started, ended, batch)
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["lists"] == {"expected": ["E-1", "R-0", "R-2"], "found": ["E-1", "R-0"],
                               "missing": ["R-2"], "unexpected": ["R-9"],
                               "unknown": sorted([STRAY, SOUTH_TAG])}
    assert result["status"] == "completed" and result["counts"]["missing"] == 1
    assert (result["share_low_bp"], result["share_high_bp"]) == (6_666, 6_667)
    assert _upload(north, inventory["id"], started, ended, batch).status_code == 409
    assert north.get("/v1/alerts", kind="inventory_due").json() == []  # resolved
    assert [i["id"] for i in north.get("/v1/inventories", site="north-store").json()] == [
        inventory["id"]]
    assert north.get(f"/v1/inventories/{inventory['id']}").json()["record_hash"] == result[
        "record_hash"]
    with Session(engine) as session:
        stored = session.exec(select(IngestedObservation).where(
            IngestedObservation.device_id == "hh-1")).all()
        assert len(stored) == len(batch)  # the signed reads are kept, as a desk's are
        hook = session.exec(select(WebhookEvent).where(
            WebhookEvent.event_type == "inventory.taken")).one()
        assert hook.data["missing"] == 1 and hook.data["leaf_index"] == result["leaf_index"]
        size = open_log(session, "north").size

    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, engine, size)
    response = north.get("/v1/audit/bundles", asset=["R-0"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "pass        inventories (1 items)" in checked.stdout, checked.stdout
    html = tmp_path / "site.html"
    report = subprocess.run([str(KITLEDGER), "report", str(bundle), "--site", "north-store",
                             "--offline", "--html", str(html)],
                            capture_output=True, text=True, timeout=120, check=False)
    assert report.returncode in (0, 4), report.stdout + report.stderr
    shown = html.read_text()
    assert "<h2 id=\"inventories-title\">Inventories</h2>" in shown
    assert f"<td class=\"mono\">{result['leaf_index']}</td>" in shown
    assert "66.66 % to 66.67 %" in shown
    assert "custodian changed: a full inventory is due" in shown  # before the inventory
    assert shown.index("custodian changed") < shown.index("66.66 %")

    saved = tmp_path / "inventory.json"
    saved.write_text(json.dumps(north.get(f"/v1/inventories/{inventory['id']}").json()))
    redraw = subprocess.run([str(KITLEDGER), "inventory", "redraw", str(bundle), "--leaf",
                             str(result["leaf_index"]), "--inventory", str(saved)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert redraw.returncode == 0 and json.loads(redraw.stdout)["verdict"] == "valid", (
        redraw.stdout + redraw.stderr)
    lied = {**json.loads(saved.read_text())}
    lied["lists"] = {**lied["lists"], "missing": [], "found": ["E-1", "R-0", "R-2"]}
    saved.write_text(json.dumps(lied))
    redraw = subprocess.run([str(KITLEDGER), "inventory", "redraw", str(bundle), "--leaf",
                             str(result["leaf_index"]), "--inventory", str(saved)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert redraw.returncode == 1 and "lists are not the ones" in redraw.stdout

    def fewer_missing(s: Sections) -> None:  # the operator edits the logged count
        for i, (record, proof) in enumerate(s.registry):
            if json.loads(record).get("type") == "inventory-taken":
                s.registry[i] = (edit_json(record, lambda r: r.update(missing=0, found=3)),
                                 proof)

    tampered = tmp_path / "edited.jsonl"
    tampered.write_bytes(sealed(response.content, fewer_missing))
    failed = _verify(tampered, "--offline")
    assert failed.returncode == 1 and "FAIL        registry" in failed.stdout, failed.stdout


def test_an_uploaded_stocktake_moves_last_seen_forward_only_and_no_custody(
        engine: Engine, tmp_path: Path) -> None:
    """The handheld's reads place the agency's assets at the inventory's site (not the
    handheld's own), at each read's time; a newer sighting stays, custody stays, and another
    agency's asset read in the batch is neither moved nor reported as a foreign sighting
    (one lent to the agency moves, as its readers' sightings move it through ingest)."""
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    handheld = _handheld(engine)  # registered at north-store
    _annex_asset(engine)
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="alice").status_code == 201
    opened = _open(north, site="north-annex")
    assert opened.status_code == 201, opened.text
    started, ended = _window()
    newer = ended + timedelta(seconds=1)
    with Session(engine) as session:  # a desk read E-1 after the handheld's walk
        asset = own_row(session, Asset, "north", "E-1")
        assert asset is not None
        asset.last_seen_at, asset.last_seen_reader_id = newer, "desk-2"
        asset.last_seen_site_id = "north-store"
        session.add(asset)
        create_asset(session, agency_id="south", now=datetime.now(UTC), data=AssetCreate(
            id="S-2", class_id="s-radio", epc_hex=LENT_TAG, home_site_id="south-store"))
        session.flush()
        session.add(AssetShare(owner_id="south", asset_id="S-2", agency_id="north"))  # lent
        session.commit()
    before = {name: north.get(f"/v1/assets/{name}/location").json() for name in TAGS}
    read_at = started + timedelta(milliseconds=30)
    batch = _reads(handheld, [ANNEX_TAG, TAGS["R-0"], TAGS["E-1"], SOUTH_TAG, LENT_TAG],
                   read_at)
    done = _upload(north, opened.json()["id"], started, ended, batch)
    assert done.status_code == 200, done.text
    assert done.json()["lists"]["unknown"] == [SOUTH_TAG]

    def seen(api: Api, asset_id: str) -> dict[str, Any]:
        return api.get(f"/v1/assets/{asset_id}/location").json()

    for asset_id in ("R-9", "R-0", "S-2"):  # S-2 as north's readers would see it
        where = seen(north, asset_id)
        assert (where["last_seen_reader_id"], where["last_seen_site_id"]) == (
            "hh-1", "north-annex"), where
        assert datetime.fromisoformat(where["last_seen_at"]) == read_at.replace(
            microsecond=read_at.microsecond // 1000 * 1000)
    r0 = seen(north, "R-0")
    assert (r0["status"], r0["holder_ref"], r0["due_at"]) == (
        before["R-0"]["status"], "alice", before["R-0"]["due_at"])  # still out to alice
    assert seen(north, "E-1") == before["E-1"]  # its newer sighting stays
    assert seen(north, "R-9")["status"] == "in_store"
    s1 = seen(south, "S-1")
    assert (s1["last_seen_at"], s1["last_seen_reader_id"], s1["last_seen_site_id"]) == (
        None, None, None)
    assert south.get("/v1/assets/S-1/foreign-sightings").json() == []
    with Session(engine) as session:  # the stocktake logged no custody event
        assert session.exec(select(func.count()).select_from(CustodyEventRow).where(
            CustodyEventRow.asset_id.in_(["R-0", "R-9", "E-1", "S-1"]),  # type: ignore[union-attr]
            CustodyEventRow.created_at >= started)).one() == 0


def test_a_tag_another_agency_also_uses_counts_only_the_agencys_own(
        engine: Engine, tmp_path: Path) -> None:
    """EPCs and badges are per agency: south's kit tagged with north's R-9 EPC is not north's
    item and does not move, and a tag that is only a badge of south's is unknown to north."""
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    handheld = _handheld(engine)
    _annex_asset(engine)
    with Session(engine) as session:
        create_asset(session, agency_id="south", now=datetime.now(UTC), data=AssetCreate(
            id="S-9", class_id="s-radio", epc_hex=ANNEX_TAG, home_site_id="south-store"))
        create_person(session, agency_id="south", now=datetime.now(UTC),
                      data=PersonCreate(id="sam", badges=[STRAY]))
        session.commit()
    opened = _open(north)
    assert opened.status_code == 201, opened.text
    started, ended = _window()
    read_at = started + timedelta(milliseconds=30)
    done = _upload(north, opened.json()["id"], started, ended,
                   _reads(handheld, [ANNEX_TAG, STRAY], read_at))
    assert done.status_code == 200, done.text
    lists = done.json()["lists"]
    assert (lists["unexpected"], lists["unknown"]) == (["R-9"], [STRAY])
    r9 = north.get("/v1/assets/R-9/location").json()
    assert (r9["last_seen_reader_id"], r9["last_seen_site_id"]) == ("hh-1", "north-store")
    s9 = south.get("/v1/assets/S-9/location").json()
    assert (s9["last_seen_at"], s9["last_seen_reader_id"], s9["last_seen_site_id"]) == (
        None, None, None)


def test_a_sampled_inventory_reads_the_seeds_sample(engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    handheld = _handheld(engine)
    tags = {f"B-{i:03}": f"E2801160600002050001{i:04X}" for i in range(120)}
    with Session(engine) as session:
        for asset, epc in tags.items():
            create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
                id=asset, class_id="radio", epc_hex=epc, home_site_id="north-store"))
        session.commit()
    opened = _open(north, mode="sampled", confidence_bp=9_000, margin_bp=1_000)
    assert opened.status_code == 201, opened.text
    inventory = opened.json()
    population = inventory["population"]
    size = sample_size(len(population), 9_000, 1_000)
    assert len(population) == 123 and size == 44  # n0 = 67.6, with the FPC 43.8
    assert inventory["looked_for"] == draw(bytes.fromhex(inventory["seed"]), population, size)
    every = {**TAGS, **tags}
    present = [every[a] for a in inventory["looked_for"][1:]]  # one of the sample is missing
    started, ended = _window()
    done = _upload(north, inventory["id"], started, ended,
                   _reads(handheld, present, started + timedelta(milliseconds=30)))
    assert done.status_code == 200, done.text
    result = done.json()
    assert result["counts"] == {"expected": 44, "found": 43, "missing": 1, "unexpected": 0,
                                "unknown": 0}
    assert result["share_low_bp"] < 43 * 10_000 // 44 < result["share_high_bp"] < 10_000
    with Session(engine) as session:
        size_now = open_log(session, "north").size
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, engine, size_now)
    response = north.get("/v1/audit/bundles", asset=["R-0"])
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0 and "inventories (1 items)" in checked.stdout, checked.stdout
    saved = tmp_path / "inventory.json"
    saved.write_text(json.dumps(north.get(f"/v1/inventories/{inventory['id']}").json()))
    redraw = subprocess.run([str(KITLEDGER), "inventory", "redraw", str(bundle), "--leaf",
                             str(result["leaf_index"]), "--inventory", str(saved)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert redraw.returncode == 0, redraw.stdout + redraw.stderr
    picked = json.loads(saved.read_text())
    picked["looked_for"] = sorted(population)[:44]  # a sample chosen by hand
    picked["lists"]["expected"] = picked["looked_for"]
    saved.write_text(json.dumps(picked))
    redraw = subprocess.run([str(KITLEDGER), "inventory", "redraw", str(bundle), "--leaf",
                             str(result["leaf_index"]), "--inventory", str(saved)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert redraw.returncode == 1 and "the seed draws 44 items" in redraw.stdout


def test_a_desk_session_counts_the_reads_it_published(engine: Engine, tmp_path: Path,
                                                     mosquitto: Any) -> None:
    """A return desk's session: its signed reads go through a real Mosquitto broker to the
    ingest worker as ever, and completing the session reconciles those read since it opened."""
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    DESKS["desk-3"] = register_reader(engine, reader_id="desk-3", role=ReaderRole.RETURN_DESK)
    before = _desk_answers(engine, mosquitto.port, [(0, TAGS["R-2"], {})], "desk-3")
    assert [a.reason for a in before] == ["already in this store"]  # before the session
    opened = north.post("/v1/inventories", {"site": "north-store", "reader": "desk-3",
                                            "officer": "bob"})
    assert opened.status_code == 201, opened.text
    during = _desk_answers(engine, mosquitto.port, [(1, TAGS["R-0"], {}), (2, TAGS["E-1"], {})],
                           "desk-3")
    assert len(during) == 2
    IngestPipeline(engine, load_settings()).process([DESKS["desk-3"].message(3, STRAY)])
    inventory = opened.json()["id"]
    assert north.post(f"/v1/inventories/{inventory}/upload", {
        "started_at": datetime.now(UTC).isoformat(), "ended_at": datetime.now(UTC).isoformat(),
        "observations": ["00"]}).status_code == 422  # a desk's session takes no upload
    done = north.post(f"/v1/inventories/{inventory}/complete")
    assert done.status_code == 200, done.text
    assert done.json()["lists"]["missing"] == ["R-2"]
    assert done.json()["lists"]["unknown"] == [STRAY]
    assert north.post(f"/v1/inventories/{inventory}/complete").status_code == 409
    # A desk counts its own site only.
    assert north.post("/v1/inventories", {"site": "north-annex", "reader": "desk-3",
                                          "officer": "bob"}).status_code in (409, 422)


def _hostile(engine: Engine, tmp_path: Path) -> tuple[Api, Api, RegisteredReader, int]:
    client, keys = _world(engine, tmp_path / "keys")
    handheld = _handheld(engine)
    north = Api(client, keys["north"])
    opened = _open(north)
    assert opened.status_code == 201, opened.text
    return north, Api(client, keys["south"]), handheld, opened.json()["id"]


WHY = {"replayed": "already sent seq 0: a replayed batch",
       "forged": "read 1: bad_signature", "other-reader": "read 1: not signed by handheld hh-1",
       "before-window": "read 2: read outside the session's window",
       "after-window": "read 2: read outside the session's window",
       "too-many": "at most 20000 items", "seq-twice": "read 1: seq 0 twice in the batch",
       "future": "the walk ends after now", "empty": "the batch holds no reads",
       "lost-statement": "read 0: lost_at_reader"}
"""What each refusal says: the first bad read and why."""


@pytest.mark.parametrize("attack", ["replayed", "forged", "other-reader", "before-window",
                                    "after-window", "too-many", "seq-twice", "future",
                                    "empty", "lost-statement"])
def test_hostile_batches_are_refused_whole(engine: Engine, tmp_path: Path,
                                           attack: str) -> None:
    north, _south, handheld, inventory = _hostile(engine, tmp_path)
    started, ended = _window()
    good = _reads(handheld, [TAGS["R-0"], TAGS["E-1"]], started + timedelta(milliseconds=30))
    batch = good
    if attack == "replayed":  # a batch's numbers accepted once, sent again in a new session
        assert _upload(north, inventory, started, ended, good).status_code == 200
        second = _open(north)
        assert second.status_code == 201
        inventory = second.json()["id"]
        started, ended = _window()
        batch = _reads(handheld, [TAGS["R-0"], TAGS["E-1"]], started + timedelta(
            milliseconds=30))
    elif attack == "forged":
        raw = bytes.fromhex(good[1]).replace(TAGS["E-1"].encode(), TAGS["R-2"].encode())
        batch = [good[0], raw.hex()]  # the signed payload names another tag
    elif attack == "other-reader":
        desk = register_reader(engine, reader_id="desk-7", role=ReaderRole.HANDHELD)
        batch = [good[0], desk.signed(5, TAGS["R-2"],
                                      time=format_time(started + timedelta(milliseconds=30))).hex()]
    elif attack == "before-window":
        batch = [*good, *_reads(handheld, [TAGS["R-2"]], started - timedelta(seconds=1), 9)]
    elif attack == "after-window":
        batch = [*good, *_reads(handheld, [TAGS["R-2"]], ended + timedelta(seconds=1), 9)]
    elif attack == "too-many":
        batch = good * 10_001
    elif attack == "seq-twice":
        batch = [good[0], handheld.signed(0, TAGS["R-2"], time=format_time(
            started + timedelta(milliseconds=30))).hex()]
    elif attack == "future":
        ended = datetime.now(UTC) + timedelta(minutes=10)
    elif attack == "empty":
        batch = []
    elif attack == "lost-statement":
        from ledger.core.envelope import sign_envelope
        from ledger.core.lost import LostRange
        lost = LostRange(device="hh-1", first=5, last=9, reason="outbox full",
                         time=format_time(started + timedelta(milliseconds=30)))
        batch = [sign_envelope(lost.to_record(), handheld.key).to_bytes().hex()]
    before = _count(engine, IngestedObservation)
    answer = _upload(north, inventory, started, ended, batch)
    assert answer.status_code == 422, answer.text
    assert WHY[attack] in answer.json()["detail"], answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert "Traceback" not in answer.text
    assert _count(engine, IngestedObservation) == before
    assert north.get(f"/v1/inventories/{inventory}").json()["status"] == "open"


@pytest.mark.parametrize(("body", "status"), [
    ({"started_at": "2026-01-01T00:00:00", "ended_at": "2026-01-01T00:01:00Z",
      "observations": ["00"]}, 422),  # no zone
    ({"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
      "observations": ["zz"]}, 422),
    ({"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
      "observations": "00"}, 422),
    ({"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
      "observations": ["00" * 5000]}, 422),
    ({"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
      "observations": ["00\u0000"]}, 422),
    ({"started_at": "2026-01-01T00:00:00Z", "ended_at": "2026-01-01T00:01:00Z",
      "observations": ["00"], "reader": "hh-1"}, 422),
    ({"started_at": 5, "ended_at": None, "observations": []}, 422),
])
def test_malformed_uploads_are_refused(engine: Engine, tmp_path: Path, body: dict[str, Any],
                                       status: int) -> None:
    north, _, _, inventory = _hostile(engine, tmp_path)
    answer = north.post(f"/v1/inventories/{inventory}/upload", body)
    assert answer.status_code == status, answer.text
    assert north.get(f"/v1/inventories/{inventory}").json()["status"] == "open"


def test_an_oversized_body_is_refused_before_it_is_read(engine: Engine, tmp_path: Path) -> None:
    north, _, _, inventory = _hostile(engine, tmp_path)
    body = b'{"observations": ["' + b"00" * (13 * 1024 * 1024) + b'"]}'
    answer = north.client.post(f"/v1/inventories/{inventory}/upload", content=body,
                               headers={**north.headers, "content-type": "application/json"})
    assert answer.status_code == 422, answer.text[:200]
    assert answer.json()["type"].endswith("/upload-too-large")


def test_other_agencies_and_scopes(engine: Engine, tmp_path: Path) -> None:
    north, south, _, inventory = _hostile(engine, tmp_path)
    assert south.get(f"/v1/inventories/{inventory}").status_code == 404
    assert south.post(f"/v1/inventories/{inventory}/complete").status_code == 404
    assert south.get("/v1/inventories").json() == []
    assert south.post("/v1/inventories", {"site": "north-store", "reader": "desk-9",
                                          "officer": "bob"}).status_code == 422
    assert south.post("/v1/inventories", {"site": "south-store", "reader": "hh-1",
                                          "officer": "bob"}).status_code == 422
    assert south.client.put("/v1/sites/north-store/custodian", headers=south.headers,
                            json={"custodian": "bob"}).status_code == 404
    assert north.client.put("/v1/sites/north-store/custodian", headers=north.headers,
                            json={"custodian": "nobody"}).status_code == 422
    for body in ({"site": "north-store", "reader": "hh-1", "officer": "bob", "mode": "some"},
                 {"site": "north-store", "reader": "hh-1", "officer": "bob",
                  "mode": "sampled", "confidence_bp": 10_000},
                 {"site": "north-store", "reader": "hh-1", "officer": "bob",
                  "mode": "sampled", "margin_bp": "300"},
                 {"site": "north-store", "reader": "hh-1", "officer": "bob", "seed": "00"},
                 {"site": "x" * 129, "reader": "hh-1", "officer": "bob"}):
        assert north.post("/v1/inventories", body).status_code == 422, body
    assert north.get("/v1/inventories/0").status_code == 422
    assert north.get(f"/v1/inventories/{2**63}").status_code == 422
    with Session(engine) as session:
        _, reader_key = create_api_client(session, agency_id="north", name="assets-only",
                                          scopes=[Scope.ASSETS_READ], server_secret=SECRET,
                                          now=datetime.now(UTC))
        session.commit()
    reader_only = Api(north.client, reader_key)
    assert reader_only.get(f"/v1/inventories/{inventory}").status_code == 200
    assert reader_only.post(f"/v1/inventories/{inventory}/complete").status_code == 403
    assert reader_only.post("/v1/inventories", {"site": "north-store", "reader": "hh-1",
                                                "officer": "bob"}).status_code == 403
    with Session(engine) as session:
        assert session.exec(select(Alert).where(Alert.kind == "inventory_due")).all() == []


def test_the_pages_show_the_agencys_own_inventories(engine: Engine, tmp_path: Path) -> None:
    """The list (from the agency page) and the result page; another agency's inventory is not
    found, a malformed id refused, and a site name is shown escaped."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.security.security_support import sign_in

    north, _, handheld, inventory = _hostile(engine, tmp_path)
    started, ended = _window()
    assert _upload(north, inventory, started, ended, _reads(
        handheld, [TAGS["R-0"], STRAY], started + timedelta(milliseconds=30))).status_code == 200
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys")
    with Session(engine) as session:
        _, south_key = create_api_client(session, agency_id="south", name="pages",
                                         scopes=[Scope.ASSETS_READ], server_secret=SECRET,
                                         now=datetime.now(UTC))
        session.commit()
    pages = {}
    for agency, key in (("north", north.headers["Authorization"][7:]), ("south", south_key)):
        pages[agency] = TestClient(create_app(settings, engine), base_url="https://testserver",
                                    follow_redirects=False)
        assert sign_in(pages[agency], key).status_code == 303
    agency_page = pages["north"].get("/web/agency").text
    assert 'href="/web/inventories?site=north-store"' in agency_page
    assert "data-due=" not in agency_page
    assert north.client.put("/v1/sites/north-store/custodian", headers=north.headers,
                            json={"custodian": "carol"}).status_code == 200
    agency_page = pages["north"].get("/web/agency").text
    assert 'data-due="north-store"' in agency_page and "custodian carol" in agency_page
    listed = pages["north"].get("/web/inventories", params={"site": "north-store"})
    assert listed.status_code == 200 and f'href="/web/inventories/{inventory}"' in listed.text
    shown = pages["north"].get(f"/web/inventories/{inventory}").text
    assert "R-2" in shown and STRAY in shown and "33.33 %" in shown
    assert pages["south"].get(f"/web/inventories/{inventory}").status_code == 404
    assert f"/web/inventories/{inventory}" not in pages["south"].get("/web/inventories").text
    assert pages["north"].get("/web/inventories/0").status_code == 422
    assert pages["north"].get("/web/inventories/x").status_code == 422
    assert pages["north"].get("/web/inventories", params={"site": "x" * 129}).status_code == 422
    odd = pages["north"].get("/web/inventories", params={"site": "<b>x</b>"}).text
    assert "<b>x</b>" not in odd and "&lt;b&gt;x&lt;/b&gt;" in odd


def test_two_uploads_of_one_session_at_once_log_it_once(engine: Engine, tmp_path: Path) -> None:
    """Two clients upload the same session together: one is logged, the other refused, and
    the log holds one inventory."""
    from concurrent.futures import ThreadPoolExecutor

    from api.models import RegistryRecordRow

    north, _, handheld, inventory = _hostile(engine, tmp_path)
    started, ended = _window()
    batches = [_reads(handheld, [TAGS["R-0"]], started + timedelta(milliseconds=30), first)
               for first in (0, 1)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda b: _upload(north, inventory, started, ended, b),
                                batches))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    with Session(engine) as session:
        logged = session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.kind == "inventory-taken")).all()
    assert len(logged) == 1


def test_a_store_too_large_to_count_in_full_is_sampled(engine: Engine, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the full count's bound a full inventory is refused, naming the way out; a sampled
    one draws from the store (its own, larger bound refuses beyond it)."""
    from api import inventories

    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    _handheld(engine)
    monkeypatch.setattr(inventories, "MAX_INVENTORY_ITEMS", 2)
    refused = _open(north)
    assert refused.status_code == 409 and "take a sampled inventory" in refused.json()["detail"]
    sampled = _open(north, mode="sampled", confidence_bp=5_000, margin_bp=5_000)
    assert sampled.status_code == 201 and len(sampled.json()["population"]) == 3
    assert len(sampled.json()["looked_for"]) == sample_size(3, 5_000, 5_000)
    monkeypatch.setattr(inventories, "MAX_SAMPLED_POPULATION", 2)
    with Session(engine) as session:
        row = session.get(Inventory, sampled.json()["id"])
        assert row is not None
        row.status = "completed"  # closed, so that the site may open another
        session.add(row)
        session.commit()
    too_many = _open(north, mode="sampled")
    assert too_many.status_code == 409 and "too many to draw from" in too_many.json()["detail"]
