"""Verifier checks of the custody events: each is a valid record, cites observations that
verified and justify it (`justification`), extends its asset's hash chain, and is included in
the log under a signed checkpoint.

Hashes are taken over the bundle's own canonical lines, which are the signed and logged bytes,
so nothing is re-serialised on the hot path. Per-event failures feed the custody report.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.errors import LedgerError
from ledger.core.hashchain import ChainHead, check_link
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.record_scan import read_event
from ledger.core.records import Observation
from ledger.verify.justification import Justification
from ledger.verify.registry import Registry
from ledger.verify.report import PROGRESS_EVERY, CheckResult, Progress, VerificationReport


def check_events(bundle: AuditBundle, points: list[Checkpoint | None],
                 known: Mapping[bytes, Observation], report: VerificationReport,
                 progress: Progress | None, registry: Registry | None = None) -> None:
    """Each custody event: a valid record, justified by verified observations (`known`, by
    envelope hash; `justification` says what of them is checked, with the log's `registry`
    when proven), linked to its asset's previous event, and included under a signed
    checkpoint."""
    records = CheckResult("event-records")
    justified = CheckResult("event-observations")
    reads = CheckResult("event-justification")
    chains = CheckResult("hash-chains")
    included = CheckResult("inclusion-proofs")
    report.checks += [records, justified, reads, chains, included]
    justification = Justification(known, registry)
    roots = {p.tree_size: p.root for p in points if p is not None}
    heads: dict[str, ChainHead] = {}
    last_leaf = -1
    failures = report.event_failures
    total = len(bundle.events)
    for position, item in enumerate(bundle.events):
        if progress and position % PROGRESS_EVERY == 0:
            progress("events", position, total)
        where = f"event at leaf {item.leaf_index}"
        for check in (records, justified, reads, chains, included):
            check.items += 1
        try:
            event = read_event(item.record, where)
        except LedgerError as exc:
            records.fail(f"{where}: {exc}")
            failures.setdefault(item.leaf_index, str(exc))
            continue
        for reference in event.observations:
            if bytes.fromhex(reference) not in known:
                reason = f"{where}: expected observation {reference} in the bundle, not found"
                justified.fail(reason)
                failures.setdefault(item.leaf_index, reason)
        unjustified = justification.reason(event, item.leaf_index)
        if unjustified is not None:
            reads.fail(f"{where}: {unjustified}")
            failures.setdefault(item.leaf_index, unjustified)
        head = heads.get(event.asset) or ChainHead(event.asset)
        try:
            check_link(head, event)
        except LedgerError as exc:
            chains.fail(f"{where}: {exc}")
            failures.setdefault(item.leaf_index, str(exc))
        heads[event.asset] = ChainHead(event.asset, event.seq + 1, hashing.domain_hash(
            hashing.CUSTODY_EVENT, item.record).hex())
        if item.leaf_index <= last_leaf:
            reason = f"{where}: expected a leaf index above {last_leaf} (bundle order)"
            included.fail(reason)
            failures.setdefault(item.leaf_index, reason)
        last_leaf = item.leaf_index
        root = roots.get(item.tree_size)
        try:
            if root is None:
                raise LedgerError(f"no signed checkpoint at size {item.tree_size}")
            verify_inclusion(leaf_hash(item.record), item.leaf_index, item.tree_size,
                             item.path, root)
        except LedgerError as exc:
            included.fail(f"{where}: {exc}")
            failures.setdefault(item.leaf_index, str(exc))
    missing = [a for a in bundle.scope.assets if a not in heads]
    if missing:
        chains.fail(f"expected events of scope asset {missing[0]!r}, found none")
