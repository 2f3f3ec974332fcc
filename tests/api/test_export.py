"""End to end: observations ingested -> custody events in the agency's log -> a checkpoint
signed and anchored by the service (embedded chain and a real anvil) -> an audit bundle
exported through the HTTP API -> `kitledger verify` (a subprocess) accepts it; a tampered
database row makes the exported bundle fail verification."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fastapi import HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text, update
from sqlmodel import Session

from api.anchoring import AnchoringService
from api.app import create_app
from api.auth import Caller, create_api_client
from api.bundle_requests import (
    BadBundleScope,
    BundleScopeError,
    NoVisibleAssets,
    export_requested_bundle,
    resolve_bundle_scope,
)
from api.bundles import BundleUnavailable
from api.config import Settings, load_settings
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.migrate import upgrade
from api.models import Agency, CustodyEventRow, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate, AssetShare
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_class, create_person
from ledger.core.checkpoint import Checkpoint
from ledger.core.merkle import leaf_hash, verify_inclusion
from tests.api.api_support import register_reader
from tests.ledger.chain.anvil_node import AnvilNode

SECRET = "x" * 40
BADGE = "E28000000000000000000009"
RADIOS = ["E28011606000020500000001", "E28011606000020500000002"]
KITLEDGER = Path(sys.executable).with_name("kitledger")
NORTH_SIZE = 9
"""North's log: registry opened, desk-1, class radio, then per radio its tag and registration
event, then the two check-outs."""


def _world(engine: Engine, key_dir: Path) -> tuple[TestClient, str]:
    """Agencies north and south; north checks two radios out at its issue desk."""
    desk = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    register_reader(engine, agency_id="south", site_id="south-store", reader_id="desk-9")
    now = datetime.now(UTC)
    with Session(engine) as session:
        create_class(session, agency_id="north", now=now,
                     data=AssetClassCreate(id="radio", name="Radio"))
        create_class(session, agency_id="south", now=now,
                     data=AssetClassCreate(id="s-radio", name="Radio"))
        session.flush()
        create_person(session, agency_id="north", now=now,
                      data=PersonCreate(id="alice", badges=[BADGE]))
        for i, epc in enumerate(RADIOS):
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=f"R-{i}", class_id="radio", epc_hex=epc, home_site_id="north-store"))
        create_asset(session, agency_id="south", now=now, data=AssetCreate(
            id="S-1", class_id="s-radio", epc_hex="E28011606000020500000099",
            home_site_id="south-store"))
        _, key = create_api_client(session, agency_id="north", name="auditor",
                                   scopes=[Scope.AUDIT_READ], server_secret=SECRET, now=now)
        session.commit()
    messages = [desk.message(0, BADGE, kind="badge", session="s1")]
    messages += [desk.message(i + 1, epc, session="s1") for i, epc in enumerate(RADIOS)]
    result = IngestPipeline(engine, load_settings()).process(messages)
    assert len(result.recorded.accepted) == 3
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=key_dir)
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False)
    return client, key


def _anchor(settings: Settings, engine: Engine, want_size: int) -> None:
    service = AnchoringService(settings, engine)
    service.start()
    try:
        for _ in range(200):
            service.step()
            with Session(engine) as session:
                done = session.execute(text(
                    "SELECT COUNT(*) FROM log_checkpoint WHERE agency_id = 'north'"
                    " AND tx_hash IS NOT NULL AND tree_size = :n"), {"n": want_size}).scalar()
            if done:
                return
            time.sleep(0.1)
        raise AssertionError("the service never anchored the north log")
    finally:
        service.close()


def _verify(bundle: Path, *chain: str) -> subprocess.CompletedProcess[str]:
    """`kitledger verify` pinning the north log's key (read from the server's key directory,
    beside the bundle), each bundle judged alone (no stored checkpoint)."""
    from api.agency_keys import log_key
    from ledger.core.envelope import raw_public_key

    key = log_key(bundle.parent / "keys", "north").public_key()
    return subprocess.run([str(KITLEDGER), "verify", str(bundle), *chain, "--no-state",
                           "--log-key", raw_public_key(key).hex()],
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _get(client: TestClient, key: str, url: str, **params: Any) -> Any:
    return client.get(url, params=params, headers={"Authorization": f"Bearer {key}"})


def test_embedded_anchoring_checkpoints_history_and_offline_bundle(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    client, key = _world(sqlite_engine, tmp_path / "keys")
    # north: its registry (opened, the desk, the class, two tags), two registrations and two
    # check-outs; south's one event is in south's own log.
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, sqlite_engine, NORTH_SIZE)
    assert sorted(p.name for p in (tmp_path / "keys").iterdir() if p.suffix == ".key") == [
        "north.anchorer.key", "north.log.key", "south.anchorer.key", "south.log.key"]
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in (tmp_path / "keys").glob("*.key"))
    point = _get(client, key, "/v1/checkpoints").json()
    assert point["tree_size"] == NORTH_SIZE and point["anchor"]["tx_hash"]
    signed = Checkpoint.from_record(point["envelope"]["payload"])
    assert signed.log_id == point["log_id"] and signed.root.hex() == point["root"]
    assert _get(client, key, "/v1/checkpoints", size=3).status_code == 404
    history = _get(client, key, "/v1/assets/R-0/history").json()
    assert history["checkpoint"]["tree_size"] == NORTH_SIZE
    for event in history["events"]:
        with Session(sqlite_engine) as session:
            row = session.get(CustodyEventRow, _row_id(sqlite_engine, "R-0", event["seq"]))
            assert row is not None
        verify_inclusion(leaf_hash(row.record), event["leaf_index"], NORTH_SIZE,
                         [bytes.fromhex(h) for h in event["checkpoint_proof"]], signed.root)
    response = _get(client, key, "/v1/audit/bundles", asset=["R-0", "R-1"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # since_size: the checkpoints start at the auditor's last verified size, or it is refused.
    since = _get(client, key, "/v1/audit/bundles", asset=["R-0", "R-1"], since_size=NORTH_SIZE)
    assert since.status_code == 200, since.text
    from ledger.core.bundle_parse import parse_bundle

    first = parse_bundle(since.content).checkpoints[0].envelope.payload
    assert Checkpoint.from_record(first).tree_size == NORTH_SIZE
    missing = _get(client, key, "/v1/audit/bundles", asset=["R-0"], since_size=3)
    assert missing.status_code == 409 and "no anchored checkpoint at size 3" in missing.text
    # South's asset is not north's to export, and an empty scope is a problem, not a 5xx.
    assert _get(client, key, "/v1/audit/bundles", asset=["S-1"]).status_code == 404
    assert _get(client, key, "/v1/audit/bundles").status_code == 422


def test_bundle_requests_raise_typed_errors_the_route_answers_as_problems(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    client, key = _world(sqlite_engine, tmp_path / "keys")
    caller = Caller("test", "north", frozenset({Scope.AUDIT_READ.value}))
    now = datetime.now(UTC)
    # (assets, site, start, end) -> the service's error, and the route's status and type.
    cases: list[tuple[dict[str, Any], type[Exception], int, str]] = [
        ({"assets": ["S-1"]}, NoVisibleAssets, 404, "not-found"),
        ({"assets": ["R-0"], "site": "north-store"}, BadBundleScope, 422, "bad-scope"),
        ({"start": "yesterday", "end": "today"}, BadBundleScope, 422, "bad-time"),
        ({}, BadBundleScope, 422, "bad-scope"),
        ({"assets": ["R-0"]}, BundleUnavailable, 409, "not-checkpointed"),  # not anchored yet
    ]
    for ask, error, status, slug in cases:
        request = {"assets": None, "site": None, "start": None, "end": None, **ask}
        with Session(sqlite_engine) as session, pytest.raises(error) as raised:
            export_requested_bundle(session, caller, now=now, **request)
        assert not isinstance(raised.value, HTTPException)
        if isinstance(raised.value, BundleScopeError):
            assert raised.value.slug == slug
        params = {"asset" if k == "assets" else k: v for k, v in ask.items()}
        answer = _get(client, key, "/v1/audit/bundles", **params)
        assert (answer.status_code, answer.json()["type"].rsplit("/", 1)[1]) == (status, slug)


def test_assets_named_by_id_are_the_callers_own_first_then_those_shared_with_it(
        engine: Engine, tmp_path: Path) -> None:
    """Ids are per agency: north's bundle of "S-1" is of south's once south shares it, of
    north's own once north has one (`owner` still picks south's), and an id that two other
    agencies share with north needs its owner named."""
    _world(engine, tmp_path / "keys")
    caller = Caller("test", "north", frozenset({Scope.AUDIT_READ.value}))

    def owner_of(assets: list[str], owner: str | None = None) -> str:
        with Session(engine) as session:
            return resolve_bundle_scope(session, caller, assets, None, None, None,
                                        owner=owner)[1]

    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(Agency(id="east", name="East"))
        session.flush()
        session.add(Site(id="east-store", agency_id="east", name="Store"))
        create_class(session, agency_id="east", now=now,
                     data=AssetClassCreate(id="s-radio", name="Radio"))
        session.flush()
        for agency, epc in (("south", "E28011606000020500000097"),
                            ("east", "E28011606000020500000096")):
            create_asset(session, agency_id=agency, now=now, data=AssetCreate(
                id="X-1", class_id="s-radio", epc_hex=epc, home_site_id=f"{agency}-store",
                shared_with=["north"]))
        session.add(AssetShare(owner_id="south", asset_id="S-1", agency_id="north"))
        session.commit()
    assert owner_of(["S-1"]) == "south"
    with pytest.raises(BadBundleScope) as raised:
        owner_of(["X-1"])
    assert raised.value.slug == "asset-ambiguous"
    assert owner_of(["X-1"], "east") == "east"
    assert owner_of(["X-1", "S-1"], "south") == "south"
    with Session(engine) as session:
        create_asset(session, agency_id="north", now=now, data=AssetCreate(
            id="S-1", class_id="radio", epc_hex="E28011606000020500000095",
            home_site_id="north-store"))
        session.commit()
    assert owner_of(["S-1"]) == "north" and owner_of(["S-1"], "south") == "south"
    with pytest.raises(NoVisibleAssets):
        owner_of(["S-1"], "east")


def _row_id(engine: Engine, asset_id: str, seq: int) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM custody_event WHERE asset_id = :a AND seq = :s"),
                             {"a": asset_id, "s": seq}).scalar()
    assert isinstance(found, int)
    return found


def test_anvil_anchored_bundle_verifies_and_tampering_is_caught(
    sqlite_engine: Engine, tmp_path: Path, anvil: AnvilNode
) -> None:
    client, key = _world(sqlite_engine, tmp_path / "keys")
    admin = Account.create()
    anvil_rpc(anvil, "anvil_setBalance", [admin.address, hex(10**21)])
    admin_key_file = tmp_path / "admin.key"
    admin_key_file.write_text(admin.key.hex())
    admin_key_file.chmod(0o600)
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys",
                             anchor_chain_url=anvil.url, anchor_admin_key_file=admin_key_file,
                             anchor_interval_s=1)
    _anchor(settings, sqlite_engine, NORTH_SIZE)
    response = _get(client, key, "/v1/audit/bundles", asset=["R-0"])
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(response.content)
    checked = _verify(bundle, "--rpc", anvil.url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # An operator rewrites a stored event: the bundle built from the database no longer verifies.
    with Session(sqlite_engine) as session:
        row = session.get(CustodyEventRow, _row_id(sqlite_engine, "R-0", 1))
        assert row is not None
        forged = row.record.replace(b'"check_out"', b'"check_in"')
        assert forged != row.record
        session.execute(update(CustodyEventRow).where(
            CustodyEventRow.id == row.id).values(record=forged))  # type: ignore[arg-type]
        session.commit()
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_bytes(_get(client, key, "/v1/audit/bundles", asset=["R-0"]).content)
    refused = _verify(tampered, "--rpc", anvil.url)
    assert refused.returncode == 1, refused.stdout + refused.stderr


def anvil_rpc(node: AnvilNode, method: str, params: list[Any]) -> Any:
    from web3 import HTTPProvider, Web3

    return Web3(HTTPProvider(node.url)).provider.make_request(method, params)  # type: ignore[arg-type]


def _export(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(KITLEDGER), "export", "--database-url", db_url, *args],
                          capture_output=True, text=True, timeout=120, check=False)


def _without_created(bundle: bytes) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in bundle.splitlines()]
    # The creation time differs, and the closing fingerprint covers it.
    lines[0].pop("created", None)
    lines[-1].pop("fingerprint", None)
    return lines


def test_export_command_writes_the_api_bundle(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = make_engine(load_settings(database_url=db_url))
    upgrade(engine)
    client, key = _world(engine, tmp_path / "keys")
    with Session(engine) as session:  # one radio left in the store: the site's only asset
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-9", class_id="radio", epc_hex="E28011606000020500000009",
            home_site_id="north-store"))
        session.commit()
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", anchor_interval_s=1)
    _anchor(settings, engine, NORTH_SIZE + 2)  # R-9's tag and registration
    out = tmp_path / "exported.jsonl"
    done = _export(db_url, "--agency", "north", "--asset", "R-0", "--asset", "R-1",
                   "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["assets"] == 2
    checked = _verify(out, "--offline")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    served = _get(client, key, "/v1/audit/bundles", asset=["R-0", "R-1"]).content
    assert _without_created(out.read_bytes()) == _without_created(served)
    by_site = tmp_path / "site.jsonl"
    assert _export(db_url, "--agency", "north", "--site", "north-store",
                   "--out", str(by_site)).returncode == 0
    assert _verify(by_site, "--offline").returncode == 0
    since = tmp_path / "since.jsonl"
    assert _export(db_url, "--agency", "north", "--site", "north-store", "--since-size",
                   str(NORTH_SIZE + 2),
                   "--out", str(since)).returncode == 0
    assert _verify(since, "--offline").returncode == 0
    done = _export(db_url, "--agency", "north", "--site", "north-store", "--since-size", "2",
                   "--out", str(since))
    assert done.returncode == 1 and "no anchored checkpoint at size 2" in done.stdout
    # The log places only R-9 at the store (R-0 and R-1 are checked out), and proves it.
    assert json.loads(by_site.read_bytes().split(b"\n", 1)[0])["scope"]["assets"] == ["R-9"]
    # Another agency's asset, no scope, two scopes, oversized input: refused, nothing written.
    refused = tmp_path / "refused.jsonl"
    for bad in (["--asset", "S-1"], ["--asset", "R-0", "--site", "north-store"],
                ["--asset", "R" * 10_000]):
        done = _export(db_url, "--agency", "north", *bad, "--out", str(refused))
        assert done.returncode == 2, (bad, done.stdout + done.stderr)
        assert json.loads(done.stdout)["verdict"] == "unusable"
    assert _export(db_url, "--agency", "nobody", "--asset", "R-0",
                   "--out", str(refused)).returncode == 2
    assert not refused.exists()
    engine.dispose()
