"""Known answers and the JSON vector corpus against ledger.core.merkle and ledger.merkle_log."""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

import pytest

from ledger.core.errors import ProofError
from ledger.core.merkle import (
    EMPTY_ROOT,
    leaf_hash,
    node_hash,
    verify_consistency,
    verify_inclusion,
)
from ledger.core.merkle_plan import fold
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore
from tests.paths import VECTORS_DIR

VECTORS = VECTORS_DIR


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((VECTORS / name).read_text(encoding="utf-8"))
    return document


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_merkle", VECTORS / "generate_merkle.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


KNOWN = _load("merkle_known_answers.json")
INCLUSION = _load("merkle_inclusion.json")["cases"]
CONSISTENCY = _load("merkle_consistency.json")["cases"]
GENERATOR = _generator()


@pytest.fixture(scope="module")
def corpus_log() -> MerkleLog:
    log = MerkleLog(MemoryNodeStore())
    log.append_many(GENERATOR.ENTRIES)
    return log


def test_committed_vectors_match_the_generator() -> None:
    for name, document in GENERATOR.build().items():
        committed = (VECTORS / name).read_text(encoding="utf-8")
        assert committed == GENERATOR.render(document), f"{name} is stale: rerun the generator"


def test_empty_tree_and_empty_leaf_known_answers() -> None:
    assert EMPTY_ROOT.hex() == KNOWN["empty_root"]
    assert EMPTY_ROOT.hex().startswith("e3b0c442")
    assert leaf_hash(b"").hex() == KNOWN["empty_leaf_hash"]
    assert leaf_hash(b"").hex().startswith("6e340b9c")
    assert MerkleLog(MemoryNodeStore()).root() == EMPTY_ROOT


def test_ct_test_tree_roots_at_every_size() -> None:
    log = MerkleLog(MemoryNodeStore())
    for leaf_hex, expected in zip(KNOWN["ct_leaves"], KNOWN["ct_roots"], strict=True):
        log.append(bytes.fromhex(leaf_hex))
        assert log.root().hex() == expected["root"], f"size {expected['size']}"
    for expected in KNOWN["ct_roots"]:  # and again from stored nodes, not the live frontier
        assert log.root(expected["size"]).hex() == expected["root"]


def test_two_leaf_root_is_node_hash_of_leaf_hashes() -> None:
    a, b = bytes.fromhex(KNOWN["ct_leaves"][0]), bytes.fromhex(KNOWN["ct_leaves"][1])
    assert node_hash(leaf_hash(a), leaf_hash(b)).hex() == KNOWN["ct_roots"][1]["root"]
    assert fold([leaf_hash(a), leaf_hash(b)]).hex() == KNOWN["ct_roots"][1]["root"]


def _inclusion_args(case: dict[str, Any], override: dict[str, Any]) -> tuple[Any, ...]:
    merged = {**case, **override}
    return (
        bytes.fromhex(merged["leaf_hash"]),
        merged["index"],
        merged["size"],
        [bytes.fromhex(h) for h in merged["path"]],
        bytes.fromhex(merged["root"]),
    )


def _consistency_args(case: dict[str, Any], override: dict[str, Any]) -> tuple[Any, ...]:
    merged = {**case, **override}
    return (
        merged["size1"],
        merged["size2"],
        bytes.fromhex(merged["root1"]),
        bytes.fromhex(merged["root2"]),
        [bytes.fromhex(h) for h in merged["path"]],
    )


@pytest.mark.parametrize("case", INCLUSION, ids=lambda c: f"i{c['index']}-n{c['size']}")
def test_inclusion_vector(case: dict[str, Any], corpus_log: MerkleLog) -> None:
    verify_inclusion(*_inclusion_args(case, {}))
    index, size = case["index"], case["size"]
    assert [h.hex() for h in corpus_log.inclusion_proof(index, size)] == case["path"]
    assert corpus_log.root(size).hex() == case["root"]
    assert corpus_log.leaf_hash(index).hex() == case["leaf_hash"]
    for variant in case["tampered"]:
        override = {k: v for k, v in variant.items() if k != "name"}
        with pytest.raises(ProofError):
            verify_inclusion(*_inclusion_args(case, override))


@pytest.mark.parametrize("case", CONSISTENCY, ids=lambda c: f"m{c['size1']}-n{c['size2']}")
def test_consistency_vector(case: dict[str, Any], corpus_log: MerkleLog) -> None:
    verify_consistency(*_consistency_args(case, {}))
    size1, size2 = case["size1"], case["size2"]
    assert [h.hex() for h in corpus_log.consistency_proof(size1, size2)] == case["path"]
    for variant in case["tampered"]:
        override = {k: v for k, v in variant.items() if k != "name"}
        with pytest.raises(ProofError):
            verify_consistency(*_consistency_args(case, override))


def test_every_tamper_kind_is_exercised() -> None:
    inclusion_kinds = {v["name"] for case in INCLUSION for v in case["tampered"]}
    consistency_kinds = {v["name"] for case in CONSISTENCY for v in case["tampered"]}
    assert {"proof_bit_flip", "index_minus_1", "index_plus_1", "size_times_2",
            "truncated_proof", "trailing_garbage", "wrong_leaf"} <= inclusion_kinds
    assert {"proof_bit_flip", "size1_minus_1", "size1_plus_1", "size2_times_2",
            "truncated_proof", "trailing_garbage", "swapped_roots"} <= consistency_kinds
