"""A tiny, obviously correct RFC 9162 §2.1 Merkle tree: the test oracle for ledger.core.merkle.

Each function transcribes the RFC's recursive definition word for word, on the full list of
leaf entries. It is slow (it rehashes everything) and is used only to generate and check
vectors; it shares no code with the implementation under test.
"""

# ruff: noqa: RUF005  (list "+" mirrors the RFC's ":" concatenation, on purpose)
from __future__ import annotations

import hashlib


def _hash(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 9162 §2.1.1."""
    n = len(entries)
    if n == 0:
        return _hash(b"")
    if n == 1:
        return _hash(b"\x00" + entries[0])
    k = _k(n)
    return _hash(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 §2.1.3.1: the inclusion proof for 0-based leaf m."""
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path(m, entries[:k]) + [mth(entries[k:])]
    return path(m - k, entries[k:]) + [mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 §2.1.4.1, for 0 < m < n."""
    return _subproof(m, entries, True)


def _subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = _k(n)
    if m <= k:
        return _subproof(m, entries[:k], b) + [mth(entries[k:])]
    return _subproof(m - k, entries[k:], False) + [mth(entries[:k])]


def path_sides(m: int, n: int) -> list[str]:
    """For PATH(m, D[n]): which side each proof node sits on ("L" or "R"), from the same
    recursion. Two (index, size) questions with equal sides hash a proof identically."""
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return path_sides(m, k) + ["R"]
    return path_sides(m - k, n - k) + ["L"]


def proof_shape(m: int, n: int, b: bool = True) -> list[str]:
    """For PROOF(m, D[n]): the role of each node ("seed", "R" right sibling outside the old
    tree, "L" left sibling inside it). Equal shapes hash a proof identically."""
    if m == n:
        return [] if b else ["seed"]
    k = _k(n)
    if m <= k:
        return proof_shape(m, k, b) + ["R"]
    return proof_shape(m - k, n - k, False) + ["L"]
