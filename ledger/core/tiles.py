"""C2SP tlog-tiles: a Merkle log as static tiles and entry bundles (pure; no I/O).

A tile is a run of up to 256 consecutive hashes of one tile *level*: level 0 holds leaf hashes,
level L holds the roots of the full tiles of level L - 1, i.e. the perfect subtrees of
2**(8 * L) leaves. A tree of `size` leaves has, per level, `size // 256**(L+1)` full tiles and
at most one partial tile of width `(size // 256**L) % 256`. Paths are
`tile/<L>/<N>[.p/<W>]` and `tile/entries/<N>[.p/<W>]`, N written as 3-digit groups, all but the
last prefixed `x` (1234067 -> `x001/x234/067`). An entry bundle holds the leaf *data* of a
level-0 tile, each entry prefixed by its length as a big-endian uint16.

Plan, fetch, compute, as `ledger.core.merkle_plan`: `tile_coords` says which stored nodes a
tile is, `tiles_for_nodes` which tiles a proof plan's nodes sit in, and `nodes_from_tiles`
hashes them back out of the fetched tiles. Proofs computed this way are RFC 9162 proofs; they
are trusted for nothing until checked against a signed root.

Changing this module changes every published tile path and body (tests/vectors/tiles.json).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from ledger.core.errors import LedgerError
from ledger.core.merkle import HASH_SIZE, MAX_TREE_SIZE
from ledger.core.merkle_plan import Coord, fold

TILE_HEIGHT: Final = 8
TILE_WIDTH: Final = 1 << TILE_HEIGHT
"""Hashes (or entries) in a full tile: 256, so a full hash tile is 8,192 bytes."""

MAX_LEVEL: Final = 63
"""The spec's bound on `<L>`; a uint64 tree needs at most 8 levels, so higher ones are empty."""

MAX_INDEX: Final = MAX_TREE_SIZE >> TILE_HEIGHT
"""The largest tile index any uint64-sized tree can have: a bigger N names nothing."""

MAX_ENTRY_BYTES: Final = 0xFFFF
"""An entry bundle prefixes each entry with a uint16 length: longer entries cannot be bundled."""

MAX_PATH_CHARS: Final = 128
"""The longest well-formed path is about 60 characters; longer input is refused unread."""

_LEVEL = re.compile(r"0|[1-9][0-9]?")
_WIDTH = re.compile(r"[1-9][0-9]{0,2}")
_GROUP = re.compile(r"x[0-9]{3}")
_LAST = re.compile(r"[0-9]{3}")


class TileError(LedgerError):
    """A tile path, tile or entry bundle that is malformed or does not fit the tree."""


@dataclass(frozen=True, slots=True, order=True)
class TileRef:
    """One tile: `level` (None for an entry bundle), index `n`, and `width` hashes (256: full)."""

    level: int | None
    n: int
    width: int = TILE_WIDTH

    def __post_init__(self) -> None:
        if self.level is not None and not 0 <= self.level <= MAX_LEVEL:
            raise TileError(f"tile level {self.level} outside 0..{MAX_LEVEL}")
        if not 0 <= self.n <= MAX_INDEX:
            raise TileError(f"tile index {self.n} outside 0..{MAX_INDEX}")
        if not 1 <= self.width <= TILE_WIDTH:
            raise TileError(f"tile width {self.width} outside 1..{TILE_WIDTH}")

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def hash_level(self) -> int:
        """The level whose hashes this tile's level-0 entries are (entries: level 0)."""
        return self.level or 0

    def path(self) -> str:
        """`tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`, relative to the log's prefix."""
        level = "entries" if self.level is None else str(self.level)
        suffix = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.n)}{suffix}"

    def with_width(self, width: int) -> TileRef:
        return TileRef(self.level, self.n, width)


