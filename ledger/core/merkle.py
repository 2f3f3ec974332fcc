"""RFC 9162 Merkle tree hashing and proof verification (pure; no I/O).

This module owns the tree's hash rules (leaf prefix 0x00, interior-node prefix 0x01, SHA-256)
and the two verifiers of RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency). Which stored
nodes a proof needs, and how they are hashed into one, lives in `ledger.core.merkle_plan`.

Changing anything here changes every root and proof the log has ever published: each change
must change or add vectors under tests/vectors/merkle_*.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from hmac import compare_digest

from ledger.core.errors import ProofError

HASH_SIZE = 32
"""Bytes in a SHA-256 digest; every leaf hash, node hash, root and proof node has this length."""

MAX_TREE_SIZE = (1 << 64) - 1
"""Largest tree size accepted: RFC 9162 carries tree sizes as uint64, so anything larger is
not a tree any log could have published and is refused before any hashing."""

MAX_PROOF_NODES = 2 * 64
"""Most proof nodes accepted: a well-formed proof for a uint64-sized tree has at most 64
(inclusion) or 2 * 64 (consistency, with slack) nodes; longer input is refused unread."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = sha256(b"").digest()
"""MTH({}) of RFC 9162 §2.1.1: the root of the tree with no leaves."""


class ProofInputError(ProofError):
    """The question itself is malformed (index ≥ size, bad sizes, wrong hash lengths, too many
    nodes): no proof can answer it, so it is refused before any hashing."""


class ProofLengthMismatch(ProofError):
    """The proof has a different number of nodes than its index and sizes require."""

    def __init__(self, expected: int, found: int) -> None:
        super().__init__(f"proof needs {expected} nodes for these sizes, found {found}")
        self.expected = expected
        self.found = found


class RootMismatch(ProofError):
    """The root recomputed from the proof is not the root the caller trusts."""

    def __init__(self, which: str, expected: bytes, found: bytes) -> None:
        super().__init__(f"{which} root: expected {expected.hex()}, recomputed {found.hex()}")
        self.which = which
        self.expected = expected
        self.found = found


def leaf_hash(data: bytes) -> bytes:
    """MTH({d}) = SHA-256(0x00 || d): the hash of one leaf entry."""
    return sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return sha256(NODE_PREFIX + left + right).digest()


def inclusion_proof_length(index: int, size: int) -> int:
    """Number of nodes in PATH(index, D[size]), index < size: the siblings below the point where
    the paths to `index` and to the last leaf part, plus one left sibling per set bit above it."""
    inner = (index ^ (size - 1)).bit_length()
    return inner + (index >> inner).bit_count()


def _check_hash(name: str, value: bytes) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        raise ProofInputError(f"{name} must be {HASH_SIZE} bytes")


def _check_size(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TREE_SIZE:
        raise ProofInputError(f"{name} must be an integer in [0, 2**64 - 1]")


def _check_path(proof: Sequence[bytes]) -> None:
    if len(proof) > MAX_PROOF_NODES:
        raise ProofInputError(f"proof has {len(proof)} nodes; at most {MAX_PROOF_NODES} accepted")
    for position, node in enumerate(proof):
        _check_hash(f"proof node {position}", node)


def root_from_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """The root implied by an inclusion proof (RFC 9162 §2.1.3.2 steps 2-4); checks the shape
    of the question and the proof's length, not the result."""
    _check_size("size", size)
    _check_size("index", index)
    if index >= size:
        raise ProofInputError(f"leaf index {index} is not below tree size {size}")
    _check_hash("leaf hash", leaf)
    _check_path(proof)
    expected = inclusion_proof_length(index, size)
    if len(proof) != expected:
        raise ProofLengthMismatch(expected, len(proof))
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:  # RFC step 3.1; unreachable after the length check, kept as the RFC says
            raise ProofLengthMismatch(expected, len(proof))
        if fn & 1 or fn == sn:
            r = sha256(NODE_PREFIX + p + r).digest()
            if not fn & 1:
                # The right edge of a ragged tree: climb until this node becomes a right child.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(NODE_PREFIX + r + p).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # RFC step 4; as above, the length check already guarantees it
        raise ProofLengthMismatch(expected, len(proof))
    return r


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` (a leaf hash) sits at 0-based `index` of the tree of `size` leaves whose
    root is `root`. Returns None when it does; raises a ProofError subclass saying why not."""
    _check_hash("root", root)
    computed = root_from_inclusion(leaf, index, size, proof)
    if not compare_digest(computed, root):
        raise RootMismatch("tree", root, computed)


def verify_consistency(
    size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of `size2` leaves with `root2` extends the tree of `size1` leaves with
    `root1` (RFC 9162 §2.1.4.2). Returns None when it does; raises a ProofError subclass.

    Edge cases RFC 9162 leaves open are decided strictly: size1 == size2 needs an empty proof and
    equal roots; size1 == 0 needs an empty proof and root1 == EMPTY_ROOT."""
    _check_size("size1", size1)
    _check_size("size2", size2)
    if size1 > size2:
        raise ProofInputError(f"size1 {size1} is larger than size2 {size2}")
    _check_hash("root1", root1)
    _check_hash("root2", root2)
    _check_path(proof)
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofLengthMismatch(0, len(proof))
        expected1 = root2 if size1 == size2 else EMPTY_ROOT
        if not compare_digest(root1, expected1):
            raise RootMismatch("first", expected1, root1)
        return
    fr, sr = _roots_from_consistency(size1, size2, root1, proof)
    if not compare_digest(fr, root1):
        raise RootMismatch("first", root1, fr)
    if not compare_digest(sr, root2):
        raise RootMismatch("second", root2, sr)


def consistency_proof_length(size1: int, size2: int) -> int:
    """Number of nodes in PROOF(size1, D[size2]) for 0 <= size1 <= size2 (none at the ends)."""
    if size1 == 0 or size1 == size2:
        return 0
    level = (size1 & -size1).bit_length() - 1  # trailing zeros: the old root's biggest subtree
    index = (size1 - 1) >> level
    size = ((size2 - 1) >> level) + 1
    # The proof is the inclusion path of that subtree in the tree of its level, plus the
    # subtree itself unless it is the whole old tree (size1 a power of two).
    extra = 0 if index == 0 else 1
    return inclusion_proof_length(index, size) + extra


def _roots_from_consistency(
    size1: int, size2: int, root1: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    expected = consistency_proof_length(size1, size2)
    if len(proof) != expected:
        raise ProofLengthMismatch(expected, len(proof))
    path = list(proof)
    if size1 & (size1 - 1) == 0:
        path.insert(0, root1)  # RFC step 1: a power-of-two old tree is its own first node
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:  # RFC step 5.1; unreachable after the length check
            raise ProofLengthMismatch(expected, len(proof))
        if fn & 1 or fn == sn:
            fr = sha256(NODE_PREFIX + c + fr).digest()
            sr = sha256(NODE_PREFIX + c + sr).digest()
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = sha256(NODE_PREFIX + sr + c).digest()
        fn >>= 1
        sn >>= 1
    if sn != 0:  # RFC step 6; as above
        raise ProofLengthMismatch(expected, len(proof))
    return fr, sr
