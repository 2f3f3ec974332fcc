"""The head map from the API database (`api.head_maps`): exactly the log's state at any size,
committed by every checkpoint the anchoring service signs, and carried by exported bundles so
that `kitledger verify` catches an event left out of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.config import load_settings
from api.head_maps import HeadMapUnavailable, head_map_at
from api.models.custody import LogCheckpoint
from ledger.core.bundle import FingerprintHasher
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import canonical_bytes
from ledger.core.envelope import Envelope
from ledger.core.head_log import head_map_of
from tests.api.api_support import log_leaves
from tests.api.test_export import NORTH_SIZE, SECRET, _anchor, _get, _verify, _world
from tests.paths import REPO_ROOT


def _records(engine: Engine, agency: str) -> list[bytes]:
    """The log's leaves: custody events and registry records."""
    with Session(engine) as session:
        return log_leaves(session, agency)


def test_the_map_at_every_size_is_the_logs_state_then(engine: Engine,
                                                       tmp_path: Path) -> None:
    _world(engine, tmp_path / "keys")  # north: its registry, R-0 and R-1 registered, checked out
    records = _records(engine, "north")
    assert len(records) == NORTH_SIZE
    with Session(engine) as session:
        for size in range(len(records) + 1):
            # The oracle reads the leaves themselves; the API walks back from the asset table.
            assert head_map_at(session, "north", size).root == head_map_of(records[:size]).root
        registered = head_map_at(session, "north", NORTH_SIZE - 2)  # before the check-outs
        assert [registered.entry(i).subject for i in range(registered.size)] == [
            None, None, "agency", "asset", "asset", "class", "reader", None, None]
        assert registered.assets_at("north-store") == ["R-0", "R-1"]  # registered in the store
        assert head_map_at(session, "north", NORTH_SIZE).assets_at("north-store") == []
        with pytest.raises(HeadMapUnavailable):
            head_map_at(session, "north", NORTH_SIZE + 1)
        with pytest.raises(HeadMapUnavailable):
            head_map_at(session, "nobody", 0)


def test_another_agencys_asset_of_the_same_id_is_not_in_the_map(engine: Engine,
                                                                  tmp_path: Path) -> None:
    """Ids are per agency: south's own "R-0", with an event of the seq north's R-0 had before
    its latest, leaves north's map at every size as north's log has it."""
    from api.custody.events import CustodyChange, append_change
    from api.db import utcnow
    from api.logstore import appending_log, claim_log_writer
    from api.models.assets import Asset, AssetCreate, AssetStatus, HolderKind
    from api.registry import create_asset
    from api.scoping import own_row

    _world(engine, tmp_path / "keys")  # north's R-0: checked out (seq 0)
    with Session(engine) as session:
        create_asset(session, agency_id="south", now=utcnow(), data=AssetCreate(
            id="R-0", class_id="s-radio", epc_hex="E28011606000020500000098",
            home_site_id="south-store"))
        session.commit()
    for agency, store in (("south", "south-store"), ("north", "north-store")):
        with Session(engine) as session:  # south's R-0 seq 0, then north's R-0 seq 1
            claim_log_writer(session, utcnow())
            asset = own_row(session, Asset, agency, "R-0")
            assert asset is not None
            with appending_log(session) as log:
                append_change(session, log, asset, CustodyChange(
                    action="check_in", holder_kind=HolderKind.LOCATION, holder_ref=store,
                    new_status=AssetStatus.IN_STORE, time=utcnow()))
            session.commit()
    records = _records(engine, "north")
    assert len(records) == NORTH_SIZE + 1
    with Session(engine) as session:
        for size in range(len(records) + 1):
            assert head_map_at(session, "north", size).root == head_map_of(records[:size]).root
        assert head_map_at(session, "north", NORTH_SIZE).assets_at("north-store") == []
        assert head_map_at(session, "north", NORTH_SIZE + 1).assets_at("north-store") == ["R-0"]


