"""The agencies' logs as C2SP tlog-tiles, on SQLite and PostgreSQL: tiles and entry bundles
equal the log the API proves from (its consistency and history proofs, for many sizes past
256 leaves so level-1 tiles exist), caching and media types as the spec asks, hostile paths
refused with 400/404 (never 500), other agencies' logs hidden, and `kitledger verify --tiles`
against the live served API and against `kitledger tiles export`'s directory, failing clearly
on a tampered tile."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.agency_keys import log_key_id
from api.app import create_app
from api.auth import create_api_client
from api.checkpoints import DatabaseLog, bind_log_key, record_checkpoint
from api.config import load_settings
from api.logstore import open_log
from api.models import Agency, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate
from api.registry import create_asset, create_class
from api.tiles import export_tiles
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.envelope import raw_public_key
from ledger.core.merkle import leaf_hash
from ledger.core.note import (
    ED25519,
    NoteVerifier,
    log_origin,
    parse_checkpoint_text,
    parse_note,
    verify_note,
)
from ledger.core.records import format_time
from ledger.core.tiles import TileRef, decode_entries, split_tile, tiles_for_size
from ledger.tiled_log import TiledLog
from tests.api.api_support import log_leaves
from tests.fixtures.live_app import served

SECRET = "t" * 40
KITLEDGER = Path(sys.executable).with_name("kitledger")
ASSETS = 140
"""Each asset is two leaves (its tag record, its registration): with the registry's opening
and the class, north's log passes 256 leaves, so tile/1 exists."""


@dataclass
class World:
    client: TestClient
    key: str
    south_key: str
    key_dir: Path
    size: int
    log_public: bytes


def _populate(engine: Engine, key_dir: Path, assets: int = ASSETS) -> World:
    now = datetime.now(UTC)
    with Session(engine) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency))
            session.flush()
            session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
            session.flush()
            create_class(session, agency_id=agency, now=now,
                         data=AssetClassCreate(id=f"{agency}-radio", name="Radio"))
        session.flush()
        for n in range(assets):
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=f"R-{n}", class_id="north-radio", epc_hex=f"E2800000000000000000{n:04d}",
                home_site_id="north-store"))
        create_asset(session, agency_id="south", now=now, data=AssetCreate(
            id="S-1", class_id="south-radio", epc_hex="E28000000000000000009999",
            home_site_id="south-store"))
        _, key = create_api_client(session, agency_id="north", name="auditor",
                                   scopes=[Scope.AUDIT_READ], server_secret=SECRET, now=now)
        _, south = create_api_client(session, agency_id="south", name="auditor",
                                     scopes=[Scope.AUDIT_READ], server_secret=SECRET, now=now)
        session.commit()
    size = _checkpoint(engine, key_dir)
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=key_dir)
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False)
    log_key = bind_log_key(engine, key_dir, "north")
    return World(client, key, south, key_dir, size, raw_public_key(log_key.public_key()))


def _checkpoint(engine: Engine, key_dir: Path) -> int:
    """Sign north's log at its current size, as the anchoring service does without a chain."""
    key = bind_log_key(engine, key_dir, "north")
    view = DatabaseLog(engine, "north")
    size = view.size
    point = Checkpoint(log_key_id(key), size, view.root(size), format_time(datetime.now(UTC)),
                       heads=view.heads_root(size))
    record_checkpoint(engine, "north", sign_checkpoint(point, key), None, datetime.now(UTC))
    return size


class ApiSource:
    """Tiles fetched through the API's routes, as any tiles client would."""

    def __init__(self, world: World, agency: str = "north") -> None:
        self.world, self.prefix = world, f"/v1/logs/{agency}"

    def read(self, path: str, limit: int) -> bytes | None:
        answer = self.world.client.get(f"{self.prefix}/{path}",
                                       headers={"Authorization": f"Bearer {self.world.key}"})
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        return answer.content[:limit + 1]


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> World:
    return _populate(engine, tmp_path / "keys")


