"""Reading a C2SP tiled log (a directory or an http(s) URL) and computing proofs from its tiles.

`TiledLog` fetches the log's signed checkpoint note and the tiles a proof plan needs
(`ledger.core.merkle_plan`, `ledger.core.tiles`), and hashes them into RFC 9162 roots and
proofs. Nothing fetched is trusted: the caller checks the note's signature against a pinned
key and the proofs against signed roots, so a tampered tile shows as a root mismatch.

A partial tile for an older size may be gone once its tile filled up (the spec allows
deleting it); a wider partial tile or the full tile starts with the same hashes, so the
reader falls back to the tile the served checkpoint's size implies and takes the prefix.
Every fetch is bounded in size and time.
"""

from __future__ import annotations

import http.client
import os
import urllib.parse
from pathlib import Path
from typing import Final, Protocol

from ledger.core.merkle import ProofInputError
from ledger.core.merkle_plan import ProofPlan, assemble, consistency_plan, inclusion_plan
from ledger.core.merkle_plan import fold as fold_hashes
from ledger.core.merkle_plan import root_plan as root_plan_of
from ledger.core.note import MAX_NOTE_BYTES
from ledger.core.tiles import (
    MAX_ENTRY_BYTES,
    TILE_WIDTH,
    TileError,
    TileRef,
    decode_entries,
    level_width,
    nodes_from_tiles,
    split_tile,
    tiles_for_nodes,
)

MAX_TILE_BYTES: Final = TILE_WIDTH * (2 + MAX_ENTRY_BYTES)
"""The largest body worth reading: a full entry bundle of maximal entries (hash tiles are
8 KiB); anything longer is refused unread."""

FETCH_TIMEOUT_S: Final = 30.0
TOKEN_ENVIRONMENT: Final = "KITLEDGER_API_KEY"  # noqa: S105 (a variable name)
"""An http(s) tiles URL on the kitledger API needs an `audit:read` key: read from this
environment variable (never a command-line argument, which other users can see)."""


class TileSource(Protocol):
    """Where tiles come from: `read(path)` is the body at `<prefix>/<path>`, None if absent."""

    def read(self, path: str, limit: int) -> bytes | None: ...


class DirectorySource:
    """Tiles exported to a directory (`kitledger tiles export`)."""

    def __init__(self, root: Path) -> None:
        if not root.is_dir():
            raise TileError(f"{root} is not a directory")
        self.root = root.resolve()

    def read(self, path: str, limit: int) -> bytes | None:
        target = (self.root / path).resolve()
        if self.root not in target.parents or not target.is_file():
            return None
        with target.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise TileError(f"{path}: more than {limit} bytes")
        return data


class HttpSource:
    """Tiles under an http(s) URL prefix, with the API key from KITLEDGER_API_KEY if set."""

    def __init__(self, url: str, timeout_s: float = FETCH_TIMEOUT_S) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TileError(f"not an http(s) URL: {url[:80]!r}")
        self.parts, self.timeout_s = parts, timeout_s
        self.prefix = parts.path.rstrip("/")
        self.token = os.environ.get(TOKEN_ENVIRONMENT, "")

    def read(self, path: str, limit: int) -> bytes | None:
        kind = (http.client.HTTPSConnection if self.parts.scheme == "https"
                else http.client.HTTPConnection)
        connection = kind(self.parts.hostname or "", self.parts.port, timeout=self.timeout_s)
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            connection.request("GET", f"{self.prefix}/{path}", headers=headers)
            response = connection.getresponse()
            if response.status == 404:
                return None
            if response.status != 200:
                raise TileError(f"{path}: the server answered HTTP {response.status}")
            data = response.read(limit + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise TileError(f"{path}: cannot fetch: {type(exc).__name__}: {exc}") from None
        finally:
            connection.close()
        if len(data) > limit:
            raise TileError(f"{path}: more than {limit} bytes")
        return data


def open_source(where: str) -> TileSource:
    """A tiles source from a URL or a directory path."""
    if where.startswith(("http://", "https://")):
        return HttpSource(where)
    return DirectorySource(Path(where))


class TiledLog:
    """Roots and proofs of the tree of any size up to `size`, computed from fetched tiles."""

    def __init__(self, source: TileSource, size: int) -> None:
        self.source, self.size = source, size
        self._cache: dict[TileRef, list[bytes]] = {}

    def checkpoint_note(self) -> bytes:
        data = self.source.read("checkpoint", MAX_NOTE_BYTES)
        if data is None:
            raise TileError("the tiles source has no checkpoint")
        return data

    def _tile(self, ref: TileRef) -> list[bytes]:
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        data = self.source.read(ref.path(), MAX_TILE_BYTES)
        hashes = None if data is None else split_tile(data, ref)
        if hashes is None:
            # A partial tile may be gone: the one of the served size starts with its hashes.
            wider = ref.with_width(min(TILE_WIDTH, level_width(self.size, ref.hash_level)
                                       - ref.n * TILE_WIDTH))
            if wider.width <= ref.width:
                raise TileError(f"{ref.path()} is missing from the tiles")
            data = self.source.read(wider.path(), MAX_TILE_BYTES)
            if data is None:
                raise TileError(f"{ref.path()} and {wider.path()} are missing from the tiles")
            hashes = split_tile(data, wider)[:ref.width]
        self._cache[ref] = hashes
        return hashes

    def _nodes(self, plan: ProofPlan, size: int) -> list[bytes]:
        if not 0 <= size <= self.size:
            raise ProofInputError(f"tree size {size} beyond the tiles' {self.size}")
        tiles = {ref: self._tile(ref) for ref in tiles_for_nodes(plan.coords, size)}
        return nodes_from_tiles(plan.coords, size, tiles)

    def root(self, size: int) -> bytes:
        return fold_hashes(self._nodes(root_plan_of(size), size))

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        plan = inclusion_plan(index, size)
        return assemble(plan, self._nodes(plan, size))

    def consistency_proof(self, size1: int, size2: int) -> list[bytes]:
        plan = consistency_plan(size1, size2)
        return assemble(plan, self._nodes(plan, size2))

    def leaf_hash(self, index: int) -> bytes:
        return self._nodes(ProofPlan(((0, index),)), self.size)[0]

    def entries(self, n: int, width: int = TILE_WIDTH) -> list[bytes]:
        """The entries of bundle `n` (its first `width`)."""
        ref = TileRef(None, n, width)
        data = self.source.read(ref.path(), MAX_TILE_BYTES)
        if data is None:
            raise TileError(f"{ref.path()} is missing from the tiles")
        return decode_entries(data, ref)

