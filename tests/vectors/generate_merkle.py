"""Regenerate tests/vectors/merkle_*.json from the reference tree (run by hand, review the diff).

    .venv/bin/python tests/vectors/generate_merkle.py

Everything comes from tests/ledger/reference_merkle.py (RFC 9162 §2.1 transcribed), never from
ledger.core, so the corpus is an independent oracle. Each valid case carries named tampered
variants, written as the fields they override; every variant must fail verification.
The known answers are the published RFC 6962 / Certificate Transparency figures, checked here
against the reference before they are written.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "ledger"))

import reference_merkle as ref  # noqa: E402  (lives beside the tests that use it)

# The 8-leaf test tree of Certificate Transparency's merkle_tree_test (RFC 6962 era) and its
# published roots for sizes 1..8.
CT_LEAVES = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]
CT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
EMPTY_ROOT = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
EMPTY_LEAF = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"

# Every size up to SMALL exhaustively, then sizes around powers of two with a few indices.
SMALL = 16
LARGE_SIZES = [31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 255, 1000]


def entry(i: int) -> bytes:
    """Leaf entry i of the corpus tree: varied lengths, deterministic."""
    return hashlib.sha256(b"kitledger merkle vector %d" % i).digest()[: 1 + i % 40]


ENTRIES = [entry(i) for i in range(max(LARGE_SIZES))]


def flip(value: str, bit: int) -> str:
    raw = bytearray(bytes.fromhex(value))
    raw[(bit // 8) % len(raw)] ^= 1 << (bit % 8)
    return raw.hex()


def known_answers() -> dict[str, Any]:
    leaves = [bytes.fromhex(h) for h in CT_LEAVES]
    roots = [ref.mth(leaves[:n]).hex() for n in range(1, 9)]
    assert roots == CT_ROOTS, "reference disagrees with the published CT roots"
    assert ref.mth([]).hex() == EMPTY_ROOT
    assert ref.mth([b""]).hex() == EMPTY_LEAF
    return {
        "empty_root": EMPTY_ROOT,
        "empty_leaf_hash": EMPTY_LEAF,
        "ct_leaves": CT_LEAVES,
        "ct_roots": [{"size": n, "root": CT_ROOTS[n - 1]} for n in range(1, 9)],
    }


def _questions(pairs_for_size: Any) -> list[tuple[int, int]]:
    out = [(a, n) for n in range(1, SMALL + 1) for a in pairs_for_size(n, True)]
    return out + [(a, n) for n in LARGE_SIZES for a in pairs_for_size(n, False)]


def inclusion_case(index: int, size: int) -> dict[str, Any]:
    leaves = ENTRIES[:size]
    path = [h.hex() for h in ref.path(index, leaves)]
    root = ref.mth(leaves).hex()
    leaf = hashlib.sha256(b"\x00" + leaves[index]).hexdigest()
    wrong = hashlib.sha256(b"\x00" + leaves[index] + b"!").hexdigest()
    tampered: list[dict[str, Any]] = [
        {"name": "index_minus_1", "index": index - 1},
        {"name": "index_plus_1", "index": index + 1},
        {"name": "size_times_2", "size": 2 * size},
        {"name": "trailing_garbage", "path": [*path, leaf]},
        {"name": "wrong_leaf", "leaf_hash": wrong},
        {"name": "root_bit_flip", "root": flip(root, index + size)},
    ]
    if path:
        bit = (index * 31 + size) % 256
        tampered += [
            {"name": "proof_bit_flip", "path": [flip(path[0], bit), *path[1:]]},
            {"name": "truncated_proof", "path": path[:-1]},
        ]
    return {"index": index, "size": size, "leaf_hash": leaf, "root": root, "path": path,
            "tampered": tampered}


def consistency_case(size1: int, size2: int) -> dict[str, Any]:
    root1, root2 = ref.mth(ENTRIES[:size1]).hex(), ref.mth(ENTRIES[:size2]).hex()
    path = [] if size1 in (0, size2) else [h.hex() for h in ref.proof(size1, ENTRIES[:size2])]
    tampered: list[dict[str, Any]] = [
        {"name": "size1_plus_1", "size1": size1 + 1},
        {"name": "trailing_garbage", "path": [*path, root1]},
        {"name": "root1_bit_flip", "root1": flip(root1, size1 + size2)},
    ]
    if size1 > 0:  # the empty tree is a prefix of every tree: nothing about size2 can fail
        tampered += [
            {"name": "size2_times_2", "size2": 2 * size2},
            {"name": "root2_bit_flip", "root2": flip(root2, size1 * size2 + 1)},
        ]
    if size1 != size2:
        tampered.append({"name": "swapped_roots", "root1": root2, "root2": root1})
    if size1 > 0:
        tampered.append({"name": "size1_minus_1", "size1": size1 - 1})
    if path:
        bit = (size1 * 17 + size2) % 256
        tampered += [
            {"name": "proof_bit_flip", "path": [*path[:-1], flip(path[-1], bit)]},
            {"name": "truncated_proof", "path": path[1:]},
        ]
    return {"size1": size1, "size2": size2, "root1": root1, "root2": root2, "path": path,
            "tampered": tampered}


def _indices(n: int, every: bool) -> list[int]:
    return list(range(n)) if every else sorted({0, 1, n // 2, n - 2, n - 1})


def _old_sizes(n: int, every: bool) -> list[int]:
    return list(range(n + 1)) if every else sorted({0, 1, 2, n // 2, n - 1, n})


def build() -> dict[str, dict[str, Any]]:
    version = {"format": "kitledger-merkle-vectors", "version": 1, "hash": "sha256",
               "tree": "RFC 9162 section 2.1", "index_base": 0}
    inclusion = [inclusion_case(i, n) for i, n in _questions(_indices)]
    consistency = [consistency_case(m, n) for m, n in _questions(_old_sizes)]
    return {
        "merkle_known_answers.json": {**version, **known_answers()},
        "merkle_inclusion.json": {**version, "leaf_entry": "sha256('kitledger merkle vector '"
                                  " + decimal i)[:1 + i % 40]", "cases": inclusion},
        "merkle_consistency.json": {**version, "cases": consistency},
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name, document in build().items():
        (HERE / name).write_text(render(document), encoding="utf-8")
        print(f"wrote {name}")