def _drop_leaf(bundle: bytes, leaf: int) -> bytes:
    """`bundle` without the event at `leaf` and its proof, re-sealed as a forger would."""
    lines = bundle.split(b"\n")[:-2]
    header = json.loads(lines[0])
    at = next(i for i, line in enumerate(lines)
              if line.startswith(b'{"leaf":%d,' % leaf) and b'"type":"inclusion"' in line)
    del lines[at - 1:at + 1]
    header["counts"]["events"] -= 1
    lines[0] = canonical_bytes(header)
    hasher = FingerprintHasher()
    for line in lines:
        hasher.add(line)
    end = canonical_bytes({"type": "bundle-end", "lines": len(lines),
                           "fingerprint": hasher.digest().hex()})
    return b"\n".join([*lines, end]) + b"\n"


def test_checkpoints_commit_to_the_map_and_bundles_prove_their_tails(
        engine: Engine, tmp_path: Path) -> None:
    client, key = _world(engine, tmp_path / "keys")
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, engine, NORTH_SIZE)
    with Session(engine) as session:
        rows = session.exec(select(LogCheckpoint).where(LogCheckpoint.agency_id == "north"))
        for row in rows:
            point = Checkpoint.from_record(Envelope.from_bytes(row.envelope).payload)
            assert point.heads == head_map_at(session, "north", point.tree_size).root
    response = _get(client, key, "/v1/audit/bundles", asset=["R-0", "R-1"])
    assert response.status_code == 200, response.text
    good = tmp_path / "bundle.jsonl"
    good.write_bytes(response.content)
    assert b'"type":"head"' in response.content
    done = _verify(good, "--offline", "--json")
    assert done.returncode == 0, done.stdout
    # R-1's check-out (the last leaf, its last event) left out: it would look still in store.
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(_drop_leaf(response.content, NORTH_SIZE - 1))
    done = _verify(cut, "--offline", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1, report
    failing = {c["name"]: c["detail"] for c in report["checks"] if c["passed"] is False}
    assert set(failing) == {"completeness"}
    assert "'R-1': the log's latest event is seq 1" in failing["completeness"]
    # A time range ending in the future ends at the newest checkpoint: all that is proven.
    response = _get(client, key, "/v1/audit/bundles", start="2000-01-01T00:00:00.000Z",
                    end="2999-01-01T00:00:00.000Z")
    assert response.status_code == 200, response.text
    scope = json.loads(response.content.split(b"\n", 1)[0])["scope"]
    assert scope["assets"] == ["R-0", "R-1"] and scope["end"] < "2999"
    ranged = tmp_path / "range.jsonl"
    ranged.write_bytes(response.content)
    done = _verify(ranged, "--offline", "--json")
    assert done.returncode == 0, done.stdout


def test_bench_head_map_quick_prints_its_figure() -> None:
    """The checkpoint-time map benchmark runs (quick size, SQLite) and checks its own map."""
    bench = REPO_ROOT / "bench" / "head_map.py"
    done = subprocess.run([sys.executable, str(bench), "--quick", "--backend", "sqlite"],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 20,000 |")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "33,333", done.stdout


def test_the_case_index_holds_each_exhibits_latest_reference(engine: Engine,
                                                             tmp_path: Path) -> None:
    """Case entries follow the latest `evidence-referenced` record: R-0 moved from case 24-1 to
    case "24 2" leaves 24-1 with R-1 only, and the map before the move still had both."""
    from api.custody import evidence
    from api.db import utcnow
    from api.models.assets import Asset
    from api.scoping import own_row

    _world(engine, tmp_path / "keys")
    for asset, case in (("R-0", "24-1"), ("R-1", "24-1"), ("R-0", "24 2")):
        with Session(engine) as session:
            row = own_row(session, Asset, "north", asset)
            assert row is not None
            evidence.set_references(session, asset=row, case_ref=case, exhibit_ref="X/1",
                                    now=utcnow())
            session.commit()
    records = _records(engine, "north")
    assert len(records) == NORTH_SIZE + 3
    with Session(engine) as session:
        for size in range(NORTH_SIZE, len(records) + 1):
            assert head_map_at(session, "north", size).root == head_map_of(records[:size]).root
        before = head_map_at(session, "north", len(records) - 1)
        after = head_map_at(session, "north", len(records))
    assert before.assets_in_case("24-1") == ["R-0", "R-1"]
    assert after.assets_in_case("24-1") == ["R-1"] and after.assets_in_case("24 2") == ["R-0"]
    assert after.assets_in_case("24") == []  # a prefix of a case is another case
