"""Verifier check that the bundle leaves nothing out of its scope, and that its scope is the one
its proofs prove.

The newest signed checkpoint commits to the log's head map (`ledger.core.heads`): every asset's
latest event at that size. With the hash chains (each event links to the one before, from seq
0), a presence proof of an asset's entry whose head is the bundle's last event of that asset
proves the asset's whole history is here: no first, middle or last event is missing. For each
scope kind:

- `asset` / `assets`: each listed asset's entry (or its proven absence), and no event of any
  other asset;
- `site`: additionally the run of the map's (site, asset) entries with its neighbours, which
  proves which assets the log places at the site: exactly the scope's assets, each with its
  latest event leaving it there;
- `case`: additionally the run of the map's (case, asset) entries with its neighbours, which
  proves which exhibits the log's latest references put in the case: exactly the scope's
  assets, each entry's head the hash of a registry record here that references it to the case
  (so an exhibit left out, or its reference record held back, fails);
- `time-range`: every leaf between the checkpoints that bracket [start, end) (the newest one
  signed at or before `start`, the oldest signed at or after `end`, which must exist), each an
  event or a registry record, and the scope's assets exactly the assets of those events.

A scope edited in the header fails unless the edited scope is also exactly what the bundle's
events and proofs show (e.g. a narrower time range holding the same assets).
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.heads import (
    HeadEntry,
    HeadProof,
    asset_key,
    case_prefix,
    entries_between,
    located_at,
    site_prefix,
    verify_head_proof,
)
from ledger.core.record_scan import read_event
from ledger.core.records import EVIDENCE_REFERENCED, RegistryRecord, parse_time, registry_hash
from ledger.verify.report import CheckResult, VerificationReport

NAME = "completeness"


class Incomplete(LedgerError):
    """What the bundle leaves out, or claims beyond what it proves."""


@dataclass(frozen=True, slots=True)
class LastEvent:
    seq: int
    head: bytes
    site: str | None


def check_completeness(bundle: AuditBundle, points: list[Checkpoint | None],
                       report: VerificationReport, registry_used: frozenset[int] = frozenset()
                       ) -> None:
    """Fail unless the bundle holds every event its scope covers (see the module docstring);
    `registry_used`: the head proofs the registry check used (`ledger.verify.registry`)."""
    result = CheckResult(NAME)
    report.checks.append(result)
    newest = points[-1] if points else None
    if newest is None:
        result.fail("expected a signed newest checkpoint to prove the scope complete")
        return
    if newest.heads is None:
        if any(point is not None and point.heads is not None for point in points):
            # A log that once committed to its head map and then stopped is hiding omissions.
            result.fail("expected the newest checkpoint to commit to a head map, as an earlier "
                        "checkpoint of this log does (record version 2), found version 1")
            return
        if bundle.heads:
            result.fail("expected no head proofs: the newest checkpoint commits to no head map")
            return
        result.passed = None
        result.detail = "the newest checkpoint (record version 1) commits to no head map"
        report.not_checked.append("whether events or assets of the scope were left out (the "
                                  "newest checkpoint commits to no head map)")
        # Whoever holds the log key can sign version-1 checkpoints over a bundle with events
        # left out: without a head map nothing vouches for the scope, so the verdict cannot be
        # VALID.
        report.scope_unproven.append("the newest checkpoint (record version 1) commits to no "
                                     "head map: nothing proves that no event of the scope was "
                                     "left out")
        return
    try:
        result.items = _check(bundle, points, newest.heads, registry_used)
    except LedgerError as exc:
        result.fail(str(exc))


def _last_events(bundle: AuditBundle) -> tuple[dict[str, LastEvent], dict[int, str]]:
    """Each asset's last event in the bundle, and the asset of each leaf."""
    last: dict[str, LastEvent] = {}
    leaves: dict[int, str] = {}
    for item in bundle.events:
        try:
            event = read_event(item.record, f"event at leaf {item.leaf_index}")
        except LedgerError:
            continue  # event-records reports it; its asset's chain then fails below or there
        leaves[item.leaf_index] = event.asset
        last[event.asset] = LastEvent(event.seq, hashing.domain_hash(
            hashing.CUSTODY_EVENT, item.record), located_at(event))
    return last, leaves


@dataclass(frozen=True, slots=True)
class ProvenEntries:
    """The bundle's head proofs, each verified, in entry order with their keys (which must
    increase with the index, as in any honestly built map)."""

    proofs: list[HeadProof]
    keys: list[bytes]
    by_index: dict[int, HeadProof]
    root: bytes

    @property
    def map_size(self) -> int:
        return self.proofs[0].map_size if self.proofs else 0


