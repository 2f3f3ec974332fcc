"""C2SP tlog-tiles (`ledger.core.tiles`, `ledger.tiled_log`): paths as the spec spells them,
tiles as the spec defines them (checked with the RFC oracle), entry bundles, and proofs
computed from tiles equal to the log's own for many sizes, with level-1 tiles in play."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from pathlib import Path

import pytest

from ledger.core.merkle import HASH_SIZE, RootMismatch, leaf_hash, verify_inclusion
from ledger.core.note import MAX_NOTE_BYTES
from ledger.core.tiles import (
    MAX_INDEX,
    TILE_WIDTH,
    TileError,
    TileRef,
    decode_entries,
    encode_entries,
    encode_index,
    parse_tile_path,
    partial_tiles,
    tile_coords,
    tiles_for_size,
)
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore
from ledger.tiled_log import DirectorySource, HttpSource, TiledLog
from tests.ledger.reference_merkle import mth
from tests.paths import VECTORS_DIR

ENTRIES = [f"leaf-{i}".encode() for i in range(600)]


def _log(entries: list[bytes]) -> MerkleLog:
    log = MerkleLog(MemoryNodeStore())
    log.append_many(entries)
    return log


class MemorySource:
    """Tiles of a log held as a dict of path -> body (what a web server would serve)."""

    def __init__(self, log: MerkleLog, size: int, entries: list[bytes]) -> None:
        self.files: dict[str, bytes] = {}
        self.reads: list[str] = []
        store = log._store  # the tiles' bodies are the stored nodes, as the API reads them
        for ref in tiles_for_size(size):
            self.files[ref.path()] = b"".join(store.get_many(tile_coords(ref)))
            if ref.level == 0:
                bundle = TileRef(None, ref.n, ref.width)
                start = ref.n * TILE_WIDTH
                self.files[bundle.path()] = encode_entries(entries[start:start + ref.width])

    def read(self, path: str, limit: int) -> bytes | None:
        self.reads.append(path)
        return self.files.get(path)


@pytest.mark.parametrize(("n", "path"), [
    (0, "000"), (7, "007"), (999, "999"), (1000, "x001/000"), (1234067, "x001/x234/067"),
    (1_000_000, "x001/x000/000"), (MAX_INDEX, "x072/x057/x594/x037/x927/935"),
])
def test_index_groups_as_the_spec_spells_them(n: int, path: str) -> None:
    assert encode_index(n) == path
    assert parse_tile_path(f"tile/3/{path}") == TileRef(3, n)
    assert parse_tile_path(f"tile/entries/{path}.p/9") == TileRef(None, n, 9)


def test_paths_round_trip() -> None:
    for ref in (TileRef(0, 0), TileRef(0, 1234067, 112), TileRef(63, 5, 1), TileRef(None, 1, 255)):
        assert parse_tile_path(ref.path()) == ref
    assert TileRef(0, 1234067, 112).path() == "tile/0/x001/x234/067.p/112"
    assert TileRef(None, 3).path() == "tile/entries/003"


@pytest.mark.parametrize("path", [
    "tile/0/1", "tile/0/01", "tile/0/0001", "tile/0/001/", "tile/0//001", "tile/0/x001",
    "tile/0/001/002", "tile/0/y001/002", "tile/0/x000/001", "tile/00/000", "tile/01/000",
    "tile/64/000", "tile/-1/000", "tile/+1/000", "tile/1e1/000", "tile/entry/000",
    "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/007", "tile/0/000.p/", "tile/0/000.p",
    "tile/0/000.p/1/2", "tile/0/000.q/1", "tile/0/000/.p/1", "tile/../000", "tile/0/../000",
    "tile/0/%30%30%30", "tile/0/000\x00", "tile/0/ 000", "tile/0/\u0660\u0660\u0660",
    "tiles/0/000", "tile", "tile/0", "/tile/0/000", "tile/0/000.p/1.p/2",
    # Past any uint64 tree: overflowing indices are refused, never wrapped.
    "tile/0/x072/x057/x594/x037/x927/936", "tile/0/" + "x999/" * 12 + "999",
    "tile/0/" + "x001/" * 40 + "000",
])
def test_hostile_paths_are_refused(path: str) -> None:
    with pytest.raises(TileError):
        parse_tile_path(path)


def test_tree_of_70000_has_the_spec_example_tiles() -> None:
    tiles = list(tiles_for_size(70_000))
    by_level = {level: [t for t in tiles if t.level == level] for level in (0, 1, 2)}
    assert len(tiles) == sum(len(v) for v in by_level.values())
    assert [t.full for t in by_level[0]].count(True) == 273
    assert [t.width for t in by_level[0] if not t.full] == [112]
    assert [t.width for t in by_level[1]] == [256, 17]
    assert [t.width for t in by_level[2]] == [1]
    assert [(t.level, t.width) for t in tiles_for_size(256)] == [(0, 256), (1, 1)]
    assert list(tiles_for_size(0)) == []
    assert partial_tiles(70_000) == [TileRef(0, 273, 112), TileRef(1, 1, 17), TileRef(2, 0, 1)]
    assert partial_tiles(65_536) == [TileRef(2, 0, 1)]
    assert partial_tiles(0) == []


def test_tiles_are_the_spec_merkle_tree_hashes() -> None:
    """Tile n of level l is MTH(D[(n*256+i) * 256**l : (n*256+i+1) * 256**l]), i < width."""
    log = _log(ENTRIES)
    source = MemorySource(log, 600, ENTRIES)
    for ref in tiles_for_size(600):
        body = source.files[ref.path()]
        assert len(body) == ref.width * HASH_SIZE
        span = TILE_WIDTH ** ref.hash_level
        for i in range(ref.width):
            start = (ref.n * TILE_WIDTH + i) * span
            assert body[i * 32:(i + 1) * 32] == mth(ENTRIES[start:start + span]), (ref, i)
    assert len(source.files["tile/0/000"]) == 8192
    assert len(source.files["tile/1/000.p/2"]) == 64


def test_entry_bundles_are_uint16_length_prefixed() -> None:
    assert encode_entries([b"ab", b"", b"x" * 300]) == (
        b"\x00\x02ab" + b"\x00\x00" + b"\x01\x2c" + b"x" * 300)
    ref = TileRef(None, 0, 3)
    assert decode_entries(encode_entries([b"ab", b"", b"x" * 300]), ref) == [
        b"ab", b"", b"x" * 300]
    assert encode_entries([b"z" * 0xFFFF])[:2] == b"\xff\xff"
    with pytest.raises(TileError, match="at most 65535"):
        encode_entries([b"z" * 0x10000])


@pytest.mark.parametrize(("data", "why"), [
    (b"\x00\x02ab\x00\x00", "expected exactly 3"),         # one entry short
    (b"\x00\x02ab\x00\x00\x00\x01x\x00", "trailing"),     # trailing garbage
    (b"\x00\x02ab\x00\x00\x00", "truncated length"),      # half a length prefix
    (b"\x00\x02ab\x00\x00\x00\x05xy", "runs past the end"),  # length beyond the body
])
def test_bad_entry_bundles_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(TileError, match=why):
        decode_entries(data, TileRef(None, 0, 3))


def test_proofs_from_tiles_equal_the_logs_for_many_sizes() -> None:
    log = _log(ENTRIES)
    tiled = TiledLog(MemorySource(log, 600, ENTRIES), 600)
    sizes = [1, 2, 3, 5, 8, 100, 255, 256, 257, 300, 511, 512, 513, 599, 600]
    for size in sizes:
        assert tiled.root(size) == log.root(size) == mth(ENTRIES[:size])
        for index in {0, 1, size // 2, size - 2, size - 1} & set(range(size)):
            assert tiled.inclusion_proof(index, size) == log.inclusion_proof(index, size)
        for old in sizes:
            if old <= size:
                assert tiled.consistency_proof(old, size) == log.consistency_proof(old, size)
    assert tiled.leaf_hash(513) == leaf_hash(ENTRIES[513])
    assert tiled.entries(2, 88) == ENTRIES[512:600]


def test_a_vanished_partial_tile_falls_back_to_the_wider_one() -> None:
    """A client with a checkpoint of 550 asks for tile/0/002.p/38; the log, now at 600, only
    serves its .p/88 (the 38-wide one is gone): its first 38 hashes are the same. At 300,
    tile/0/001.p/44 has since filled up: the full tile serves."""
    log = _log(ENTRIES)
    source = MemorySource(log, 600, ENTRIES)
    tiled = TiledLog(source, 600)
    assert tiled.inclusion_proof(540, 550) == log.inclusion_proof(540, 550)
    assert source.reads[:2] == ["tile/0/002.p/38", "tile/0/002.p/88"]
    assert tiled.inclusion_proof(299, 300) == log.inclusion_proof(299, 300)
    assert "tile/0/001.p/44" in source.reads and "tile/0/001" in source.reads


def test_a_tampered_tile_breaks_the_proof() -> None:
    log = _log(ENTRIES)
    source = MemorySource(log, 600, ENTRIES)
    body = bytearray(source.files["tile/0/000"])
    body[5 * 32] ^= 1  # leaf 5's hash, a sibling on leaf 4's path
    source.files["tile/0/000"] = bytes(body)
    proof = TiledLog(source, 600).inclusion_proof(4, 600)
    with pytest.raises(RootMismatch, match="expected"):
        verify_inclusion(leaf_hash(ENTRIES[4]), 4, 600, proof, log.root())
    source.files["tile/0/000"] = bytes(body[:-1])  # truncated: refused by its length
    with pytest.raises(TileError, match="8191 bytes, expected 256 hashes"):
        TiledLog(source, 600).inclusion_proof(4, 600)


def test_a_directory_source_stays_inside_its_directory(tmp_path: Path) -> None:
    (tmp_path / "tiles" / "tile").mkdir(parents=True)
    (tmp_path / "secret").write_bytes(b"not a tile")
    source = DirectorySource(tmp_path / "tiles")
    assert source.read("../secret", 100) is None
    assert source.read("tile", 100) is None  # a directory is not a tile
    (tmp_path / "tiles" / "checkpoint").write_bytes(b"x" * 101)
    with pytest.raises(TileError, match="more than 100 bytes"):
        source.read("checkpoint", 100)


def test_vectors() -> None:
    """Known answers: the SHA-256 of each tile of a 600-leaf log, pinned so that a change to
    paths or bodies shows."""
    vectors = json.loads((VECTORS_DIR / "tiles.json").read_text())
    entries = [e.encode() for e in vectors["entries"]]
    log = _log(entries)
    source = MemorySource(log, len(entries), entries)
    found = {path: hashlib.sha256(body).hexdigest() for path, body in source.files.items()}
    assert found == vectors["tiles"]


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A tiles server that misbehaves by path: oversized, erroring, or echoing the key."""

    def do_GET(self) -> None:
        if self.path.endswith("/huge"):
            body = b"\x00" * (MAX_NOTE_BYTES + 10)
        elif self.path.endswith("/auth"):
            body = (self.headers.get("Authorization") or "").encode()
        elif self.path.endswith("/missing"):
            self.send_error(404)
            return
        else:
            self.send_error(500)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


def test_an_http_source_is_bounded_and_says_what_went_wrong(
        monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("KITLEDGER_API_KEY", "kl_test_key")
        source = HttpSource(f"http://127.0.0.1:{server.server_port}/v1/logs/north/")
        with pytest.raises(TileError, match=f"huge: more than {MAX_NOTE_BYTES} bytes"):
            source.read("huge", MAX_NOTE_BYTES)
        with pytest.raises(TileError, match="the server answered HTTP 500"):
            source.read("tile/0/000", 8192)
        assert source.read("missing", 10) is None
        assert source.read("auth", 100) == b"Bearer kl_test_key"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    with pytest.raises(TileError, match="cannot fetch"):
        source.read("tile/0/000", 8192)  # nothing listens any more
    for url in ("ftp://example/tiles", "http://", "file:///etc"):
        with pytest.raises(TileError, match="not an http"):
            HttpSource(url)
