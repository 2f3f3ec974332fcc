"""Assemble an audit bundle from a live `MerkleLog`: inclusion and consistency proofs at the
signed checkpoints, then `ledger.core.bundle.build_bundle`.

The API calls this with rows from its database; the CLI, tests and benchmark call it with an
in-memory log. Each event is proven at the first checkpoint that covers it, so an auditor can
tie every event to the earliest anchored root. Given the head map of the newest checkpoint,
the bundle also carries what proves the scope complete (`scope_head_proofs`).
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
from ledger.core.envelope import Envelope
from ledger.core.heads import HeadMap, HeadProof
from ledger.merkle_log import MerkleLog


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    """A custody event's canonical record and its leaf index in the log."""

    record: bytes
    leaf_index: int


def scope_head_proofs(head_map: HeadMap, scope: Scope) -> list[HeadProof]:
    """The head-map proofs a scope needs: each scope asset's entry (or the neighbours proving
    it absent) and, for a site, the run of the site's entries with its neighbours."""
    found = {p.index: p for asset in scope.assets for p in head_map.proofs_for_asset(asset)}
    if scope.kind == "site" and scope.site is not None:
        found |= {p.index: p for p in head_map.proofs_for_site(scope.site)}
    return [found[i] for i in sorted(found)]


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
) -> bytes:
    """The bundle's bytes; `checkpoints` in increasing tree size, all within the log;
    `head_map` the map at the newest checkpoint, which must commit to its root."""
    points = [Checkpoint.from_record(c.envelope.payload) for c in checkpoints]
    sizes = [p.tree_size for p in points]
    if not points or sizes != sorted(set(sizes)):
        raise BundleError("checkpoints must be given, in strictly increasing tree size")
    steps = [ConsistencyStep(a, b, tuple(log.consistency_proof(a, b)))
             for a, b in itertools.pairwise(sizes)]
    entries = []
    for event in events:
        at = bisect.bisect_right(sizes, event.leaf_index)
        if at == len(sizes):
            raise BundleError(f"leaf {event.leaf_index} is not covered by any checkpoint")
        size = sizes[at]
        entries.append(BundleEvent(event.record, event.leaf_index, size,
                                   tuple(log.inclusion_proof(event.leaf_index, size))))
    heads: list[HeadProof] = []
    if head_map is not None:
        if points[-1].heads != head_map.root:
            raise BundleError("the head map given is not the one the newest checkpoint commits to")
        heads = scope_head_proofs(head_map, scope)
    return build_bundle(
        scope=scope, created=created, log_public_key=log_public_key,
        log_id=points[0].log_id, chain=chain, devices=devices, checkpoints=checkpoints,
        consistency=steps, observations=observations, events=entries, heads=heads,
    )