def prove_entries(bundle: AuditBundle, root: bytes) -> ProvenEntries:
    by_index: dict[int, HeadProof] = {}
    for proof in bundle.heads:
        if proof.index in by_index:
            raise Incomplete(f"head proof of entry {proof.index} given twice")
        if proof.map_size != bundle.heads[0].map_size:
            raise Incomplete("head proofs name different map sizes")
        verify_head_proof(proof, root)
        by_index[proof.index] = proof
    proofs = [by_index[i] for i in sorted(by_index)]
    keys = [p.entry.key for p in proofs]
    for index, (left, right) in enumerate(itertools.pairwise(keys)):
        if left >= right:
            raise Incomplete(f"head map entries {proofs[index].index} and "
                             f"{proofs[index + 1].index} are out of key order")
    return ProvenEntries(proofs, keys, by_index, root)


def entries_in_run(low: bytes, high: bytes, proven: ProvenEntries, used: set[int]
                   ) -> list[HeadEntry]:
    """The entries with low <= key <= high, from the bundle's proofs (which must hold the whole
    run and its neighbours)."""
    proofs = proven.proofs
    first = bisect.bisect_left(proven.keys, low)
    end = bisect.bisect_right(proven.keys, high)
    if first < end:
        start, stop = proofs[first].index - 1, proofs[end - 1].index + 1
    else:
        start = proofs[first - 1].index if first > 0 else -1
        stop = start + 1
    wanted = range(max(start, 0), min(stop, proven.map_size - 1) + 1)
    missing = [i for i in wanted if i not in proven.by_index]
    if missing:
        raise Incomplete(f"expected a head proof of map entry {missing[0]} for key "
                         f"{low!r:.80}, not in the bundle")
    used.update(wanted)
    return entries_between(low, high, [proven.by_index[i] for i in wanted], proven.root,
                           verified=True)


def _check(bundle: AuditBundle, points: list[Checkpoint | None], root: bytes,
           registry_used: frozenset[int]) -> int:
    scope = bundle.scope
    _check_scope_shape(bundle)
    proven = prove_entries(bundle, root)
    last, leaves = _last_events(bundle)
    listed = set(scope.assets)
    outside = sorted(set(last) - listed)
    if outside:
        raise Incomplete(f"events of asset {outside[0]!r}, which the scope does not list")
    used: set[int] = set()
    for asset in scope.assets:
        key = asset_key(asset)
        found = entries_in_run(key, key, proven, used)
        have = last.get(asset)
        if not found:
            if have is not None:
                raise Incomplete(f"asset {asset!r} has events here, but the head map proves it "
                                 "has none in the log")
            continue
        entry = found[0]
        if have is None or (have.seq, have.head) != (entry.seq, entry.head):
            shown = "none" if have is None else f"seq {have.seq}"
            raise Incomplete(f"asset {asset!r}: the log's latest event is seq {entry.seq} "
                             f"({entry.head.hex()[:16]}...), the bundle's last is {shown}: "
                             "events left out")
    if scope.kind == "site" and scope.site is not None:
        _check_site(scope.site, proven, used, last, listed)
    if scope.kind == "case" and scope.case is not None:
        _check_case(bundle, scope.case, proven, used, last, listed)
    if scope.kind == "time-range":
        _check_time_range(bundle, points, leaves)
    unused = sorted(set(proven.by_index) - used - registry_used)
    if unused:
        raise Incomplete(f"head proof of entry {unused[0]} is not one the scope needs")
    return len(scope.assets)


def _check_scope_shape(bundle: AuditBundle) -> None:
    scope = bundle.scope
    if len(set(scope.assets)) != len(scope.assets):
        raise Incomplete("the scope lists an asset twice")
    if scope.kind == "asset" and len(scope.assets) != 1:
        raise Incomplete(f"an 'asset' scope names one asset, this one {len(scope.assets)}")
    if scope.kind in ("asset", "assets") and (scope.site, scope.start, scope.end) != (
            None, None, None):
        raise Incomplete(f"an {scope.kind!r} scope names no site or time range")
    if scope.kind == "site" and (scope.site is None or (scope.start, scope.end) != (None, None)):
        raise Incomplete("a 'site' scope names a site and no time range")
    if (scope.kind == "case") != (scope.case is not None) or (
            scope.kind == "case" and (scope.site, scope.start, scope.end) != (None, None, None)):
        raise Incomplete("a 'case' scope, and only one, names a case, and no site or time range")
    if scope.kind == "time-range":
        if scope.site is not None or scope.start is None or scope.end is None:
            raise Incomplete("a 'time-range' scope names a start and an end and no site")
        if parse_time(scope.start) >= parse_time(scope.end):
            raise Incomplete("a time range must start before it ends")
    if not scope.assets and scope.kind in ("asset", "assets"):
        raise Incomplete("the scope lists no asset")