def encode_index(n: int) -> str:
    """N as zero-padded 3-digit groups, every group but the last prefixed `x`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise TileError(f"tile index must be a non-negative integer, got {n!r}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


def parse_tile_path(path: str) -> TileRef:
    """The tile a path names (without the log's prefix), strictly: no leading zeroes in L or W,
    every N group three digits, `x` on all but the last, no empty or extra segments."""
    if not isinstance(path, str) or len(path) > MAX_PATH_CHARS:
        raise TileError("tile path too long")
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile":
        raise TileError("a tile path is tile/<L>/<N>[.p/<W>]")
    level_text, rest = parts[1], parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        if not _WIDTH.fullmatch(rest[-1]) or int(rest[-1]) >= TILE_WIDTH:
            raise TileError(f"partial tile width {rest[-1][:8]!r} is not 1..255")
        width = int(rest[-1])
        rest = [*rest[:-2], rest[-2][:-2]]
    *groups, last = rest
    if not all(_GROUP.fullmatch(g) for g in groups) or not _LAST.fullmatch(last):
        raise TileError("tile index must be 3-digit groups, all but the last prefixed 'x'")
    if groups and groups[0] == "x000":
        raise TileError("tile index has a leading zero group")
    n = int("".join(g[1:] for g in groups) + last)
    if level_text == "entries":
        level = None
    elif _LEVEL.fullmatch(level_text) and int(level_text) <= MAX_LEVEL:
        level = int(level_text)
    else:
        raise TileError(f"tile level {level_text[:8]!r} is not 0..{MAX_LEVEL} or 'entries'")
    if n > MAX_INDEX:
        raise TileError(f"tile index {n} is beyond any uint64 tree")
    return TileRef(level, n, width)


def level_width(size: int, level: int) -> int:
    """Hashes at tile level `level` in a tree of `size` leaves (full tiles' and partial's)."""
    return size >> (TILE_HEIGHT * level)


def tile_exists(ref: TileRef, size: int) -> bool:
    """Whether the tree of `size` leaves holds tile `ref` (a partial tile: as a prefix of a tile
    that may since have grown, which a client with an older checkpoint still asks for)."""
    return ref.n * TILE_WIDTH + ref.width <= level_width(size, ref.hash_level)


def tiles_for_size(size: int) -> Iterator[TileRef]:
    """Every hash tile of the tree of `size` leaves: full ones, then the partial one, per level."""
    level = 0
    while level_width(size, level) > 0:
        hashes = level_width(size, level)
        for n in range(hashes // TILE_WIDTH):
            yield TileRef(level, n)
        if hashes % TILE_WIDTH:
            yield TileRef(level, hashes // TILE_WIDTH, hashes % TILE_WIDTH)
        level += 1


def partial_tiles(size: int) -> list[TileRef]:
    """The partial tiles of the tree of `size` leaves, one per level at most (what a log must
    keep serving for a checkpoint of that size until each fills up)."""
    return list(_partials(size))


def _partials(size: int) -> Iterator[TileRef]:
    level = 0
    while (hashes := level_width(size, level)) > 0:
        if hashes % TILE_WIDTH:
            yield TileRef(level, hashes // TILE_WIDTH, hashes % TILE_WIDTH)
        level += 1


def tile_coords(ref: TileRef) -> list[Coord]:
    """The stored Merkle nodes (level, index) whose hashes, in order, are tile `ref`."""
    level = TILE_HEIGHT * ref.hash_level
    first = ref.n * TILE_WIDTH
    return [(level, first + i) for i in range(ref.width)]


def split_tile(data: bytes, ref: TileRef) -> list[bytes]:
    """A hash tile's body as its hashes; its length must be exactly `ref.width` hashes."""
    if len(data) != ref.width * HASH_SIZE:
        raise TileError(f"{ref.path()}: {len(data)} bytes, expected {ref.width} hashes "
                        f"({ref.width * HASH_SIZE} bytes)")
    return [data[i:i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def _home(coord: Coord, size: int) -> tuple[TileRef, int, int]:
    """The tile holding node `coord` of the tree of `size` leaves, and the run of that tile's
    hashes [start, stop) whose perfect fold is the node."""
    level, index = coord
    tile_level, below = divmod(level, TILE_HEIGHT)
    start = index << below
    stop = (index + 1) << below
    n = start // TILE_WIDTH
    if stop > level_width(size, tile_level) or n > MAX_INDEX:
        raise TileError(f"node {coord} is not in the tree of size {size}")
    width = min(TILE_WIDTH, level_width(size, tile_level) - n * TILE_WIDTH)
    return TileRef(tile_level, n, width), start - n * TILE_WIDTH, stop - n * TILE_WIDTH


def tiles_for_nodes(coords: Iterable[Coord], size: int) -> list[TileRef]:
    """The tiles of the tree of `size` leaves that hold the given perfect-subtree nodes."""
    return sorted({_home(coord, size)[0] for coord in coords})


def nodes_from_tiles(coords: Sequence[Coord], size: int,
                     tiles: Mapping[TileRef, Sequence[bytes]]) -> list[bytes]:
    """The hashes of `coords`, hashed out of the fetched tiles (`tiles_for_nodes`): a node
    between two tile levels is the perfect fold of the tile hashes under it."""
    found = []
    for coord in coords:
        ref, start, stop = _home(coord, size)
        hashes = tiles.get(ref)
        if hashes is None:
            raise TileError(f"tile {ref.path()} was not fetched")
        found.append(_perfect_root(hashes[start:stop]))
    return found


def _perfect_root(hashes: Sequence[bytes]) -> bytes:
    # A power-of-two run is a perfect subtree: fold pairwise, bottom up.
    level = list(hashes)
    while len(level) > 1:
        level = [fold(level[i:i + 2]) for i in range(0, len(level), 2)]
    return level[0]


def encode_entries(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as big-endian uint16 length || entry."""
    out = bytearray()
    for position, entry in enumerate(entries):
        if len(entry) > MAX_ENTRY_BYTES:
            raise TileError(f"entry {position} is {len(entry)} bytes; a bundle holds at most "
                            f"{MAX_ENTRY_BYTES}")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_entries(data: bytes, ref: TileRef) -> list[bytes]:
    """The entries of bundle `ref`: exactly `ref.width` of them, no trailing bytes."""
    entries: list[bytes] = []
    at = 0
    while at < len(data) and len(entries) < ref.width:
        if at + 2 > len(data):
            raise TileError(f"{ref.path()}: truncated length prefix at byte {at}")
        length = int.from_bytes(data[at:at + 2], "big")
        if at + 2 + length > len(data):
            raise TileError(f"{ref.path()}: entry {len(entries)} runs past the end")
        entries.append(data[at + 2:at + 2 + length])
        at += 2 + length
    if len(entries) != ref.width or at != len(data):
        raise TileError(f"{ref.path()}: {len(entries)} entries and {len(data) - at} trailing "
                        f"bytes, expected exactly {ref.width} entries")
    return entries
