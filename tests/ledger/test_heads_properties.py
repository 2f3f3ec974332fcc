"""Hypothesis properties of the head map: roots agree with the reference oracle; every asset's
presence and every other key's absence are proven; a site's run, and a case's, is exactly its
assets; and any changed entry, index, size, path or missing neighbour is refused."""

from __future__ import annotations

import hashlib
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tests.ledger.reference_heads as ref
from ledger.core.heads import (
    HeadEntry,
    HeadMap,
    HeadsError,
    asset_key,
    case_prefix,
    entries_between,
    entries_for,
    site_prefix,
)

PROPERTY = settings(max_examples=60, deadline=None)
ASSETS = st.text(alphabet="abcdz019:.-", min_size=1, max_size=6)
SITES = st.sampled_from([None, "s1", "s2", "s10"])
HEADS = st.dictionaries(ASSETS, st.tuples(st.integers(0, 9), SITES), max_size=24)


def _build(heads: dict[str, tuple[int, str | None]]) -> tuple[HeadMap, dict[str, tuple[
        int, bytes, str | None]]]:
    full = {a: (seq, hashlib.sha256(a.encode()).digest(), site)
            for a, (seq, site) in heads.items()}
    return HeadMap(e for a, (s, h, site) in full.items()
                   for e in entries_for(a, s, h, site)), full


@PROPERTY
@given(HEADS)
def test_root_matches_the_reference(heads: dict[str, tuple[int, str | None]]) -> None:
    head_map, full = _build(heads)
    assert head_map.root == ref.root(full)


@PROPERTY
@given(HEADS, ASSETS)
def test_presence_and_absence_are_proven(heads: dict[str, tuple[int, str | None]],
                                         probe: str) -> None:
    head_map, full = _build(heads)
    for asset in [*full, probe]:
        key = asset_key(asset)
        found = entries_between(key, key, head_map.proofs_for_asset(asset), head_map.root)
        if asset in full:
            assert [(e.asset, e.seq, e.head) for e in found] == [(asset, *full[asset][:2])]
        else:
            assert found == []


@PROPERTY
@given(HEADS, st.sampled_from(["s1", "s2", "s10", "s3"]))
def test_a_site_run_holds_exactly_its_assets(heads: dict[str, tuple[int, str | None]],
                                             site: str) -> None:
    head_map, full = _build(heads)
    prefix = site_prefix(site)
    found = entries_between(prefix, prefix + b"\xff", head_map.proofs_for_site(site),
                            head_map.root)
    assert sorted(e.asset for e in found) == sorted(a for a, v in full.items() if v[2] == site)


@PROPERTY
@given(HEADS.filter(lambda h: len(h) >= 2), st.data())
def test_dropping_or_changing_a_proof_is_refused(heads: dict[str, tuple[int, str | None]],
                                                 data: st.DataObject) -> None:
    head_map, full = _build(heads)
    asset = data.draw(st.sampled_from(sorted(full)))
    key = asset_key(asset)
    proofs = head_map.proofs_for_asset(asset)
    position = data.draw(st.integers(0, len(proofs) - 1))
    target = proofs[position]
    tampered = [
        proofs[:position] + proofs[position + 1:],
        [*proofs[:position], replace(target, entry=replace(target.entry, seq=target.entry.seq + 1)),
         *proofs[position + 1:]],
        [*proofs[:position], replace(target, index=target.index + 1), *proofs[position + 1:]],
        [*proofs[:position], replace(target, map_size=target.map_size + 1),
         *proofs[position + 1:]],
        [*proofs[:position], replace(target, path=(*target.path[::-1], bytes(32))),
         *proofs[position + 1:]],
    ]
    for forged in tampered:
        try:
            found = entries_between(key, key, forged, head_map.root)
        except HeadsError:
            continue
        # Only dropping a pure bracket can still verify, and then never as "absent".
        assert [e.asset for e in found] == [asset]


def test_absence_of_a_present_asset_cannot_be_shown() -> None:
    head_map, _full = _build({"b": (0, None), "d": (1, "s1"), "f": (2, None)})
    # The neighbours of "d" are adjacent only with "d" between them.
    left, middle, right = head_map.proofs_for_asset("d")
    with pytest.raises(HeadsError):
        entries_between(asset_key("d"), asset_key("d"), [left, right], head_map.root)
    assert [e.asset for e in entries_between(
        asset_key("d"), asset_key("d"), [left, middle, right], head_map.root)] == ["d"]


