"""Verifier check of the bundle header's own claims that no other check binds.

The header's `created` is the operator's word for when the bundle was made; its spelling is the
record format's (the parser refuses any other). A bundle cannot have been made before the log
state it carries, so `created` must not be before the newest verified checkpoint's time. The
other header fields are bound elsewhere: `log` by the checkpoint signatures and the trust roots,
`chain` by the trust roots and the anchors, `scope` by completeness, `counts` and `format` by
the parser.
"""

from __future__ import annotations

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.verify.report import CheckResult, VerificationReport


def check_header(bundle: AuditBundle, points: list[Checkpoint | None],
                 report: VerificationReport) -> None:
    """`created` is not before the newest signed checkpoint's time."""
    result = CheckResult("header", items=1)
    report.checks.append(result)
    signed = [p for p in points if p is not None]
    if not signed:
        return
    newest = max(signed, key=lambda p: p.tree_size)
    # Both are the record format's fixed-width UTC spelling: they compare correctly as text.
    if bundle.created < newest.time:
        result.fail(f"header created {bundle.created}, before the newest checkpoint "
                    f"(size {newest.tree_size}, {newest.time}) it carries")