def _get(world: World, path: str, key: str | None = None) -> Any:
    token = world.key if key is None else key
    return world.client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_tiles_equal_the_apis_proofs(world: World, engine: Engine) -> None:
    assert world.size > 256 + 16
    tiled = TiledLog(ApiSource(world), world.size)
    sizes = [1, 2, 7, 64, 255, 256, 257, 263, world.size - 1, world.size]
    for first in sizes:
        for second in sizes:
            if first > second:
                continue
            answer = _get(world, f"/v1/log/consistency?first={first}&second={second}").json()
            assert [h.hex() for h in tiled.consistency_proof(first, second)] == answer["proof"]
            assert tiled.root(second).hex() == answer["second"]["root"]
    for asset in ("R-0", "R-70", f"R-{ASSETS - 1}"):
        history = _get(world, f"/v1/assets/{asset}/history").json()
        for event in history["events"]:
            proof = tiled.inclusion_proof(event["leaf_index"], history["tree"]["size"])
            assert [h.hex() for h in proof] == event["inclusion_proof"]
    with Session(engine) as session:
        log = open_log(session, "north")
        for size in sizes:
            for index in {0, size // 3, size - 1}:
                assert tiled.inclusion_proof(index, size) == log.inclusion_proof(index, size)


def test_entry_bundles_hash_to_the_level_0_tiles(world: World, engine: Engine) -> None:
    with Session(engine) as session:
        leaves = log_leaves(session, "north")
    source = ApiSource(world)
    seen = []
    for ref in tiles_for_size(world.size):
        if ref.level != 0:
            continue
        hashes = split_tile(source.read(ref.path(), 10**6) or b"", ref)
        bundle = TileRef(None, ref.n, ref.width)
        entries = decode_entries(source.read(bundle.path(), 10**6) or b"", bundle)
        assert [leaf_hash(e) for e in entries] == hashes
        seen += entries
    assert seen == leaves


def test_caching_and_media_types(world: World) -> None:
    full = _get(world, "/v1/logs/north/tile/0/000")
    assert full.status_code == 200 and len(full.content) == 8192
    assert full.headers["content-type"] == "application/octet-stream"
    assert "immutable" in full.headers["cache-control"]
    assert "max-age=31536000" in full.headers["cache-control"]
    width = world.size % 256
    partial = _get(world, f"/v1/logs/north/tile/0/001.p/{width}")
    assert partial.status_code == 200 and len(partial.content) == 32 * width
    assert "immutable" not in partial.headers["cache-control"]
    assert "no-cache" in partial.headers["cache-control"]
    # A level-1 hash is the root of a full level-0 tile: here, of the first 256 leaves.
    level1 = _get(world, "/v1/logs/north/tile/1/000.p/1")
    first_256 = _get(world, "/v1/log/consistency?first=256&second=256").json()["first"]["root"]
    assert level1.content.hex() == first_256
    # Entry bundles are gzipped for a client that accepts it, and only then.
    auth = {"Authorization": f"Bearer {world.key}"}
    plain = world.client.get("/v1/logs/north/tile/entries/000",
                             headers={**auth, "Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers and len(plain.content) > 8192
    for accept in ("gzip", "br;q=1, GZIP;q=0.5", "*"):
        raw = world.client.get("/v1/logs/north/tile/entries/000",
                               headers={**auth, "Accept-Encoding": accept})
        assert raw.headers["content-encoding"] == "gzip", accept
        assert raw.content == plain.content  # the client decoded it
        assert int(raw.headers["content-length"]) < len(plain.content) // 2
    refused = world.client.get("/v1/logs/north/tile/entries/000",
                               headers={**auth, "Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers
    assert "content-encoding" not in _get(world, "/v1/logs/north/tile/0/000").headers
    note = _get(world, "/v1/logs/north/checkpoint")
    assert note.headers["content-type"] == "text/plain; charset=utf-8"
    assert "no-cache" in note.headers["cache-control"]


def test_the_checkpoint_is_a_signed_note_by_the_log_key(world: World) -> None:
    body = _get(world, "/v1/logs/north/checkpoint").content
    note = parse_note(body)
    log_id = _get(world, "/v1/checkpoints").json()["log_id"]
    verify_note(note, (NoteVerifier(log_origin(log_id), ED25519, world.log_public),))
    checkpoint = parse_checkpoint_text(note.text)
    head = _get(world, "/v1/checkpoints").json()
    assert (checkpoint.origin, checkpoint.size, checkpoint.root.hex()) == (
        f"kitledger/{log_id}", head["tree_size"], head["root"])
    assert checkpoint.extensions[0].startswith("heads ")
    assert body.decode().split("\n")[:3] == [f"kitledger/{log_id}", str(world.size),
                                              checkpoint.text().split("\n")[2]]


MALFORMED = [
    "tile/0/1", "tile/0/0000", "tile/0/x001", "tile/0/000.p/0", "tile/0/000.p/256",
    "tile/0/000.p/007", "tile/00/000", "tile/64/000", "tile/0/x000/001",
    "tile/0/x072/x057/x594/x037/x927/936", "tile/0/" + "x999/" * 30 + "999",
    "tile/entries/000.p/", "tile/0/..%2F..%2Fcheckpoint", "tile/0/%2e%2e/000",
    "tile/%F0%9F%92%A5/000", "tile/x/000", "tile/" + "9" * 500 + "/000",
]
BEYOND = [
    "tile/0/002", "tile/0/001", "tile/1/000", "tile/2/000.p/1", "tile/entries/001",
    "tile/0/001.p/255", "tile/7/x001/000", "tile/0/x072/x057/x594/x037/x927/935",
]


def test_malformed_paths_are_400_and_tiles_beyond_the_log_404(world: World) -> None:
    for path in MALFORMED:
        answer = _get(world, f"/v1/logs/north/{path}")
        assert answer.status_code == 400, (path, answer.status_code, answer.text)
        assert answer.json()["type"].endswith("bad-tile-path")
    # A NUL is refused before any route, as everywhere in the API.
    assert _get(world, "/v1/logs/north/tile/0/000%00").status_code == 422
    for path in BEYOND:
        assert _get(world, f"/v1/logs/north/{path}").status_code == 404, path


def test_another_agencys_log_is_hidden(world: World) -> None:
    for path in ("checkpoint", "tile/0/000", "tile/entries/000"):
        assert _get(world, f"/v1/logs/north/{path}", world.south_key).status_code == 404
        assert world.client.get(f"/v1/logs/north/{path}").status_code == 401
    # south has a log but no signed checkpoint yet: its tiles serve, its checkpoint does not.
    south = _get(world, "/v1/log/head", world.south_key).json()["size"]
    tile = _get(world, f"/v1/logs/south/tile/0/000.p/{south}", world.south_key)
    assert tile.status_code == 200 and len(tile.content) == 32 * south
    assert _get(world, "/v1/logs/south/checkpoint", world.south_key).status_code == 404


@pytest.fixture
def live_url(world: World, engine: Engine) -> Iterator[str]:
    """The API served by uvicorn on a loopback port, over the world's database."""
    settings = load_settings(environment="test", secret_key=SECRET, log_key_dir=world.key_dir)
    with served(create_app(settings, engine)) as url:
        yield url


def _kitledger(*args: str, key: str = "", key_dir: Path | None = None
               ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITLEDGER_API_KEY": key}
    if key_dir is not None:
        env["KITLEDGER_LOG_KEY_DIR"] = str(key_dir)
    return subprocess.run([str(KITLEDGER), *args], capture_output=True, text=True, timeout=120,
                          check=False, env=env)


NO_CHAIN = {"anchors"}
"""The checks this chainless world fails whatever the tiles: its checkpoints are signed, never
anchored (test_export.py covers anchoring); the tiles check is judged on its own."""


def _verify(world: World, bundle: Path, tiles: str) -> tuple[int, dict[str, Any]]:
    """`kitledger verify --tiles`: its exit code and the tiles check (every other check but
    the chain's passing)."""
    done = _kitledger("verify", str(bundle), "--offline", "--no-state", "--json",
                      "--log-key", world.log_public.hex(), "--tiles", tiles, key=world.key)
    verdict = json.loads(done.stdout.splitlines()[-1])
    checks = {c["name"]: c for c in verdict["checks"]}
    assert "tiles" in checks, done.stdout + done.stderr
    failed = {name for name, c in checks.items() if c["passed"] is False} - {"tiles"}
    assert failed == NO_CHAIN, verdict
    return done.returncode, checks["tiles"]


def _bundle(world: World, tmp_path: Path, name: str) -> Path:
    answer = _get(world, "/v1/audit/bundles?asset=R-3&asset=R-139")
    assert answer.status_code == 200, answer.text
    path = tmp_path / name
    path.write_bytes(answer.content)
    return path


def test_verify_fetches_proofs_from_served_and_exported_tiles(
        world: World, engine: Engine, live_url: str, tmp_path: Path) -> None:
    bundle = _bundle(world, tmp_path, "first.ndjson")
    _code, tiles = _verify(world, bundle, f"{live_url}/v1/logs/north")
    assert tiles["passed"] is True and tiles["items"] >= 3, tiles
    out = tmp_path / "published"
    url = engine.url.render_as_string(hide_password=False)
    done = _kitledger("tiles", "export", "--database-url", url, "--agency", "north",
                      "--out", str(out), key_dir=world.key_dir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["size"] == world.size
    first_width = world.size % 256
    assert (out / f"tile/0/001.p/{first_width}").is_file()
    assert (out / "checkpoint").read_bytes() == _get(world, "/v1/logs/north/checkpoint").content
    for ref in tiles_for_size(world.size):  # the directory is what the API serves
        served = _get(world, f"/v1/logs/north/{ref.path()}").content
        assert (out / ref.path()).read_bytes() == served, ref
    assert _verify(world, bundle, str(out))[1]["passed"] is True

    # The log grows and is signed again: a re-export keeps the older checkpoint's partial
    # tile (its full tile does not exist yet), and the first bundle still checks against it.
    full_before = (out / "tile/0/000").stat().st_mtime_ns
    now = datetime.now(UTC)
    with Session(engine) as session:
        for n in range(ASSETS, ASSETS + 10):
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=f"R-{n}", class_id="north-radio", epc_hex=f"E2800000000000000000{n:04d}",
                home_site_id="north-store"))
        session.commit()
    grown = _checkpoint(engine, world.key_dir)
    newer = _bundle(world, tmp_path, "newer.ndjson")
    code, check = _verify(world, newer, str(out))  # tiles not yet exported past the bundle
    assert code == 1 and f"tiles checkpoint is of size {world.size}, older than the bundle's " \
        f"newest ({grown})" in check["detail"], check
    assert _kitledger("tiles", "export", "--database-url", url, "--agency", "north",
                      "--out", str(out), key_dir=world.key_dir).returncode == 0
    assert (out / f"tile/0/001.p/{first_width}").is_file()
    assert (out / f"tile/0/001.p/{grown % 256}").is_file()
    assert (out / "tile/0/000").stat().st_mtime_ns == full_before  # immutable: not rewritten
    assert _verify(world, bundle, str(out))[1]["passed"] is True
    assert _verify(world, newer, str(out))[1]["passed"] is True
    assert _verify(world, bundle, f"{live_url}/v1/logs/north")[1]["passed"] is True


def test_export_refuses_what_it_cannot_write(world: World, engine: Engine, tmp_path: Path
                                             ) -> None:
    url = engine.url.render_as_string(hide_password=False)
    out = tmp_path / "out"
    unknown = _kitledger("tiles", "export", "--database-url", url, "--agency", "west",
                         "--out", str(out), key_dir=world.key_dir)
    assert unknown.returncode == 2 and "no agency 'west'" in unknown.stderr
    unsigned = _kitledger("tiles", "export", "--database-url", url, "--agency", "south",
                          "--out", str(out), key_dir=world.key_dir)
    assert unsigned.returncode == 1 and "no signed checkpoint yet" in unsigned.stderr
    keyless = _kitledger("tiles", "export", "--database-url", url, "--agency", "north",
                         "--out", str(out), key_dir=tmp_path / "elsewhere")
    assert keyless.returncode == 1 and "log key is not available" in keyless.stderr
    assert not out.exists()  # nothing half-written
    (tmp_path / "file").write_bytes(b"")
    blocked = _kitledger("tiles", "export", "--database-url", url, "--agency", "north",
                         "--out", str(tmp_path / "file"), key_dir=world.key_dir)
    assert blocked.returncode == 1 and "cannot write under" in blocked.stderr


def test_verify_fails_clearly_on_tampered_or_missing_tiles(
        world: World, engine: Engine, tmp_path: Path) -> None:
    bundle = _bundle(world, tmp_path, "bundle.ndjson")
    out = tmp_path / "published"
    with Session(engine) as session:
        export_tiles(session, "north", world.key_dir, out)
    tile = out / "tile/0/000"
    good = tile.read_bytes()
    tampered = bytearray(good)
    tampered[2 * 32 + 7] ^= 0x40  # leaf 2's hash
    tile.write_bytes(bytes(tampered))
    code, check = _verify(world, bundle, str(out))
    assert code == 1 and check["passed"] is False
    assert "inclusion proof computed from the tiles fails: tree root: expected" in str(
        check["detail"]), check
    level1 = out / "tile/1/000.p/1"
    good1 = level1.read_bytes()
    level1.write_bytes(bytes(32))  # the first 256 leaves' root
    code, check = _verify(world, bundle, str(out))
    assert code == 1 and "tiles hash to root" in str(check["detail"]), check
    level1.write_bytes(good1)
    tile.write_bytes(good[:-32])  # a truncated tile
    code, check = _verify(world, bundle, str(out))
    assert code == 1 and "tile/0/000: 8160 bytes, expected 256 hashes" in str(check["detail"])
    tile.unlink()  # a missing one
    code, check = _verify(world, bundle, str(out))
    assert code == 1 and "tile/0/000" in str(check["detail"]), check
    tile.write_bytes(good)
    note = out / "checkpoint"
    note.write_bytes(note.read_bytes().replace(b"\n\n", b"\nextra\n\n", 1))  # text changed
    code, check = _verify(world, bundle, str(out))
    assert code == 1 and "does not verify" in str(check["detail"]), check
    done = _kitledger("verify", str(bundle), "--offline", "--no-state", "--tiles",
                      str(tmp_path / "nowhere"))
    assert done.returncode == 2 and "--tiles" in done.stderr and "not a directory" in done.stderr

