"""Two `NodeStore`s for the Merkle log: in memory, and in SQLite.

`MemoryNodeStore` keeps each level of the tree as one bytearray of concatenated 32-byte hashes
(no Python object per node: a million leaves cost about 64 MB). `SQLiteNodeStore` keeps one
table, `merkle_node(level, idx, hash)`, in WAL mode, and writes each `put_many` in one
transaction. Both refuse to overwrite a node or leave a gap, so a bug upstream cannot silently
rewrite history. See `ledger.merkle_log.NodeStore` for the contract.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ledger.core.merkle import HASH_SIZE
from ledger.core.merkle_plan import Coord
from ledger.merkle_log import Node, NodeConflict, NodeMissing

SQLITE_BATCH = 400
"""Coordinates per SELECT in `SQLiteNodeStore.get_many`: two bound parameters each, kept well
under SQLite's default limit of 999 host parameters on older builds."""


class MemoryNodeStore:
    """Subtree hashes in RAM, one bytearray per level."""

    def __init__(self) -> None:
        self._levels: list[bytearray] = []

    def size(self) -> int:
        return len(self._levels[0]) // HASH_SIZE if self._levels else 0

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        levels = self._levels
        hashes: list[bytes] = []
        append = hashes.append
        for level, index in coords:
            start = index * HASH_SIZE
            try:
                digest = bytes(levels[level][start : start + HASH_SIZE])
            except IndexError:
                digest = b""
            # A short slice, a negative index or level all mean: not stored.
            if len(digest) != HASH_SIZE or index < 0 or level < 0:
                raise NodeMissing(f"node ({level}, {index}) is not stored")
            append(digest)
        return hashes

    def put_many(self, nodes: Sequence[Node]) -> None:
        # Check every node before writing any, so a refused batch leaves the store unchanged.
        lengths = [len(level) // HASH_SIZE for level in self._levels]
        for level, index, digest in nodes:
            while level >= len(lengths):
                lengths.append(0)
            if index != lengths[level] or len(digest) != HASH_SIZE:
                raise NodeConflict(
                    f"node ({level}, {index}) is not the next {HASH_SIZE}-byte node of level "
                    f"{level} (expected index {lengths[level]})"
                )
            lengths[level] += 1
        while len(self._levels) < len(lengths):
            self._levels.append(bytearray())
        levels = self._levels
        for level, _index, digest in nodes:
            levels[level] += digest


_SCHEMA = """
CREATE TABLE IF NOT EXISTS merkle_node (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID
"""


class SQLiteNodeStore:
    """Subtree hashes in one SQLite table; each `put_many` is one transaction."""

    def __init__(self, path: str | Path) -> None:
        # isolation_level=None: we open and commit transactions ourselves, one per batch.
        self._db = sqlite3.connect(str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SQLiteNodeStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def size(self) -> int:
        row = self._db.execute("SELECT max(idx) FROM merkle_node WHERE level = 0").fetchone()
        return 0 if row[0] is None else int(row[0]) + 1

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        found: dict[Coord, bytes] = {}
        for start in range(0, len(coords), SQLITE_BATCH):
            batch = coords[start : start + SQLITE_BATCH]
            values = ",".join("(?,?)" for _ in batch)
            params = [part for coord in batch for part in coord]
            # Join from the wanted list so SQLite does one primary-key lookup per coordinate
            # (a row-value IN over VALUES is planned as a full scan).
            rows = self._db.execute(
                f"WITH want(level, idx) AS (VALUES {values}) "  # noqa: S608
                "SELECT m.level, m.idx, m.hash FROM want "
                "JOIN merkle_node AS m ON m.level = want.level AND m.idx = want.idx",
                params,
            )
            for level, index, digest in rows:
                found[(level, index)] = bytes(digest)
        try:
            return [found[coord] for coord in coords]
        except KeyError as missing:
            raise NodeMissing(f"node {missing.args[0]} is not stored") from None

    def put_many(self, nodes: Sequence[Node]) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Gap check: each level's new nodes must follow its stored ones without a hole.
            expected: dict[int, int] = {}
            for level, index, _digest in nodes:
                if level not in expected:
                    row = db.execute(
                        "SELECT max(idx) FROM merkle_node WHERE level = ?", (level,)
                    ).fetchone()
                    expected[level] = 0 if row[0] is None else int(row[0]) + 1
                if index != expected[level]:
                    raise NodeConflict(
                        f"node ({level}, {index}) is not next in its level "
                        f"(expected index {expected[level]})"
                    )
                expected[level] += 1
            db.executemany("INSERT INTO merkle_node (level, idx, hash) VALUES (?, ?, ?)", nodes)
        except sqlite3.IntegrityError as err:
            db.execute("ROLLBACK")
            raise NodeConflict(f"node already stored or malformed: {err}") from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
