"""Known answers for the head map (ledger.core.heads) from tests/vectors/heads_known_answers.json,
which the reference oracle (tests/ledger/reference_heads.py) wrote."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.core.heads import HeadMap, HeadProof, entries_for, verify_head_proof
from tests.paths import VECTORS_DIR

VECTORS = json.loads((VECTORS_DIR / "heads_known_answers.json")
                     .read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = VECTORS["cases"]


def _map(case: dict[str, Any]) -> HeadMap:
    return HeadMap(e for h in case["heads"]
                   for e in entries_for(h["asset"], h["seq"], bytes.fromhex(h["head"]), h["site"]))


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c['heads'])}-assets")
def test_root_keys_leaves_and_paths_match_the_reference(case: dict[str, Any]) -> None:
    head_map = _map(case)
    assert head_map.root.hex() == case["root"]
    assert [k.hex() for k in head_map.keys] == [e["key"] for e in case["entries"]]
    for index, expected in enumerate(case["entries"]):
        proof = head_map.proof(index)
        assert proof.entry.leaf_data().hex() == expected["leaf"]
        assert [p.hex() for p in proof.path] == expected["path"]
        verify_head_proof(HeadProof(proof.entry, index, head_map.size, tuple(
            bytes.fromhex(p) for p in expected["path"])), bytes.fromhex(case["root"]))


def test_vectors_cover_sites_and_odd_sizes() -> None:
    sizes = {len(c["entries"]) for c in CASES}
    assert 0 in sizes and any(s % 2 for s in sizes) and max(sizes) > 8
    assert any(h["site"] for c in CASES for h in c["heads"])
