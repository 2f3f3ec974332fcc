"""The independent verifier's entry point: does an audit bundle prove the chain of custody it
shows?

Needs only the bundle and, for the anchors, a `ChainReader` (no database, no API). Every check
runs to the end and reports pass, fail or not checked with the first failing item (expected
versus found), so one tampered event does not hide another kind of damage. The checks run in
the order their inputs are proven: the bundle's fingerprint, checkpoints (and the header's
`created` against them), the registry the log holds (`registry`: reader keys, class policies,
asset tags, shares), the reader keys it registered, the observations those keys signed, the
events those observations justify (`justification`: by the event's reader, of the role and site
the action needs, in time, of the asset's registered tag, under its class policy),
the corrections (`corrections`: each names an earlier event of the log, unchanged), that none
in scope is left out, then the anchors. Before them all, the bundle's log key, chain
and contract are held to the auditor's trust roots (`trust`); after the consistency proofs the
checkpoints are held to the auditor's last verified one (`state`), and the witnesses'
cosignatures are checked on the checkpoints they cosign (`witnesses`).
"""

from __future__ import annotations

from ledger.core.bundle import AuditBundle
from ledger.verify.anchors import ChainReader, check_anchors
from ledger.verify.checkpoints import check_checkpoints, check_consistency
from ledger.verify.completeness import check_completeness
from ledger.verify.corrections import check_corrections
from ledger.verify.events import check_events
from ledger.verify.header import check_header
from ledger.verify.inventories import check_inventories
from ledger.verify.observations import check_devices, check_observations
from ledger.verify.registry import check_registry, registry_notes
from ledger.verify.report import CheckResult, Progress, VerificationReport
from ledger.verify.state import KnownCheckpoint, check_known_checkpoint
from ledger.verify.trust import TrustFile, check_trust
from ledger.verify.witnesses import WitnessQuorum, check_cosignatures


def verify_bundle(bundle: AuditBundle, reader: ChainReader, *, require_latest: bool = False,
                  progress: Progress | None = None, trust: TrustFile | None = None,
                  last_verified: KnownCheckpoint | None = None,
                  witnesses: WitnessQuorum | None = None) -> VerificationReport:
    """Run every check on `bundle`; raises ChainUnreachable only if the node cannot be asked.
    Without `trust` the verdict is UNPINNED at best; `last_verified` is the auditor's last
    verified checkpoint of this log; `witnesses` the auditor's witness policy (by default the
    trust file's for this log; None and no trust file: cosignatures are not checked)."""
    report = VerificationReport(fingerprint=bundle.fingerprint.hex())
    print_check = CheckResult("fingerprint", items=1)
    if bundle.computed_fingerprint != bundle.fingerprint:
        print_check.fail(f"expected {bundle.fingerprint.hex()} (end line), lines hash to "
                         f"{bundle.computed_fingerprint.hex()}")
    report.checks.append(print_check)
    # -- trust roots (ledger.verify.trust) --
    pins = check_trust(bundle, trust, report, offline=not reader.online)
    if witnesses is None and pins is not None:
        witnesses = pins.witnesses
    # -- end trust roots --
    points = check_checkpoints(bundle, report)
    check_header(bundle, points, report)  # `created` against the log state (ledger.verify.header)
    check_consistency(bundle, points, report)
    # -- the auditor's last verified checkpoint (ledger.verify.state) --
    known_size = check_known_checkpoint(points, last_verified, report)
    # -- end last verified checkpoint --
    check_cosignatures(bundle, points, witnesses, report)  # split views: ledger.verify.witnesses
    registry_used: set[int] = set()
    registry = check_registry(bundle, points, report, registry_used)  # as the log proves it
    registrations = check_devices(bundle, report, registry)
    known = check_observations(bundle, registrations, report.checks, progress)
    check_events(bundle, points, known, report, progress, registry)
    check_corrections(bundle, registry, report)  # each names an earlier event, unchanged
    check_inventories(registry, report)  # each inventory's figures add up
    registry_notes(registry, report)
    # Completeness: the newest checkpoint's head map proves nothing in scope was left out.
    check_completeness(bundle, points, report, frozenset(registry_used))
    check_anchors(bundle, points, reader, report, require_latest, known_size)
    if progress:
        progress("done", len(bundle.events), len(bundle.events))
    return report
