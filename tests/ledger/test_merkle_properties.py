"""Hypothesis properties of the Merkle log, against the reference tree and pymerkle 7.

One log of MAX_LEAVES leaves serves every example: roots and proofs at past sizes come from
stored nodes, so the same log answers for every size up to MAX_LEAVES.

On tampered sizes: RFC 9162 proofs do not carry the tree size — a signed tree head or an
on-chain anchor binds size to root. So a changed size is caught exactly when it changes how the
proof is hashed; when it does not (e.g. leaf 0 of 5 vs of 7 leaves), no verifier can tell. The
properties assert precisely that: accepted if and only if the reference recursion hashes the
tampered question the same way.
"""

from __future__ import annotations

import hashlib

import pymerkle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.ledger.reference_merkle as ref
from ledger.core.errors import ProofError
from ledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

MAX_LEAVES = 300
ENTRIES = [hashlib.sha256(b"property %d" % i).digest()[: i % 50] for i in range(MAX_LEAVES)]
PROPERTY = settings(max_examples=60, deadline=None)


@pytest.fixture(scope="module")
def log() -> MerkleLog:
    merkle_log = MerkleLog(MemoryNodeStore())
    merkle_log.append_many(ENTRIES)
    return merkle_log


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn, smallest: int = 0) -> tuple[int, int]:
    size2 = draw(st.integers(max(1, smallest), MAX_LEAVES))
    return draw(st.integers(smallest, size2)), size2


def _flip(value: bytes, bit: int) -> bytes:
    raw = bytearray(value)
    raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    return bytes(raw)


def _accepts(check: object, *args: object) -> bool:
    try:
        check(*args)  # type: ignore[operator]
    except ProofError:
        return False
    return True


@PROPERTY
@given(leaf_in_tree())
def test_any_inclusion_verifies_and_matches_reference(log: MerkleLog, q: tuple[int, int]) -> None:
    index, size = q
    proof = log.inclusion_proof(index, size)
    assert proof == ref.path(index, ENTRIES[:size])
    verify_inclusion(leaf_hash(ENTRIES[index]), index, size, proof, log.root(size))


@PROPERTY
@given(two_sizes())
def test_any_consistency_verifies_and_matches_reference(
    log: MerkleLog, sizes: tuple[int, int]
) -> None:
    size1, size2 = sizes
    proof = log.consistency_proof(size1, size2)
    if 0 < size1 < size2:
        assert proof == ref.proof(size1, ENTRIES[:size2])
    else:
        assert proof == []
    verify_consistency(size1, size2, log.root(size1), log.root(size2), proof)


@PROPERTY
@given(leaf_in_tree(), st.sampled_from(["leaf", "proof", "root", "index", "size"]),
       st.integers(0, 255), st.integers(0, 63))
def test_any_single_bit_change_to_an_inclusion_claim_fails(
    log: MerkleLog, q: tuple[int, int], target: str, bit: int, node: int
) -> None:
    index, size = q
    leaf, root, proof = log.leaf_hash(index), log.root(size), log.inclusion_proof(index, size)
    if target == "leaf":
        leaf = _flip(leaf, bit)
    elif target == "root":
        root = _flip(root, bit)
    elif target == "proof":
        if not proof:
            proof = [leaf]  # no node to flip: an extra node is the smallest change
        else:
            proof[node % len(proof)] = _flip(proof[node % len(proof)], bit)
    else:
        index2, size2 = (index ^ 1 << (bit % 64), size) if target == "index" else (
            index, size ^ 1 << (bit % 64))
        same = index2 < size2 and ref.path_sides(index2, size2) == ref.path_sides(index, size)
        assert _accepts(verify_inclusion, leaf, index2, size2, proof, root) == same
        return
    assert not _accepts(verify_inclusion, leaf, index, size, proof, root)


@PROPERTY
@given(two_sizes(smallest=1), st.sampled_from(["root1", "root2", "proof", "size1", "size2"]),
       st.integers(0, 255), st.integers(0, 63))
def test_any_single_bit_change_to_a_consistency_claim_fails(
    log: MerkleLog, sizes: tuple[int, int], target: str, bit: int, node: int
) -> None:
    size1, size2 = sizes
    root1, root2 = log.root(size1), log.root(size2)
    proof = log.consistency_proof(size1, size2)
    if target == "root1":
        root1 = _flip(root1, bit)
    elif target == "root2":
        root2 = _flip(root2, bit)
    elif target == "proof":
        if not proof:
            proof = [root1]
        else:
            proof[node % len(proof)] = _flip(proof[node % len(proof)], bit)
    else:
        m, n = (size1 ^ 1 << (bit % 64), size2) if target == "size1" else (
            size1, size2 ^ 1 << (bit % 64))
        same = 0 < m < n and size1 < size2 and ref.proof_shape(m, n) == ref.proof_shape(
            size1, size2)
        assert _accepts(verify_consistency, m, n, root1, root2, proof) == same
        return
    assert not _accepts(verify_consistency, size1, size2, root1, root2, proof)


@pytest.fixture(scope="module")
def oracle() -> pymerkle.InmemoryTree:
    tree = pymerkle.InmemoryTree()
    for entry in ENTRIES:
        tree.append_entry(entry)
    return tree


@PROPERTY
@given(leaf_in_tree(), st.integers(1, MAX_LEAVES))
def test_pymerkle_agrees_on_roots_and_proofs(
    log: MerkleLog, oracle: pymerkle.InmemoryTree, q: tuple[int, int], other: int
) -> None:
    index, size = q
    assert log.root(size) == oracle.get_root(size)
    # pymerkle counts leaves from 1 and puts the leaf hash first in its path.
    theirs = oracle.prove_inclusion(index + 1, size)
    assert [leaf_hash(ENTRIES[index]), *log.inclusion_proof(index, size)] == theirs.path
    size1, size2 = sorted((size, other))
    if size1 < size2:
        # pymerkle's consistency proof is its own format (a fold with a prior-state mask), not
        # RFC 9162's node list; so each side's proof must verify against the other's roots.
        theirs = oracle.prove_consistency(size1, size2)
        pymerkle.verify_consistency(log.root(size1), log.root(size2), theirs)
        ours = log.consistency_proof(size1, size2)
        verify_consistency(size1, size2, oracle.get_root(size1), oracle.get_root(size2), ours)
