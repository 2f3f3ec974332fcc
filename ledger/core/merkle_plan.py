"""Which stored Merkle nodes a proof or root needs, and how to hash them into one (pure).

Plan, fetch, compute (after transparency-dev/merkle): a log keeps the hash of every *perfect*
subtree, addressed by `Coord` (level, index) — the node over leaves
[index * 2**level, (index + 1) * 2**level). A planner here says which coordinates an inclusion
proof, a consistency proof or a root at some size needs; storage fetches exactly those; then
`assemble` hashes them into the RFC 9162 proof. At most one proof element is *ephemeral* — the
right-edge subtree of a tree whose size is not a power of two — and it is folded from the
perfect subtrees that cover it. Nothing here touches storage, so the same plans serve the
in-memory log, SQLite and the API's database.

Changing this module changes which hashes proofs carry: every change must keep
tests/vectors/merkle_*.json passing.
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import NamedTuple

from ledger.core.merkle import EMPTY_ROOT, NODE_PREFIX, ProofInputError

Coord = tuple[int, int]
"""(level, index) of a perfect subtree: level 0 holds leaf hashes."""


class ProofPlan(NamedTuple):
    """The stored nodes a proof needs, in proof order, and which run of them folds into one
    ephemeral node: `coords[fold_at:fold_at + fold_len]` become a single proof element."""

    coords: tuple[Coord, ...]
    fold_at: int = 0
    fold_len: int = 1


def perfect_cover(begin: int, end: int) -> list[Coord]:
    """The largest perfect subtrees covering leaves [begin, end), left to right."""
    coords: list[Coord] = []
    width = end - begin
    if begin and width > (begin & -begin):
        # `begin` is not aligned for the range's size: climb by its lowest set bit first.
        while begin < end and width > (begin & -begin):
            level = (begin & -begin).bit_length() - 1
            coords.append((level, begin >> level))
            begin += 1 << level
            width = end - begin
    # Now every remaining block is aligned: one per set bit of the width, largest first.
    while width > 0:
        level = width.bit_length() - 1
        coords.append((level, begin >> level))
        begin += 1 << level
        width -= 1 << level
    return coords


def fold(hashes: Sequence[bytes]) -> bytes:
    """The root over adjacent perfect subtrees given left to right (largest first), as RFC 9162
    builds it: each left subtree is hashed with the root of everything to its right."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = sha256(NODE_PREFIX + left + result).digest()
    return result


def _check_sizes(**sizes: int) -> None:
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ProofInputError(f"{name} must be a non-negative integer, got {value!r}")


def root_plan(size: int) -> ProofPlan:
    """The stored nodes whose fold is the root of the first `size` leaves (the compact range
    [0, size)); an empty plan means EMPTY_ROOT."""
    _check_sizes(size=size)
    coords = perfect_cover(0, size)
    return ProofPlan(tuple(coords), 0, len(coords))


def _subtree_path(coords: list[Coord], level: int, index: int, size: int) -> tuple[int, int]:
    """Append to `coords` the siblings proving node (level, index) under the tree of `size`
    leaves, bottom-up; return (fold_at, fold_len) of the one ephemeral sibling, if any."""
    last = (size - 1) >> level  # the right-most node on this level
    # Below `inner` levels up, the paths to `index` and to `last` share a fork node: every
    # sibling under it is perfect, and the fork's right child is the one ragged subtree.
    inner = (index ^ last).bit_length()
    coords.extend((level + up, (index >> up) ^ 1) for up in range(inner - 1))
    fold_at, fold_len = 0, 1
    if inner:
        fork_child = inner - 1
        begin = ((index >> fork_child) + 1) << (level + fork_child)
        cover = perfect_cover(begin, size)
        fold_at, fold_len = len(coords), len(cover)
        coords.extend(cover)
    # Above the fork the path runs along the right edge: only left siblings exist.
    coords.extend(
        (level + up, (index >> up) - 1)
        for up in range(inner, index.bit_length())
        if (index >> up) & 1
    )
    return fold_at, fold_len


def inclusion_plan(index: int, size: int) -> ProofPlan:
    """The stored nodes making up PATH(index, D[size]) of RFC 9162 §2.1.3.1."""
    _check_sizes(index=index, size=size)
    if index >= size:
        raise ProofInputError(f"leaf index {index} is not below tree size {size}")
    coords: list[Coord] = []
    fold_at, fold_len = _subtree_path(coords, 0, index, size)
    return ProofPlan(tuple(coords), fold_at, fold_len)


def consistency_plan(size1: int, size2: int) -> ProofPlan:
    """The stored nodes making up PROOF(size1, D[size2]) of RFC 9162 §2.1.4.1.

    The proof is the inclusion path of the biggest perfect subtree ending at size1, preceded by
    that subtree itself unless it is the whole old tree (size1 a power of two)."""
    _check_sizes(size1=size1, size2=size2)
    if size1 > size2:
        raise ProofInputError(f"size1 {size1} is larger than size2 {size2}")
    if size1 == 0 or size1 == size2:
        return ProofPlan(())
    level = (size1 & -size1).bit_length() - 1
    index = (size1 - 1) >> level
    coords: list[Coord] = [] if index == 0 else [(level, index)]
    fold_at, fold_len = _subtree_path(coords, level, index, size2)
    return ProofPlan(tuple(coords), fold_at, fold_len)


def assemble(plan: ProofPlan, hashes: Sequence[bytes]) -> list[bytes]:
    """The proof nodes for `plan`, given the stored hashes of `plan.coords` in the same order."""
    if len(hashes) != len(plan.coords):
        raise ValueError(f"plan needs {len(plan.coords)} hashes, got {len(hashes)}")
    if plan.fold_len == 1:
        return list(hashes)
    start, stop = plan.fold_at, plan.fold_at + plan.fold_len
    return [*hashes[:start], fold(hashes[start:stop]), *hashes[stop:]]
