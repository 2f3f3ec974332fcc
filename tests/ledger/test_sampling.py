"""Sampled inventories' arithmetic (`ledger.core.sampling`) and the verifier's hold on an
`inventory-taken` record's figures (`ledger.verify.inventories`): sizes against published
tables, a draw that depends only on the seed and the set, intervals that cover, and every
edited figure caught."""

from __future__ import annotations

import random
from typing import Any

import pytest

from ledger.core.errors import SchemaError
from ledger.core.records import INVENTORY_TAKEN, SITE_CUSTODIAN, RegistryChains
from ledger.core.sampling import (
    SamplingError,
    draw,
    list_hash,
    reconciliation_hash,
    sample_size,
    share_interval,
)
from ledger.verify.inventories import inventory_fault

SEED = bytes(range(32))
COMMITMENT = "ab" * 32
TIME = "2026-12-05T10:00:00.000Z"


@pytest.mark.parametrize(("population", "confidence", "margin", "size"), [
    (10_000, 9_500, 300, 965),     # 95 % +- 3 %: Cochran's 1,067 with the FPC
    (1_000_000, 9_500, 300, 1_066),
    (500, 9_500, 500, 218),        # Krejcie & Morgan's table gives 217 (chi-square, not z)
    (100, 9_500, 300, 92),
    (20, 9_900, 100, 20),          # never more than there are
    (0, 9_500, 300, 0),
    (10_000, 9_000, 1_000, 68),
])
def test_sample_sizes(population: int, confidence: int, margin: int, size: int) -> None:
    assert sample_size(population, confidence, margin) == size


@pytest.mark.parametrize(("confidence", "margin"), [(4_999, 300), (9_991, 300), (9_500, 9),
                                                     (9_500, 5_001), (0, 300)])
def test_out_of_range_confidence_or_margin_is_refused(confidence: int, margin: int) -> None:
    with pytest.raises(SamplingError):
        sample_size(1_000, confidence, margin)


def test_the_draw_depends_on_the_seed_and_the_set_alone() -> None:
    items = [f"R-{i}" for i in range(1_000)]
    first = draw(SEED, items, 50)
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    assert draw(SEED, shuffled + items[:10], 50) == first  # order and repeats do not matter
    assert len(first) == len(set(first)) == 50 and first == sorted(first)
    assert draw(bytes(32), items, 50) != first
    assert draw(SEED, items, 1_000) == sorted(items)
    with pytest.raises(SamplingError):
        draw(SEED, items, 1_001)
    with pytest.raises(SamplingError):
        draw(SEED[:31], items, 5)


def test_intervals() -> None:
    assert share_interval(90, 100, 100, 0) == share_interval(90, 100, 100, 9_500)
    assert (share_interval(90, 100, 100, 0).low_bp, share_interval(90, 100, 100, 0).high_bp) == (
        9_000, 9_000)
    wide = share_interval(960, 965, 10_000, 9_500)
    assert wide.low_bp < 9_948 < wide.high_bp <= 10_000
    assert share_interval(0, 0, 10, 9_500) == share_interval(0, 0, 0, 0)  # nothing read
    with pytest.raises(SamplingError):
        share_interval(5, 4, 10, 9_500)


def test_the_interval_covers_the_true_share_about_as_often_as_promised() -> None:
    """Draw many samples from a store with 95 % present: the 95 % interval holds the truth in
    at least 93 % of them."""
    rng = random.Random(11)
    present = [True] * 1_900 + [False] * 100
    covered = 0
    for _ in range(400):
        sample = rng.sample(present, 300)
        interval = share_interval(sum(sample), 300, 2_000, 9_500)
        covered += interval.low_bp <= 9_500 <= interval.high_bp
    assert covered >= 0.93 * 400


def test_list_commitments_name_their_lists() -> None:
    lists = {"expected": ["a", "b"], "found": ["a"], "missing": ["b"], "unexpected": [],
             "unknown": []}
    assert reconciliation_hash(lists) != reconciliation_hash({**lists, "found": [],
                                                              "missing": ["a", "b"]})
    assert list_hash(["b", "a"]) == list_hash(["a", "b"]) != list_hash(["a"])


def _record(**changes: Any) -> Any:
    population = [f"R-{i}" for i in range(400)]
    sample = draw(SEED, population, sample_size(400, 9_500, 500))
    fields: dict[str, Any] = {
        "site": "north-store", "reader": "hh-1", "by": COMMITMENT,
        "started": "2026-12-05T09:00:00.000Z", "ended": "2026-12-05T09:40:00.000Z",
        "mode": "sampled", "population": 400, "population_hash": list_hash(population).hex(),
        "sample": len(sample), "seed": SEED.hex(), "confidence_bp": 9_500, "margin_bp": 500,
        "expected": len(sample), "found": len(sample) - 3, "missing": 3, "unexpected": 1,
        "unknown": 2, "lists": COMMITMENT}
    interval = share_interval(len(sample) - 3, len(sample), 400, 9_500)
    fields |= {"share_low_bp": interval.low_bp, "share_high_bp": interval.high_bp}
    fields |= changes
    return RegistryChains("north").append(INVENTORY_TAKEN, TIME, **fields)


def test_a_consistent_record_passes_and_round_trips() -> None:
    record = _record()
    assert inventory_fault(record) is None
    assert record.to_record()["type"] == INVENTORY_TAKEN
    full = _record(mode="full", seed=None, confidence_bp=0, margin_bp=0, sample=400,
                   expected=400, found=397, share_low_bp=9_925, share_high_bp=9_925)
    assert inventory_fault(full) is None


@pytest.mark.parametrize(("changes", "phrase"), [
    ({"found": 180}, "found + missing"),
    ({"missing": 0}, "found + missing"),
    ({"sample": 100, "expected": 100}, "expected a seed and a sample of"),
    ({"seed": None}, "expected a seed"),
    ({"share_high_bp": 10_000}, "expected the share present"),
    ({"mode": "full"}, "expected a full count to look for every item"),
    ({"started": "2026-12-05T09:50:00.000Z"}, "end after it started"),
    ({"ended": "2026-12-05T10:00:00.001Z"}, "before it was logged"),
    ({"confidence_bp": 9_995}, "confidence must be"),
])
def test_edited_figures_fail(changes: dict[str, Any], phrase: str) -> None:
    reason = inventory_fault(_record(**changes))
    assert reason is not None and phrase in reason, reason


@pytest.mark.parametrize("changes", [
    {"mode": "partial"}, {"started": "yesterday"}, {"found": -1}, {"found": True},
    {"seed": "00"}, {"by": "alice"}, {"site": "north store"}, {"unknown": "2"},
])
def test_malformed_records_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        _record(**changes)


def test_a_custodian_record_names_a_commitment_or_nobody() -> None:
    chains = RegistryChains("north")
    assert chains.append(SITE_CUSTODIAN, TIME, site="north-store", custodian=None)
    assert chains.append(SITE_CUSTODIAN, TIME, site="north-store", custodian=COMMITMENT).seq == 1
    with pytest.raises(SchemaError):
        chains.append(SITE_CUSTODIAN, TIME, site="north-store", custodian="alice")
