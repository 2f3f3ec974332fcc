"""Verifier checks of the log's signed checkpoints: each is signed by the bundle's log key,
sizes grow, and each is proven consistent with the one before (the log was only appended to).
"""

from __future__ import annotations

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint, verify_checkpoint
from ledger.core.envelope import key_id, public_key_from_raw
from ledger.core.errors import LedgerError
from ledger.core.merkle import verify_consistency
from ledger.verify.report import CheckResult, VerificationReport


def check_checkpoints(bundle: AuditBundle, report: VerificationReport) -> list[Checkpoint | None]:
    """Verify each checkpoint's signature by the bundle's log key, in growing size order;
    the verified checkpoints by position (None where one does not verify)."""
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


def check_consistency(bundle: AuditBundle, points: list[Checkpoint | None],
                      report: VerificationReport) -> None:
    """Each consecutive pair of signed checkpoints is proven consistent (the log only grew)."""
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
