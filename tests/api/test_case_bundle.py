"""A whole case end to end on both databases: two exhibits referenced to one case (one lent to
another agency with a corrected check-out, one checked out under dual sign-off and disposed
of), a third asset in another case -> the log -> an anchored checkpoint -> the case bundle
(`GET /v1/audit/bundles?case=...`) -> the real `kitledger verify` passes -> `kitledger report
--case` alone finds every exhibit from the bundle's records; its CSV, HTML and model checked
field by field against the API's own rows, and its PDF checked with pypdf (PDF/A-3 in the XMP
metadata, tagged, the bundle and trust file embedded byte for byte) and rendered with pdftoppm.
A case bundle with an exhibit left out, or an exhibit's chain dropped, fails verification;
hostile case parameters are refused. Anchored on a real anvil node, the case bundle checks
against the log's exported C2SP tiles."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from pypdf import PdfReader
from pypdf.generic import BooleanObject
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from web3.types import RPCEndpoint

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.logstore import open_log
from api.models import CustodyEventRow, RegistryRecordRow
from api.models.evidence import EvidenceDisposal
from ledger.chain.provider import connect
from tests.api.test_export import SECRET, _anchor, _export, _verify, _without_created
from tests.api.test_property_room import (
    DESKS,
    KITLEDGER,
    REASON,
    TAGS,
    WRONG,
    Api,
    _leaf,
    _manual,
    _world,
)
from tests.ledger.chain.anvil_node import AnvilNode
from tests.paths import VECTORS_DIR

sys.path.insert(0, str(VECTORS_DIR))
from tampering import Sections, sealed

CASE, OTHER_CASE = "24-001234", "24-000007"
EXHIBITS = {"E-1": "JD/1", "R-0": "JD/2"}
RECIPIENT = "Jane Owner"


def _refer(api: Api, asset: str, case: str, exhibit: str) -> None:
    answer = api.client.put(f"/v1/assets/{asset}/evidence", headers=api.headers,
                            json={"case_ref": case, "exhibit_ref": exhibit})
    assert answer.status_code == 200, answer.text


def _make_case(engine: Engine, tmp_path: Path) -> tuple[Api, Api]:
    """North's case: R-0 checked out to the wrong person (corrected), checked in and lent to
    south (accepted); E-1 checked out and in under dual sign-off and returned to its owner;
    R-2 in another case. Anchored."""
    client, keys = _world(engine, tmp_path / "keys")
    north, south = Api(client, keys["north"]), Api(client, keys["south"])
    for asset, exhibit in EXHIBITS.items():
        _refer(north, asset, CASE, exhibit)
    _refer(north, "R-2", OTHER_CASE, "X/1")
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="carol").status_code == 201
    assert _manual(north, "R-0", "check_in", "desk-2", officer="carol").status_code == 201
    assert north.post("/v1/assets/R-0/corrections", {"leaf_index": _leaf(engine, "R-0", 1),
                                                     "reason": WRONG}).status_code == 201
    # A desk sees R-0 (no badge: a sighting), as the borrower's acceptance requires.
    IngestPipeline(engine, load_settings()).process([DESKS["desk-1"].message(0, TAGS["R-0"])])
    offer = north.post("/v1/assets/R-0/loans", {"to_agency": "south", "days": 5})
    assert offer.status_code == 201, offer.text
    accepted = south.post(f"/v1/transfers/{offer.json()['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                   holder="alice").status_code == 201
    assert _manual(north, "E-1", "check_in", "desk-2", officer="alice",
                   supervisor="bob").status_code == 201
    disposed = north.post("/v1/assets/E-1/disposals",
                          {"disposition": "returned_to_owner", "recipient": RECIPIENT})
    assert disposed.status_code == 201, disposed.text
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    with Session(engine) as session:
        size = open_log(session, "north").size
    _anchor(settings, engine, size)
    return north, south


def _trust_file(tmp_path: Path) -> Path:
    from api.agency_keys import log_key
    from ledger.core.envelope import raw_public_key

    key = raw_public_key(log_key(tmp_path / "keys", "north").public_key())
    trust = tmp_path / "trust.toml"
    trust.write_text(f'version = 1\n\n[[log]]\nagency = "north"\npublic_keys = ["{key.hex()}"]\n')
    return trust


def _case_report(bundle: Path, trust: Path, *extra: str) -> tuple[subprocess.CompletedProcess[str],
                                                                    dict[str, Path]]:
    out = {kind: bundle.with_suffix(f".{kind}") for kind in ("html", "pdf", "csv")}
    done = subprocess.run(
        [str(KITLEDGER), "report", str(bundle), *extra, "--offline", "--no-state", "--trust",
         str(trust), *(arg for kind, path in out.items() for arg in (f"--{kind}", str(path)))],
        capture_output=True, text=True, timeout=180, check=False)
    return done, out


def _events(engine: Engine, asset: str) -> list[CustodyEventRow]:
    with Session(engine) as session:
        return list(session.exec(select(CustodyEventRow).where(
            CustodyEventRow.asset_id == asset).order_by(col(CustodyEventRow.seq))))


def test_a_whole_case_is_bundled_verified_and_reported(engine: Engine, tmp_path: Path) -> None:
    north, south = _make_case(engine, tmp_path)
    response = north.get("/v1/audit/bundles", case=CASE)
    assert response.status_code == 200, response.text
    bundle = tmp_path / "case.jsonl"
    bundle.write_bytes(response.content)
    header = json.loads(response.content.split(b"\n", 1)[0])
    assert header["scope"] == {"kind": "case", "case": CASE, "assets": ["E-1", "R-0"],
                               "site": None, "start": None, "end": None}
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "pass        completeness (2 items)" in checked.stdout
    # The operator's `kitledger export --case` writes the same bundle as the API.
    exported = tmp_path / "exported.jsonl"
    done = _export(engine.url.render_as_string(hide_password=False), "--agency", "north",
                   "--case", CASE, "--out", str(exported))
    assert done.returncode == 0, done.stdout + done.stderr
    assert _without_created(exported.read_bytes()) == _without_created(response.content)
    refused = _export(engine.url.render_as_string(hide_password=False), "--agency", "north",
                      "--case", "24-1\x01", "--out", str(tmp_path / "bad.jsonl"))
    assert refused.returncode == 2 and "case reference" in refused.stdout + refused.stderr
    # South holds R-0 on loan but the case is north's: south's case is empty.
    assert south.get("/v1/audit/bundles", case=CASE).status_code == 404

    trust = _trust_file(tmp_path)
    done, out = _case_report(bundle, trust, "--case", CASE)
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {asset: _events(engine, asset) for asset in EXHIBITS}
    assert done.stdout.startswith(f"VERIFIED: {sum(map(len, steps.values()))} steps")
    _check_csv(out["csv"], steps)
    _check_html(out["html"].read_text(), engine)
    _check_pdf(out["pdf"], bundle.read_bytes(), trust.read_bytes(), tmp_path)
    # The explicit form still works on the same bundle, and names what it is given.
    explicit, _ = _case_report(bundle, trust, "--asset", "R-0", "--case", "file 7")
    assert explicit.returncode == 0, explicit.stdout + explicit.stderr
    # A case bundle of another case is refused for this one, as is an asset bundle.
    other = tmp_path / "other.jsonl"
    other.write_bytes(north.get("/v1/audit/bundles", case=OTHER_CASE).content)
    refused, _ = _case_report(other, trust, "--case", CASE)
    assert refused.returncode == 2 and "not the case bundle of '24-001234'" in refused.stdout


def _check_csv(path: Path, steps: dict[str, list[CustodyEventRow]]) -> None:
    """Every step of both exhibits, in exhibit order (JD/1, JD/2), each field as logged."""
    with path.open(newline="", encoding="utf-8") as sheet:
        rows = list(csv.DictReader(sheet))
    logged = [row for asset in ("E-1", "R-0") for row in steps[asset]]
    assert [(r["asset"], int(r["seq"])) for r in rows] == [(e.asset_id, e.seq) for e in logged]
    for row, event in zip(rows, logged, strict=True):
        record = json.loads(event.record)
        assert row["action"] == event.action.replace("_", " ")
        assert row["time_utc"] == record["time"] and int(row["leaf"]) == event.leaf_index
        assert row["verified"] == "yes" and row["anchor_block"]
        assert row["reader"] == (record.get("reader") or "—")
        assert row["place"] == "north-store"
    by_step = {(r["asset"], r["action"]): r for r in rows}
    wrong = by_step[("R-0", "check out")]
    assert WRONG in wrong["corrections"] and wrong["manual_entry"] == REASON
    assert wrong["to"].startswith("person (commitment ")
    loan = by_step[("R-0", "loan out")]
    assert loan["to"] == "agency south" and loan["from"] == "location north-store"
    dual = by_step[("E-1", "check out")]
    signers = dual["signed_off_by"].split("; ")
    assert len(set(signers)) == 2 and all(s.startswith("person (commitment ") for s in signers)
    assert by_step[("E-1", "dispose")]["from"] == "location north-store"


def _check_html(html: str, engine: Engine) -> None:
    assert f"<h1>Case report: {CASE}</h1>" in html
    for exhibit in EXHIBITS.values():
        assert f"Case <strong>{CASE}</strong>, exhibit <strong>{exhibit}</strong>" in html
    assert html.index("exhibit <strong>JD/1</strong>") < html.index("exhibit <strong>JD/2")
    assert "R-2" not in html and OTHER_CASE not in html  # another case's item
    with Session(engine) as session:
        disposal = session.exec(select(EvidenceDisposal)).one()
        references = session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.kind == "evidence-referenced")).all()
    assert disposal.recipient_commitment is not None
    assert "DISPOSED: returned to owner" in html
    assert disposal.recipient_commitment[:8] in html and RECIPIENT not in html
    assert len(references) == 3
    assert html.count("MANUAL ENTRY") == 4 and "CORRECTED</span> (leaf " in html
    assert "Certificate of the verification process" in html
    assert f"(scope: case {CASE}: E-1, R-0)" in html


def _check_pdf(path: Path, bundle: bytes, trust: bytes, tmp_path: Path) -> None:
    """PDF/A-3a named in the XMP metadata, tagged, with the bundle and trust file embedded
    exactly as given, and every page renders."""
    reader = PdfReader(io.BytesIO(path.read_bytes()))
    root: Any = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    assert re.search(r"pdfaid:part(>|=\")3", xmp), xmp
    assert re.search(r"pdfaid:conformance(>|=\")A", xmp), xmp
    assert root["/MarkInfo"]["/Marked"] == BooleanObject(True) and "/StructTreeRoot" in root
    attachments = reader.attachments
    assert attachments["case.jsonl"] == [bundle]
    assert attachments["trust.toml"] == [trust]
    prefix = tmp_path / "page"
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(path), str(prefix)], check=True,
                   timeout=120)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == len(reader.pages) >= 2
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in pages)


def _drop(asset: str, *, registry: bool) -> Any:
    def edit(s: Sections) -> None:
        s.events = [(r, p) for r, p in s.events if json.loads(r)["asset"] != asset]
        if registry:
            s.registry = [(r, p) for r, p in s.registry if json.loads(r).get("asset") != asset]
            s.header = s.header.replace(f'"{asset}",'.encode(), b"")
    return edit


def test_a_case_bundle_missing_an_exhibit_or_its_chain_fails(engine: Engine,
                                                             tmp_path: Path) -> None:
    north, _ = _make_case(engine, tmp_path)
    response = north.get("/v1/audit/bundles", case=CASE)
    assert response.status_code == 200, response.text
    left_out = tmp_path / "left-out.jsonl"
    left_out.write_bytes(sealed(response.content, _drop("E-1", registry=True)))
    assert json.loads(left_out.read_bytes().split(b"\n", 1)[0])["scope"]["assets"] == ["R-0"]
    failed = _verify(left_out, "--offline")
    assert failed.returncode == 1, failed.stdout
    assert "lists 1 exhibit(s) of the case that the bundle leaves out" in failed.stdout
    chain = tmp_path / "chain.jsonl"
    chain.write_bytes(sealed(response.content, _drop("R-0", registry=False)))
    failed = _verify(chain, "--offline")
    assert failed.returncode == 1 and "events left out" in failed.stdout, failed.stdout


@pytest.mark.parametrize(("params", "status"), [
    ({"case": "x" * 65}, 422),
    ({"case": "24-1\x00"}, 422),
    ({"case": " 24-1"}, 422),
    ({"case": "24-1\n"}, 422),
    ({"case": "é"}, 422),
    ({"case": CASE, "site": "north-store"}, 422),
    ({"case": CASE, "asset": "E-1"}, 422),
    ({"case": CASE, "start": "2026-01-01T00:00:00.000Z", "end": "2027-01-01T00:00:00.000Z"},
     422),
    ({"case": "24-999999"}, 404),
])
def test_bad_case_parameters_are_refused(engine: Engine, tmp_path: Path, params: dict[str, str],
                                         status: int) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    _refer(north, "E-1", CASE, "JD/1")
    answer = north.get("/v1/audit/bundles", **params)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_a_case_bundle_anchored_on_anvil_checks_against_exported_tiles(
        engine: Engine, anvil: AnvilNode, tmp_path: Path) -> None:
    """The case's checkpoint anchored on a real anvil node: `kitledger verify --rpc` confirms
    the anchor on that chain, and `--tiles` recomputes every inclusion and consistency proof of
    the case bundle from `kitledger tiles export`'s files alone, under the anchored root."""
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    for asset, exhibit in EXHIBITS.items():
        _refer(north, asset, CASE, exhibit)
    assert _manual(north, "E-1", "check_out", "desk-1", officer="alice", supervisor="bob",
                   holder="alice").status_code == 201
    admin: LocalAccount = Account.create()
    connect(anvil.url).provider.make_request(RPCEndpoint("anvil_setBalance"),
                                             [admin.address, hex(10**21)])
    key_file = tmp_path / "admin.key"
    key_file.write_text(admin.key.hex())
    key_file.chmod(0o600)
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_chain_url=anvil.url,
                             anchor_admin_key_file=key_file, anchor_interval_s=1)
    with Session(engine) as session:
        size = open_log(session, "north").size
    _anchor(settings, engine, size)
    bundle = tmp_path / "case.jsonl"
    bundle.write_bytes(north.get("/v1/audit/bundles", case=CASE).content)
    tiles = tmp_path / "tiles"
    env = {**os.environ, "KITLEDGER_LOG_KEY_DIR": str(tmp_path / "keys")}
    exported = subprocess.run(
        [str(KITLEDGER), "tiles", "export", "--database-url",
         engine.url.render_as_string(hide_password=False), "--agency", "north", "--out",
         str(tiles)], capture_output=True, text=True, timeout=120, check=False, env=env)
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["size"] == size
    from api.agency_keys import log_key
    from ledger.core.envelope import raw_public_key

    key = raw_public_key(log_key(tmp_path / "keys", "north").public_key())
    done = subprocess.run(
        [str(KITLEDGER), "verify", str(bundle), "--rpc", anvil.url, "--no-state", "--json",
         "--log-key", key.hex(), "--tiles", str(tiles)],
        capture_output=True, text=True, timeout=180, check=False)
    verdict = json.loads(done.stdout.splitlines()[-1])
    checks = {c["name"]: c for c in verdict["checks"]}
    assert done.returncode == 0 and verdict["verdict"] == "valid", done.stdout + done.stderr
    assert checks["anchors"]["passed"] is True and checks["tiles"]["passed"] is True
    assert checks["tiles"]["items"] >= len(EXHIBITS)
    assert "kitledger verify --rpc" not in checks["anchors"].get("detail", "")
