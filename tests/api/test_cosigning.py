"""The service collects witness cosignatures on its checkpoints (api.cosigning): real
`kitledger witness serve` processes cosign each agency log's newest checkpoint, a witness that is
down is retried with backoff and catches up from the size it holds, metrics show its lag, and
an exported bundle carries the cosignatures that `kitledger verify --witness` checks."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.agency_keys import log_key
from api.anchoring import AnchoringService
from api.bundles import export_agency_bundle
from api.config import Settings, load_settings
from api.cosigning import CosigningService
from api.db import make_engine
from api.ingest.pipeline import IngestPipeline
from api.metrics import watch_witnesses
from api.migrate import upgrade
from api.models import CheckpointCosignature
from api.models.assets import AssetClassCreate, AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_class, create_person
from ledger.core import note
from ledger.core.bundle import Scope as BundleScope
from ledger.core.envelope import key_id, raw_public_key
from tests.api.api_support import register_reader
from tests.fixtures.ports import free_port
from tests.fixtures.witnesses import KITLEDGER, WitnessProcess, start_witness

BADGE = "E28000000000000000000009"
RADIOS = ["E28011606000020500000001", "E28011606000020500000002"]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(engine)
    yield engine
    engine.dispose()


def _ingest(engine: Engine) -> None:
    """North registers two radios and checks them out at its issue desk (nine log leaves, with
    its registry's)."""
    desk = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    now = datetime.now(UTC)
    with Session(engine) as session:
        create_class(session, agency_id="north", now=now,
                     data=AssetClassCreate(id="radio", name="Radio"))
        session.flush()
        create_person(session, agency_id="north", now=now,
                      data=PersonCreate(id="alice", badges=[BADGE]))
        for i, epc in enumerate(RADIOS):
            _add_asset(session, i, epc)
        session.commit()
    messages = [desk.message(0, BADGE, kind="badge", session="s1")]
    messages += [desk.message(i + 1, epc, session="s1") for i, epc in enumerate(RADIOS)]
    assert len(IngestPipeline(engine, load_settings()).process(messages).recorded.accepted) == 3


def _add_asset(session: Session, i: int, epc: str) -> None:
    create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
        id=f"R-{i}", class_id="radio", epc_hex=epc, home_site_id="north-store"))


def _checkpoint(settings: Settings, engine: Engine) -> None:
    service = AnchoringService(settings, engine)
    service.start()
    try:
        service.step(now=2e9)
    finally:
        service.close()


def _log_vkey(key_dir: Path) -> tuple[str, str]:
    key = log_key(key_dir, "north")
    origin = note.log_origin(key_id(key.public_key()))
    return origin, note.NoteVerifier(origin, note.ED25519,
                                     raw_public_key(key.public_key())).vkey()


def _stored(engine: Engine) -> list[tuple[int, str]]:
    with Session(engine) as session:
        return sorted((r.tree_size, r.witness) for r in session.exec(
            select(CheckpointCosignature)))


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[tuple[Settings, list[WitnessProcess], int]]:
    key_dir = tmp_path / "keys"
    log_origin, log_vkey = _log_vkey(key_dir)
    up = [start_witness(tmp_path, f"w{i}.example", [(log_origin, log_vkey)]) for i in (1, 2)]
    down_port = free_port()
    keygen = subprocess.run([str(KITLEDGER), "witness", "keygen", "--name", "w3.example",
                             "--out", str(tmp_path / "w3.key")], capture_output=True, check=True,
                            timeout=60)
    down_vkey = keygen.stdout.decode().strip()
    settings = load_settings(
        log_key_dir=key_dir, anchor_chain_url="none", anchor_max_new_leaves=1,
        witness_interval_s=5, witness_backoff_max_s=60, witness_timeout_s=2,
        witnesses=[*({"url": w.url, "vkey": w.vkey} for w in up),
                   {"url": f"http://127.0.0.1:{down_port}", "vkey": down_vkey}])
    try:
        yield settings, up, down_port
    finally:
        for witness in up:
            witness.stop()


