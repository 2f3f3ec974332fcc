"""The independent verifier: does an audit bundle prove the chain of custody it shows?

Needs only the bundle and, for the anchors, a `ChainReader` (no database, no API). Every check
runs to the end and reports pass, fail or not checked with the first failing item (expected
versus found), so one tampered event does not hide another kind of damage. Per-event results
feed the custody report. Hashes are taken over the bundle's own canonical lines, which are the
signed and logged bytes, so nothing is re-serialised on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable

from ledger.core import hashing
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, verify_checkpoint
from ledger.core.envelope import key_id, public_key_from_raw
from ledger.core.errors import LedgerError
from ledger.core.hashchain import ChainHead, check_link
from ledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.core.record_scan import read_event
from ledger.verify_anchors import ChainReader, check_anchor
from ledger.verify_observations import check_devices, check_observations
from ledger.verify_report import CheckResult, VerificationReport

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called now and then on large bundles."""

PROGRESS_EVERY = 5_000


def _checkpoints(bundle: AuditBundle, report: VerificationReport) -> list[Checkpoint | None]:
    result = CheckResult("checkpoint-signatures")
    report.checks.append(result)
    found: list[Checkpoint | None] = []
    try:
        log_key = public_key_from_raw(bundle.log_public_key)
    except LedgerError as exc:
        result.fail(f"log public key unusable: {exc}")
        return [None] * len(bundle.checkpoints)
    if key_id(log_key) != bundle.log_id:
        result.fail(f"header names log {bundle.log_id}, its public key's id is {key_id(log_key)}")
    previous = 0
    for position, item in enumerate(bundle.checkpoints):
        result.items += 1
        try:
            checkpoint = verify_checkpoint(item.envelope, log_key)
        except LedgerError as exc:
            result.fail(f"checkpoint {position}: {exc}")
            found.append(None)
            continue
        if checkpoint.tree_size <= previous:
            result.fail(f"checkpoint {position}: expected a size above {previous}, "
                        f"found {checkpoint.tree_size}")
        previous = checkpoint.tree_size
        found.append(checkpoint)
    if not bundle.checkpoints:
        result.fail("expected at least one signed checkpoint, found none")
    return found


def _consistency(bundle: AuditBundle, points: list[Checkpoint | None],
                 report: VerificationReport) -> None:
    result = CheckResult("checkpoint-consistency")
    report.checks.append(result)
    if len(bundle.consistency) != max(len(points) - 1, 0):
        result.fail(f"expected {max(len(points) - 1, 0)} consistency proofs, "
                    f"found {len(bundle.consistency)}")
    for step, old, new in zip(bundle.consistency, points, points[1:], strict=False):
        result.items += 1
        if old is None or new is None:
            result.fail(f"proof {step.size1}->{step.size2}: a checkpoint is unsigned")
            continue
        if (step.size1, step.size2) != (old.tree_size, new.tree_size):
            result.fail(f"expected a proof {old.tree_size}->{new.tree_size}, "
                        f"found {step.size1}->{step.size2}")
            continue
        try:
            verify_consistency(old.tree_size, new.tree_size, old.root, new.root, step.path)
        except LedgerError as exc:
            result.fail(f"checkpoint {old.tree_size} -> {new.tree_size} inconsistent: {exc}")


def _events(bundle: AuditBundle, points: list[Checkpoint | None], known: set[bytes],
            report: VerificationReport, progress: Progress | None) -> None:
    records = CheckResult("event-records")
    justified = CheckResult("event-observations")
    chains = CheckResult("hash-chains")
    included = CheckResult("inclusion-proofs")
    report.checks += [records, justified, chains, included]
    roots = {p.tree_size: p.root for p in points if p is not None}
    heads: dict[str, ChainHead] = {}
    last_leaf = -1
    failures = report.event_failures
    total = len(bundle.events)
    for position, item in enumerate(bundle.events):
        if progress and position % PROGRESS_EVERY == 0:
            progress("events", position, total)
        where = f"event at leaf {item.leaf_index}"
        for check in (records, justified, chains, included):
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


def _anchors(bundle: AuditBundle, points: list[Checkpoint | None], reader: ChainReader,
             report: VerificationReport, require_latest: bool) -> None:
    result = CheckResult("anchors")
    report.checks.append(result)
    report.chain_source = reader.source
    report.not_checked += list(reader.not_checked)
    if bundle.chain is None:
        result.fail("expected the bundle to name a chain and contract, found none")
        return
    log_id = chain_log_id(key_id(public_key_from_raw(bundle.log_public_key)))
    agency = reader.log_agency(log_id)
    expected_agency = chain_agency_id(bundle.chain.agency)
    if agency != expected_agency:
        result.fail(f"log registered to agency {agency.hex() if agency else 'none'} on chain, "
                    f"expected {expected_agency.hex()} ({bundle.chain.agency})")
    signed = [(item, p) for item, p in zip(bundle.checkpoints, points, strict=True) if p]
    found = reader.anchors(log_id)
    for item, point in signed:
        result.items += 1
        reason = check_anchor(item.anchor, found.get(point.tree_size), point.tree_size,
                              point.root)
        if reason:
            result.fail(reason)
    newest = max((p.tree_size for _i, p in signed), default=0)
    shown = {p.tree_size for _i, p in signed}
    # An anchor the bundle leaves out could hide a rewrite: the bundle's checkpoints would no
    # longer be proven consistent with it.
    left_out = sorted(size for size in found if size <= newest and size not in shown)
    if left_out:
        result.fail(f"chain anchored size {left_out[0]} (root {found[left_out[0]].root.hex()}), "
                    "expected it among the bundle's checkpoints, not found")
    fresh = CheckResult("freshness", passed=None, detail="not required (--require-latest)")
    latest = reader.latest_size(log_id)
    if require_latest:
        fresh.passed, fresh.detail = True, f"newest checkpoint {newest} is the chain's latest"
        if latest is None:
            fresh.passed, fresh.detail = None, "the chain's latest checkpoint is unknown offline"
        elif latest != newest:
            fresh.fail(f"expected the chain's latest anchored size {latest}, bundle's newest "
                       f"checkpoint is {newest} (stale view)")
    report.checks.append(fresh)


def verify_bundle(bundle: AuditBundle, reader: ChainReader, *, require_latest: bool = False,
                  progress: Progress | None = None) -> VerificationReport:
    """Run every check on `bundle`; raises ChainUnreachable only if the node cannot be asked."""
    report = VerificationReport(fingerprint=bundle.fingerprint.hex())
    print_check = CheckResult("fingerprint", items=1)
    if bundle.computed_fingerprint != bundle.fingerprint:
        print_check.fail(f"expected {bundle.fingerprint.hex()} (end line), lines hash to "
                         f"{bundle.computed_fingerprint.hex()}")
    report.checks.append(print_check)
    registrations = check_devices(bundle, report.checks)
    points = _checkpoints(bundle, report)
    _consistency(bundle, points, report)
    known = check_observations(bundle, registrations, report.checks, progress)
    _events(bundle, points, known, report, progress)
    _anchors(bundle, points, reader, report, require_latest)
    if progress:
        progress("done", len(bundle.events), len(bundle.events))
    return report
