"""Receipts on both databases: an exhibit checked out with dual sign-off through the API ->
the receipt (HTML, and PDF checked with pypdf and rendered with pdftoppm) names its leaf,
event hash and covering checkpoint -> the real `kitledger receipt check` confirms it against
the log's exported tiles, and refuses an edited leaf, hash, size or root; the receipt routes
refuse hostile ids and another agency's event."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from pypdf import PdfReader
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.agency_keys import log_key
from api.config import load_settings
from api.logstore import open_log
from api.models import CustodyEventRow
from api.tiles import export_tiles
from ledger.core.envelope import raw_public_key
from tests.api.test_export import SECRET, _anchor
from tests.api.test_property_room import KITLEDGER, Api, _manual, _world


def _check(tiles: Path, key: str, leaf: int, event_hash: str, size: int, root: str
           ) -> subprocess.CompletedProcess[str]:
    """`kitledger receipt check` against the tiles (a directory) or a bundle (a file)."""
    where = "--tiles" if tiles.is_dir() else "--bundle"
    return subprocess.run(
        [str(KITLEDGER), "receipt", "check", "--leaf", str(leaf), "--event-hash", event_hash,
         "--size", str(size), "--root", root, where, str(tiles), "--log-key", key],
        capture_output=True, text=True, timeout=120, check=False)


def _flip(hex_text: str) -> str:
    return ("1" if hex_text[0] == "0" else "0") + hex_text[1:]


def test_a_receipt_names_its_leaf_and_checkpoint_and_checks_against_the_tiles(
    engine: Engine, tmp_path: Path
) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    signed = _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                     holder="alice")
    assert signed.status_code == 201, signed.text
    event = north.get("/v1/assets/E-1/history").json()["events"][-1]
    link = event["receipt"]
    assert link == f"/v1/custody-events/{event['event_hash']}/receipt"
    early = north.get(link)
    assert early.status_code == 200 and "Not yet in a signed checkpoint" in early.text

    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    with Session(engine) as session:
        size = open_log(session, "north").size
    _anchor(settings, engine, size)
    html = north.get(link)
    assert html.status_code == 200, html.text
    page = html.text
    for shown in ("E-1 (evidence)", "alice (person)", "bob (person)", "desk-1", "north-store",
                  event["event_hash"], f">{event['leaf_index']}<", "MANUAL ENTRY"):
        assert shown in page, shown
    assert "(commitment " not in page  # the agency's copy names its people
    # Its own style block is allowed by its hash, so a browser lays the receipt out under the
    # pages' policy; nothing else inline is.
    policy = html.headers["content-security-policy"]
    style = page.split("<style>", 1)[1].split("</style>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'self' 'sha256-{digest}';" in policy
    assert "script-src 'self';" in policy and "unsafe-inline" not in policy

    pdf = north.get(f"{link}.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    text = "".join(PdfReader(io.BytesIO(pdf.content)).pages[0].extract_text().split())
    root = north.get("/v1/checkpoints", size=size).json()["root"]
    assert f"Leafindex{event['leaf_index']}" in text and root in text
    assert event["event_hash"] in text and f"Checkpointtreesize{size}" in text
    toppm = shutil.which("pdftoppm")
    assert toppm, "poppler-utils (pdftoppm) is needed to render the receipt"
    (tmp_path / "receipt.pdf").write_bytes(pdf.content)
    subprocess.run([toppm, "-png", "-r", "50", "-f", "1", "-l", "1",
                    str(tmp_path / "receipt.pdf"), str(tmp_path / "page")], check=True)
    assert (tmp_path / "page-1.png").stat().st_size > 1000

    tiles = tmp_path / "tiles"
    with Session(engine) as session:
        export_tiles(session, "north", tmp_path / "keys", tiles)
    key = raw_public_key(log_key(tmp_path / "keys", "north").public_key()).hex()
    leaf, digest = event["leaf_index"], event["event_hash"]
    good = _check(tiles, key, leaf, digest, size, root)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["verdict"] == "valid"
    for edited, phrase in (((leaf - 1, digest, size, root), "holds the event"),
                           ((leaf, _flip(digest), size, root), "the receipt says"),
                           ((leaf, digest, size, _flip(root)), "the receipt says"),
                           ((leaf, digest, size - 1, root),
                            "not inside" if leaf == size - 1 else "the receipt says"),
                           ((leaf, digest, size + 5, root), "older than the receipt's")):
        bad = _check(tiles, key, *edited)
        assert bad.returncode == 1, (edited, bad.stdout + bad.stderr)
        assert phrase in json.loads(bad.stdout)["reason"], bad.stdout
    other_key = raw_public_key(log_key(tmp_path / "keys", "south").public_key()).hex()
    assert _check(tiles, other_key, leaf, digest, size, root).returncode == 1

    bundle = tmp_path / "E-1.bundle.jsonl"  # the same receipt, checked against a bundle
    bundle.write_bytes(north.get("/v1/audit/bundles", asset=["E-1"]).content)
    held = _check(bundle, key, leaf, digest, size, root)
    assert held.returncode == 0, held.stdout + held.stderr
    for edited, phrase in (((leaf - 1, digest, size, root), "no event at leaf"),
                           ((leaf, _flip(digest), size, root), "the receipt says"),
                           ((leaf, digest, size, _flip(root)), "the receipt says"),
                           ((leaf, digest, size + 5, root), "the receipt says")):
        bad = _check(bundle, key, *edited)
        assert bad.returncode == 1 and phrase in json.loads(bad.stdout)["reason"], bad.stdout
    assert _check(bundle, other_key, leaf, digest, size, root).returncode == 1
    for args in (("--leaf", "x" * 10), ("--leaf", "1" * 30), ("--event-hash", digest + "00"),
                 ("--event-hash", digest.upper()[:-1] + "\u00e9"), ("--log-key", "ab"),
                 ("--tiles", str(tmp_path / "none"))):
        values = {"--leaf": str(leaf), "--event-hash": digest, "--size": str(size),
                  "--root": root, "--tiles": str(tiles), "--log-key": key, args[0]: args[1]}
        done = subprocess.run([str(KITLEDGER), "receipt", "check",
                               *[part for pair in values.items() for part in pair]],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 2, (args, done.stdout + done.stderr)
        assert json.loads(done.stdout)["verdict"] == "unusable"


@pytest.mark.parametrize(("event_hash", "status"), [
    ("AB" * 32, 422), ("ab" * 31, 422), ("ab" * 33, 422), ("ab" * 5000, 422),
    ("ab" * 31 + "%00a", 422), ("../../v1/log/head", 404), ("ab" * 32, 404),
])
def test_hostile_receipt_ids_are_refused(engine: Engine, tmp_path: Path, event_hash: str,
                                         status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    answer = Api(client, keys["north"]).get(f"/v1/custody-events/{event_hash}/receipt")
    assert answer.status_code == status, answer.text


def test_another_agencys_event_has_no_receipt_here(engine: Engine, tmp_path: Path) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    with Session(engine) as session:
        south_hash = session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == "S-1")).one().event_hash.hex()
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    for suffix in ("", ".pdf"):
        url = f"/v1/custody-events/{south_hash}/receipt{suffix}"
        assert north.get(url).status_code == 404
    assert south.get(f"/v1/custody-events/{south_hash}/receipt").status_code == 200