def test_cosignatures_collected_retried_and_exported(
        engine: Engine, tmp_path: Path, world: tuple[Settings, list[WitnessProcess], int]
) -> None:
    settings, _, down_port = world
    _ingest(engine)
    _checkpoint(settings, engine)
    # A cosigning process pointed at a directory without the log key makes no key: it waits.
    elsewhere = tmp_path / "elsewhere"
    keyless = CosigningService(load_settings(**{**settings.model_dump(),
                                                "log_key_dir": elsewhere}), engine)
    assert keyless.step(now=1000.0) == 0 and not elsewhere.exists()
    assert all("does not exist" in b.last_error for b in keyless.backoff.values())
    service = CosigningService(settings, engine)
    assert service.step(now=1000.0) == 2
    first = _stored(engine)
    size = first[0][0]
    assert first == [(size, "w1.example"), (size, "w2.example")]
    down = service.backoff[("north", settings.witnesses[2].vkey)]
    assert down.next_at == 1005.0 and "w3.example" not in str(first)
    assert service.step(now=1001.0) == 0  # nothing new; the third still backing off
    assert service.step(now=1005.0) == 0 and down.next_at == 1015.0  # doubled
    watch_witnesses(engine, [w.vkey for w in settings.witnesses])
    metrics = generate_latest().decode()
    assert 'kitledger_witness_behind_checkpoints{agency="north",witness="w3.example"} 1.0' \
        in metrics
    assert 'kitledger_witness_behind_checkpoints{agency="north",witness="w1.example"} 0.0' \
        in metrics
    # The third witness comes up; the log has grown meanwhile: it cosigns the newest from 0,
    # the others from the size they hold, with a consistency proof.
    late = start_witness(tmp_path, "w3.example", [_log_vkey(settings.log_key_dir)],
                         key=tmp_path / "w3.key", vkey=settings.witnesses[2].vkey)
    assert late.port != down_port  # a fresh port: point the settings at it
    settings = load_settings(**{**settings.model_dump(), "witnesses": [
        *settings.witnesses[:2], {"url": late.url, "vkey": late.vkey}]})
    service = CosigningService(settings, engine)
    try:
        _ingest_more(engine)
        _checkpoint(settings, engine)
        assert service.step(now=2000.0) == 3
        newest = max(s for s, _ in _stored(engine))
        assert newest > size
        assert [w for s, w in _stored(engine) if s == newest] == [
            "w1.example", "w2.example", "w3.example"]
        with Session(engine) as session:
            bundle = export_agency_bundle(session, agency_id="north", asset_ids=["R-0", "R-1"],
                                          scope=BundleScope("assets", ("R-0", "R-1")),
                                          now=datetime.now(UTC))
        path = tmp_path / "bundle.jsonl"
        path.write_bytes(bundle)
        command = [str(KITLEDGER), "verify", str(path), "--offline", "--json",
                   "--witness-quorum", "3"]
        for witness in settings.witnesses:
            command += ["--witness", witness.vkey]
        done = subprocess.run(command, capture_output=True, timeout=120, check=False)
        report = json.loads(done.stdout)
        check = next(c for c in report["checks"] if c["name"] == "witness-cosignatures")
        assert check["passed"] is True, report
        # The witnesses cosigned notes with the heads line: the same bundle (format version 3)
        # carries the head proofs too, and they prove it complete.
        header = json.loads(bundle.split(b"\n", 1)[0])
        assert header["v"] == 3 and header["counts"]["heads"] > 0, header
        check = next(c for c in report["checks"] if c["name"] == "completeness")
        assert check["passed"] is True, report
    finally:
        late.stop()


def _ingest_more(engine: Engine) -> None:
    with Session(engine) as session:
        _add_asset(session, 2, "E28011606000020500000003")
        session.commit()