def test_an_empty_map_proves_every_key_absent_with_no_proofs() -> None:
    head_map, _full = _build({})
    assert entries_between(asset_key("x"), asset_key("x"), [], head_map.root) == []
    other, _ = _build({"x": (0, None)})
    with pytest.raises(HeadsError):
        entries_between(asset_key("x"), asset_key("x"), [], other.root)


def test_a_proof_from_another_map_is_refused() -> None:
    head_map, _ = _build({"a": (0, None), "b": (1, None)})
    other, _ = _build({"a": (0, None), "b": (2, None)})
    with pytest.raises(HeadsError):
        entries_between(asset_key("b"), asset_key("b"), head_map.proofs_for_asset("b"),
                        other.root)


def test_entries_refuse_bad_ids_and_duplicate_keys() -> None:
    with pytest.raises(HeadsError):
        entries_for("has space", 0, bytes(32), None)
    with pytest.raises(HeadsError):
        HeadMap([*entries_for("a", 0, bytes(32), None), *entries_for("a", 1, bytes(32), None)])


def _case_map() -> HeadMap:
    entries = [e for asset in ("a", "b", "c") for e in entries_for(asset, 1, bytes(32), None)]
    entries += [HeadEntry("a", None, 2, bytes(32), case="24-1"),
                HeadEntry("b", None, 2, bytes(32), case="24-1"),
                HeadEntry("c", None, 2, bytes(32), case="24-10")]
    return HeadMap(entries)


def test_a_case_run_holds_exactly_its_exhibits() -> None:
    head_map = _case_map()
    assert head_map.assets_in_case("24-1") == ["a", "b"]
    assert head_map.assets_in_case("24-10") == ["c"] and head_map.assets_in_case("24") == []
    prefix = case_prefix("24-1")
    run = head_map.proofs_for_case("24-1")
    assert [e.asset for e in entries_between(prefix, prefix + b"\xff", run, head_map.root)] == [
        "a", "b"]
    with pytest.raises(HeadsError):  # an exhibit's entry held back from the run
        entries_between(prefix, prefix + b"\xff", [run[0], *run[2:]], head_map.root)
    same = HeadMap.from_heads([(a, 1, bytes(32), None) for a in "abc"],
                              cases=[("24-1", "a", 2, bytes(32)), ("24-1", "b", 2, bytes(32)),
                                     ("24-10", "c", 2, bytes(32))])
    assert same.root == head_map.root


@pytest.mark.parametrize("case", ["", "24-1\x00", "24\n1", "é", "x" * 201, 7])
def test_case_entries_refuse_bad_references(case: object) -> None:
    with pytest.raises(HeadsError):
        HeadEntry("a", None, 0, bytes(32), case=case)  # type: ignore[arg-type]
    with pytest.raises(HeadsError):
        HeadMap.from_heads([], cases=[(case, "a", 0, bytes(32))])  # type: ignore[list-item]


def test_a_case_entry_names_no_site_or_subject() -> None:
    with pytest.raises(HeadsError):
        HeadEntry("a", "s1", 0, bytes(32), case="24-1")
    with pytest.raises(HeadsError):
        HeadEntry("a", None, 0, bytes(32), "asset", "24-1")


def test_case_keys_are_as_documented() -> None:
    """The case entry's key, `c` NUL case NUL asset, and its leaf, rebuilt from the documented
    encoding with the reference tree (no code shared with ledger.core), give the same root."""
    import tests.ledger.reference_merkle as merkle

    head = hashlib.sha256(b"reference record").digest()
    asset_head = hashlib.sha256(b"event").digest()

    def leaf(key: bytes, seq: int, value: bytes) -> bytes:
        return (b"kitledger/v1/heads-leaf\x00" + len(key).to_bytes(2, "big") + key
                + seq.to_bytes(8, "big") + value)

    leaves = sorted([(b"a\x00JD-1", leaf(b"a\x00JD-1", 3, asset_head)),
                     (b"c\x0024 001\x00JD-1", leaf(b"c\x0024 001\x00JD-1", 2, head))])
    expected = hashlib.sha256(b"kitledger/v1/heads-root\x00" + (2).to_bytes(8, "big")
                              + merkle.mth([data for _key, data in leaves])).digest()
    built = HeadMap([*entries_for("JD-1", 3, asset_head, None),
                     HeadEntry("JD-1", None, 2, head, case="24 001")])
    assert built.root == expected
    assert built.entry(1).key == b"c\x0024 001\x00JD-1"