def _check_site(site: str, proven: ProvenEntries, used: set[int], last: dict[str, LastEvent],
                listed: set[str]) -> None:
    prefix = site_prefix(site)
    there = entries_in_run(prefix, prefix + b"\xff", proven, used)
    held = {e.asset: e for e in there}
    if len(held) != len(there):
        raise Incomplete(f"site {site!r}: the head map lists an asset twice there")
    left_out = sorted(set(held) - set(last))
    if left_out:
        raise Incomplete(f"site {site!r}: the head map places {len(left_out)} asset(s) there "
                         f"that the bundle leaves out, first {left_out[0]!r}")
    elsewhere = sorted((set(last) | listed) - set(held))
    if elsewhere:
        raise Incomplete(f"site {site!r}: the scope lists {elsewhere[0]!r}, which the head map "
                         "does not place there")
    for asset, entry in held.items():
        have = last[asset]
        if (have.seq, have.head) != (entry.seq, entry.head) or have.site != site:
            raise Incomplete(f"site {site!r}: asset {asset!r}'s site entry does not match its "
                             "last event, or that event does not leave it at the site")


def _check_case(bundle: AuditBundle, case: str, proven: ProvenEntries, used: set[int],
                last: dict[str, LastEvent], listed: set[str]) -> None:
    prefix = case_prefix(case)
    there = {e.asset: e for e in entries_in_run(prefix, prefix + b"\xff", proven, used)}
    left_out = sorted(set(there) - listed)
    if left_out:
        raise Incomplete(f"case {case!r}: the head map lists {len(left_out)} exhibit(s) of the "
                         f"case that the bundle leaves out, first {left_out[0]!r}")
    elsewhere = sorted((set(last) | listed) - set(there))
    if elsewhere:
        raise Incomplete(f"case {case!r}: the scope lists {elsewhere[0]!r}, which the head map "
                         "does not put in the case")
    references = _case_references(bundle)
    for asset, entry in there.items():
        if references.get(entry.head) != (asset, case):
            raise Incomplete(f"case {case!r}: exhibit {asset!r}'s reference record (registry "
                             f"seq {entry.seq}) is not in the bundle")


def _case_references(bundle: AuditBundle) -> dict[bytes, tuple[str, str]]:
    """The bundle's `evidence-referenced` records by hash: (asset, case) each."""
    found: dict[bytes, tuple[str, str]] = {}
    for item in bundle.registry:
        try:
            record = RegistryRecord.from_record(parse_record(item.record))
        except LedgerError:
            continue  # the registry check reports it
        if record.kind == EVIDENCE_REFERENCED:
            found[registry_hash(item.record)] = (record.get("asset"), record.get("case"))
    return found


def _check_time_range(bundle: AuditBundle, points: list[Checkpoint | None],
                      leaves: dict[int, str]) -> None:
    scope = bundle.scope
    assert scope.start is not None and scope.end is not None
    signed = [p for p in points if p is not None]
    start, end = parse_time(scope.start), parse_time(scope.end)
    low = max((p.tree_size for p in signed if parse_time(p.time) <= start), default=0)
    after = [p.tree_size for p in signed if parse_time(p.time) >= end]
    if not after:
        raise Incomplete(f"time range ends {scope.end}, after the newest checkpoint "
                         f"({signed[-1].time}): what was logged since is not proven")
    high = min(after)
    registry = {item.leaf_index for item in bundle.registry}  # leaves of no asset
    missing = next((i for i in range(low, high) if i not in leaves and i not in registry), None)
    if missing is not None:
        raise Incomplete(f"time range: expected every leaf {low}..{high - 1}, leaf {missing} "
                         "is not in the bundle")
    in_range = {leaves[i] for i in range(low, high) if i in leaves}
    if in_range != set(scope.assets):
        extra = sorted(set(scope.assets) - in_range)
        raise Incomplete(f"time range: the scope's assets are not those of leaves {low}.."
                         f"{high - 1} (first difference "
                         f"{(extra or sorted(in_range - set(scope.assets)))[0]!r})")
