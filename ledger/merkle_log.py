"""The append-only Merkle log (RFC 9162 tree) over a pluggable store of subtree hashes.

`MerkleLog` owns the sequencing of leaves and the hash of every perfect subtree ("node",
addressed by (level, index), see `ledger.core.merkle_plan`). Appending one leaf writes the leaf
hash plus one node per subtree it completes: O(log n) worst case, O(1) on average. A root, an
inclusion proof or a consistency proof for any size loads only the O(log n) nodes its plan
names — no rebuild — so a proof in a 10-million-leaf log costs the same as in a small one.

Storage is a `NodeStore` (memory and SQLite in `ledger.merkle_nodes`; the API implements the same
protocol on its database, inside its own transaction). The log has a single writer, its
sequencer: one `MerkleLog` per store, not shared between threads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256
from typing import Protocol

from ledger.core.encoding import MAX_RECORD_BYTES
from ledger.core.errors import LedgerError
from ledger.core.merkle import LEAF_PREFIX, MAX_TREE_SIZE, NODE_PREFIX, ProofInputError
from ledger.core.merkle_plan import (
    Coord,
    ProofPlan,
    assemble,
    consistency_plan,
    fold,
    inclusion_plan,
    root_plan,
)

MAX_LEAF_BYTES = 4 * MAX_RECORD_BYTES
"""Largest leaf entry accepted: a leaf is one canonical custody record (MAX_RECORD_BYTES) or a
signed envelope around one; four times that leaves room for the envelope without letting one
append hold megabytes."""

MAX_APPEND_BATCH = 1_000_000
"""Most entries one `append_many` call takes: a batch is hashed in memory and stored in one
`put_many`, so an unbounded batch would be unbounded memory."""

Node = tuple[int, int, bytes]
"""(level, index, hash) of one perfect subtree, as a store writes it."""


class LogError(LedgerError):
    """Root of the Merkle log's storage and usage errors."""


class NodeMissing(LogError):
    """A store does not hold a node that its size says it must hold."""


class NodeConflict(LogError):
    """A write would replace or skip a stored node: the log is append-only and gap-free."""


class LeafTooLarge(LogError):
    """A leaf entry longer than MAX_LEAF_BYTES, or a batch longer than MAX_APPEND_BATCH."""


class NodeStore(Protocol):
    """Where a `MerkleLog` keeps subtree hashes. Three operations, all batched:

    - `get_many(coords)` returns the 32-byte hashes of the given (level, index) nodes in the same
      order, raising `NodeMissing` for any node not stored;
    - `put_many(nodes)` stores (level, index, hash) triples as one unit (all or none), raising
      `NodeConflict` if a node is already stored or would leave a gap in its level;
    - `size()` is the number of stored leaves (level-0 nodes).

    A store never hashes and never decides which nodes exist; the log does both."""

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]: ...

    def put_many(self, nodes: Sequence[Node]) -> None: ...

    def size(self) -> int: ...


class MerkleLog:
    """An RFC 9162 Merkle log: append leaves, read roots and proofs at any past size."""

    def __init__(self, store: NodeStore) -> None:
        self._store = store
        self._size = store.size()
        # The compact range [0, size): the roots of the perfect subtrees that make up the whole
        # tree, largest first. Appends only ever touch its tail, and its fold is the root.
        self._frontier = store.get_many(root_plan(self._size).coords)

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    def append(self, entry: bytes) -> int:
        """Append one leaf entry; return its 0-based index."""
        return self.append_many((entry,))

    def append_many(self, entries: Iterable[bytes]) -> int:
        """Append entries in order, stored as one unit; return the index of the first one."""
        first = self._size
        frontier = list(self._frontier)
        nodes: list[Node] = []
        index = first
        for entry in entries:
            if len(entry) > MAX_LEAF_BYTES:
                raise LeafTooLarge(f"leaf of {len(entry)} bytes exceeds {MAX_LEAF_BYTES}")
            if index - first >= MAX_APPEND_BATCH:
                raise LeafTooLarge(f"batch exceeds {MAX_APPEND_BATCH} entries")
            digest = sha256(LEAF_PREFIX + entry).digest()
            nodes.append((0, index, digest))
            level, position = 0, index
            # Each trailing one bit of the index completes a subtree with its left neighbour.
            while position & 1:
                digest = sha256(NODE_PREFIX + frontier.pop() + digest).digest()
                level += 1
                position >>= 1
                nodes.append((level, position, digest))
            frontier.append(digest)
            index += 1
        if index > MAX_TREE_SIZE:
            raise LeafTooLarge("log would exceed the largest RFC 9162 tree size")
        if nodes:
            self._store.put_many(nodes)  # all or nothing: on failure our state is unchanged
            self._frontier = frontier
            self._size = index
        return first

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= self._size:
            raise ProofInputError(f"tree size {size!r} outside 0..{self._size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first `size` leaves (default: all of them)."""
        size = self._check_size(size)
        if size == self._size:
            return fold(self._frontier)
        return fold(self._store.get_many(root_plan(size).coords))

    def _prove(self, plan: ProofPlan) -> list[bytes]:
        return assemble(plan, self._store.get_many(plan.coords))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]): the audit path proving leaf `index` is in the tree of `size`."""
        return self._prove(inclusion_plan(index, self._check_size(size)))

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[size2]): proves the tree of `size2` leaves extends that of `size1`."""
        size2 = self._check_size(size2)
        return self._prove(consistency_plan(self._check_size(size1), size2))

    def leaf_hash(self, index: int) -> bytes:
        """The stored hash of leaf `index`."""
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < self._size:
            raise ProofInputError(f"leaf index {index!r} outside 0..{self._size - 1}")
        return self._store.get_many(((0, index),))[0]
