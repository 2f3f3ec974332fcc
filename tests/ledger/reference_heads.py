"""A tiny, obviously correct head map: the test oracle for ledger.core.heads.

The leaf encoding is transcribed from docs/audit-bundle.md ("The head map"), the tree is
tests/ledger/reference_merkle.py's RFC 9162 recursion, and the commitment is the documented
domain hash. It shares no code with ledger.core.
"""

from __future__ import annotations

import hashlib

import tests.ledger.reference_merkle as ref


def key(asset: str, site: str | None) -> bytes:
    if site is None:
        return b"a\x00" + asset.encode()
    return b"s\x00" + site.encode() + b"\x00" + asset.encode()


def leaf(asset: str, site: str | None, seq: int, head: bytes) -> bytes:
    k = key(asset, site)
    return (b"kitledger/v1/heads-leaf\x00" + len(k).to_bytes(2, "big") + k
            + seq.to_bytes(8, "big") + head)


def entries(heads: dict[str, tuple[int, bytes, str | None]]) -> list[tuple[bytes, bytes]]:
    """(key, leaf data) of every entry, sorted by key: one per asset, one more per located one."""
    out = []
    for asset, (seq, head, site) in heads.items():
        out.append((key(asset, None), leaf(asset, None, seq, head)))
        if site is not None:
            out.append((key(asset, site), leaf(asset, site, seq, head)))
    return sorted(out)


def root(heads: dict[str, tuple[int, bytes, str | None]]) -> bytes:
    leaves = [data for _k, data in entries(heads)]
    return hashlib.sha256(b"kitledger/v1/heads-root\x00" + len(leaves).to_bytes(8, "big")
                          + ref.mth(leaves)).digest()


def path(index: int, heads: dict[str, tuple[int, bytes, str | None]]) -> list[bytes]:
    return ref.path(index, [data for _k, data in entries(heads)])
