"""Assemble an audit bundle from a live `MerkleLog`: inclusion and consistency proofs at the
signed checkpoints, then `ledger.core.bundle.build_bundle`.

The API calls this with rows from its database; the CLI, tests and benchmark call it with an
in-memory log. Each event is proven at the first checkpoint that covers it, so an auditor can
tie every event to the earliest anchored root. Given the head map of the newest checkpoint,
the bundle also carries what proves the scope complete (`scope_head_proofs`) and what proves
the registry records complete (`registry_head_proofs`): each of their subjects' entry, the
agency's registry entry and each scope asset's registry entry, present or proven absent.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from ledger.core.bundle import (
    BundleCheckpoint,
    BundleError,
    BundleEvent,
    ChainInfo,
    ConsistencyStep,
    DeviceRegistration,
    Scope,
    build_bundle,
)
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import parse_record
from ledger.core.envelope import Envelope
from ledger.core.heads import HeadMap, HeadProof
from ledger.core.records import RegistryRecord
from ledger.merkle_log import MerkleLog


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A custody event's canonical record and its leaf index in the log."""

    record: bytes
    leaf_index: int


def scope_head_proofs(head_map: HeadMap, scope: Scope) -> list[HeadProof]:
    """The head-map proofs a scope needs: each scope asset's entry (or the neighbours proving
    it absent) and, for a site or a case, the run of its entries with their neighbours."""
    found = {p.index: p for asset in scope.assets for p in head_map.proofs_for_asset(asset)}
    if scope.kind == "site" and scope.site is not None:
        found |= {p.index: p for p in head_map.proofs_for_site(scope.site)}
    if scope.kind == "case" and scope.case is not None:
        found |= {p.index: p for p in head_map.proofs_for_case(scope.case)}
    return [found[i] for i in sorted(found)]


def registry_subjects(records: Sequence[LoggedEvent], scope: Scope,
                      agency: str | None) -> set[tuple[str, str]]:
    """The registry subjects a bundle proves complete (or absent): those of its registry
    records, its agency's registry (given `agency`) and each scope asset's."""
    subjects = {RegistryRecord.from_record(parse_record(r.record)).subject for r in records}
    subjects |= {("asset", asset) for asset in scope.assets}
    if agency is not None:
        subjects.add(("agency", agency))
    return subjects


def registry_head_proofs(head_map: HeadMap, subjects: set[tuple[str, str]]) -> list[HeadProof]:
    """Each subject's registry entry in `head_map`, or the neighbours proving it absent."""
    return [p for subject, ident in sorted(subjects)
            for p in head_map.proofs_for_registry(subject, ident)]


def _proven(log: MerkleLog, sizes: list[int], items: Sequence[LoggedEvent]) -> list[BundleEvent]:
    """Each leaf's inclusion proof at the first checkpoint covering it."""
    entries = []
    for item in items:
        at = bisect.bisect_right(sizes, item.leaf_index)
        if at == len(sizes):
            raise BundleError(f"leaf {item.leaf_index} is not covered by any checkpoint")
        size = sizes[at]
        entries.append(BundleEvent(item.record, item.leaf_index, size,
                                   tuple(log.inclusion_proof(item.leaf_index, size))))
    return entries


def export_bundle(
    log: MerkleLog,
    *,
    scope: Scope,
    created: str,
    log_public_key: bytes,
    chain: ChainInfo | None,
    devices: Sequence[DeviceRegistration],
    checkpoints: Sequence[BundleCheckpoint],
    observations: Sequence[Envelope],
    events: Sequence[LoggedEvent],
    head_map: HeadMap | None = None,
    registry: Sequence[LoggedEvent] = (),
    agency: str | None = None,
) -> bytes:
    """The bundle's bytes; `checkpoints` in increasing tree size, all within the log;
    `head_map` the map at the newest checkpoint, which must commit to its root; `registry`
    the registry records the events rest on (whole subject chains) and `agency` the log's,
    whose registry entry the bundle proves (`chain.agency` when not given)."""
    points = [Checkpoint.from_record(c.envelope.payload) for c in checkpoints]
    sizes = [p.tree_size for p in points]
    if not points or sizes != sorted(set(sizes)):
        raise BundleError("checkpoints must be given, in strictly increasing tree size")
    steps = [ConsistencyStep(a, b, tuple(log.consistency_proof(a, b)))
             for a, b in itertools.pairwise(sizes)]
    heads: list[HeadProof] = []
    if head_map is not None:
        if points[-1].heads != head_map.root:
            raise BundleError("the head map given is not the one the newest checkpoint commits to")
        found = {p.index: p for p in scope_head_proofs(head_map, scope)}
        subjects = registry_subjects(registry, scope, agency or (chain.agency if chain else None))
        found |= {p.index: p for p in registry_head_proofs(head_map, subjects)}
        heads = [found[i] for i in sorted(found)]
    return build_bundle(
        scope=scope, created=created, log_public_key=log_public_key,
        log_id=points[0].log_id, chain=chain, devices=devices, checkpoints=checkpoints,
        consistency=steps, observations=observations, events=_proven(log, sizes, events),
        heads=heads, registry=_proven(log, sizes, registry),
    )
