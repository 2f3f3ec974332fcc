"""MerkleLog over MemoryNodeStore and a real SQLite file: roots, proofs, reopening, refusals."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

import tests.ledger.reference_merkle as ref
from ledger.core.merkle import (
    ProofInputError,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.merkle_plan import Coord
from ledger.merkle_log import (
    MAX_LEAF_BYTES,
    LeafTooLarge,
    MerkleLog,
    Node,
    NodeConflict,
    NodeMissing,
    NodeStore,
)
from ledger.merkle_nodes import MemoryNodeStore, SQLiteNodeStore

ENTRIES = [b"custody event %d" % i for i in range(70)]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NodeStore]:
    if request.param == "memory":
        yield MemoryNodeStore()
    else:
        with SQLiteNodeStore(tmp_path / "log.db") as sqlite_store:
            yield sqlite_store


class CountingStore:
    """Wraps a store and records what the log asks of it."""

    def __init__(self, inner: NodeStore) -> None:
        self.inner = inner
        self.fetched: list[Coord] = []
        self.fail_puts = False

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        self.fetched.extend(coords)
        return self.inner.get_many(coords)

    def put_many(self, nodes: Sequence[Node]) -> None:
        if self.fail_puts:
            raise OSError("disk full")
        self.inner.put_many(nodes)

    def size(self) -> int:
        return self.inner.size()


class SyntheticStore:
    """A store claiming `leaves` leaves, every one the same entry, so the node at level L is
    a function of L alone and can be computed on demand: a consistent 10-million-leaf tree
    without building one."""

    def __init__(self, leaves: int) -> None:
        self.leaves = leaves
        self.fetched = 0
        self.by_level = [leaf_hash(b"kit")]
        for _ in range(leaves.bit_length()):
            self.by_level.append(node_hash(self.by_level[-1], self.by_level[-1]))

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        self.fetched += len(coords)
        for level, index in coords:
            assert (index + 1) << level <= self.leaves, "asked for a node that cannot exist"
        return [self.by_level[level] for level, _index in coords]

    def put_many(self, nodes: Sequence[Node]) -> None:
        raise AssertionError("reading proofs must not write")

    def size(self) -> int:
        return self.leaves


def test_roots_and_proofs_at_every_past_size_match_the_reference(store: NodeStore) -> None:
    log = MerkleLog(store)
    assert [log.append(e) for e in ENTRIES[:30]] == list(range(30))
    assert log.append_many(ENTRIES[30:]) == 30
    assert log.size == len(ENTRIES)
    for n in range(len(ENTRIES) + 1):
        assert log.root(n) == ref.mth(ENTRIES[:n])
    for n in (1, 2, 7, 8, 9, 33, 70):
        for m in range(n):
            assert log.inclusion_proof(m, n) == ref.path(m, ENTRIES[:n])
            if m:
                assert log.consistency_proof(m, n) == ref.proof(m, ENTRIES[:n])


def test_sqlite_log_reopens_and_keeps_growing(tmp_path: Path) -> None:
    with SQLiteNodeStore(tmp_path / "log.db") as first:
        log = MerkleLog(first)
        log.append_many(ENTRIES[:37])
        root37 = log.root()
    with SQLiteNodeStore(tmp_path / "log.db") as second:
        log = MerkleLog(second)
        assert log.size == 37 and log.root() == root37
        log.append_many(ENTRIES[37:])
        assert log.root() == ref.mth(ENTRIES)
        proof = log.consistency_proof(37)
        verify_consistency(37, len(ENTRIES), root37, log.root(), proof)


def test_proof_in_a_ten_million_leaf_log_loads_only_what_it_needs() -> None:
    store = SyntheticStore(10_000_000)
    log = MerkleLog(store)
    opened = store.fetched
    assert opened <= 64  # the compact range: one node per set bit of the size
    root = log.root()

    def uniform_root(n: int) -> bytes:  # RFC 9162 MTH for n equal leaves, by its recursion
        if n & (n - 1) == 0:
            return store.by_level[n.bit_length() - 1]
        k = 1 << ((n - 1).bit_length() - 1)
        return node_hash(uniform_root(k), uniform_root(n - k))

    assert root == uniform_root(10_000_000)
    for index in (0, 4_999_999, 9_999_999):
        before = store.fetched
        proof = log.inclusion_proof(index)
        assert store.fetched - before <= 2 * 64
        verify_inclusion(store.get_many([(0, index)])[0], index, 10_000_000, proof, root)
    before = store.fetched
    proof = log.consistency_proof(6_543_210)
    assert store.fetched - before <= 2 * 64
    verify_consistency(6_543_210, 10_000_000, log.root(6_543_210), root, proof)


def test_a_failed_store_write_leaves_the_log_unchanged() -> None:
    store = CountingStore(MemoryNodeStore())
    log = MerkleLog(store)
    log.append_many(ENTRIES[:5])
    root5 = log.root()
    store.fail_puts = True
    with pytest.raises(OSError):
        log.append_many(ENTRIES[5:9])
    assert log.size == 5 and log.root() == root5
    store.fail_puts = False
    log.append_many(ENTRIES[5:9])
    assert log.root() == ref.mth(ENTRIES[:9])


def test_oversized_leaf_is_refused_and_nothing_is_written(store: NodeStore) -> None:
    log = MerkleLog(store)
    log.append(b"first")
    with pytest.raises(LeafTooLarge):
        log.append_many([b"ok", b"x" * (MAX_LEAF_BYTES + 1)])
    assert log.size == 1 and store.size() == 1
    log.append(b"x" * MAX_LEAF_BYTES)  # the limit itself is allowed
    assert log.size == 2


def test_replayed_entries_are_new_leaves(store: NodeStore) -> None:
    log = MerkleLog(store)
    assert log.append(b"same") == 0 and log.append(b"same") == 1
    assert log.leaf_hash(0) == log.leaf_hash(1)


@pytest.mark.parametrize(
    ("call", "args"),
    [
        ("inclusion_proof", (5, None)),
        ("inclusion_proof", (-1, None)),
        ("inclusion_proof", (0, 6)),
        ("inclusion_proof", (0, 0)),
        ("inclusion_proof", (True, None)),
        ("consistency_proof", (4, 3)),
        ("consistency_proof", (6, None)),
        ("consistency_proof", (-1, 3)),
        ("root", (6,)),
        ("root", (-1,)),
        ("leaf_hash", (5,)),
        ("leaf_hash", (-1,)),
    ],
)
def test_questions_outside_the_log_are_refused(call: str, args: tuple[object, ...]) -> None:
    log = MerkleLog(MemoryNodeStore())
    log.append_many(ENTRIES[:5])
    with pytest.raises(ProofInputError):
        getattr(log, call)(*args)


def test_stores_refuse_overwrites_gaps_and_bad_hashes(store: NodeStore) -> None:
    MerkleLog(store).append_many(ENTRIES[:4])
    good = hashlib.sha256(b"n").digest()
    for bad in ([(0, 3, good)], [(0, 5, good)], [(0, 4, good), (0, 6, good)],
                [(0, 4, good[:31])], [(1, 3, good), (1, 2, good)]):
        with pytest.raises(NodeConflict):
            store.put_many(bad)
        assert store.size() == 4
    assert MerkleLog(store).root() == ref.mth(ENTRIES[:4])  # nothing partial was written


def test_stores_report_missing_nodes(store: NodeStore) -> None:
    MerkleLog(store).append_many(ENTRIES[:4])
    for coord in ((0, 4), (2, 1), (3, 0), (0, -1), (-1, 0)):
        with pytest.raises(NodeMissing):
            store.get_many([coord])


def test_sqlite_row_deleted_behind_our_back_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with SQLiteNodeStore(path) as sqlite_store:
        MerkleLog(sqlite_store).append_many(ENTRIES[:8])
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM merkle_node WHERE level = 1 AND idx = 2")
    with SQLiteNodeStore(path) as sqlite_store:
        log = MerkleLog(sqlite_store)
        with pytest.raises(NodeMissing):
            log.inclusion_proof(7, 8)


def test_sqlite_get_many_batches_large_requests(tmp_path: Path) -> None:
    with SQLiteNodeStore(tmp_path / "log.db") as sqlite_store:
        MerkleLog(sqlite_store).append_many(ENTRIES)
        coords = [(0, i) for i in range(len(ENTRIES))] * 20  # 1,400 coords, > one batch
        hashes = sqlite_store.get_many(coords)
        assert hashes[:70] == [ref.mth([e]) for e in ENTRIES]
        assert hashes == hashes[:70] * 20


def test_sqlite_proofs_use_key_lookups_not_scans(tmp_path: Path) -> None:
    # Counted in SQLite VM instructions, not seconds: a scan of this log's 8,191 rows would
    # take tens of thousands; a proof's 12 primary-key lookups take a few hundred.
    with SQLiteNodeStore(tmp_path / "log.db") as sqlite_store:
        log = MerkleLog(sqlite_store)
        log.append_many(b"e%d" % i for i in range(4096))
        ticks = [0]

        def tick() -> int:
            ticks[0] += 1
            return 0

        sqlite_store._db.set_progress_handler(tick, 100)
        log.inclusion_proof(1234)
        log.consistency_proof(1000)
        assert ticks[0] < 40
