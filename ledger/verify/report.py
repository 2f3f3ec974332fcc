"""The verifier's result: each check with pass, fail or not checked, and per-event failures;
and the progress callback long checks report to.

`passed` is None when a check could not be run (offline, or not asked for); a failed check keeps
only its first failing item, which says what was expected and what was found. The verdict is
INVALID when a check failed, UNPINNED when none failed but the auditor's trust roots could not
vouch for the result (`unpinned` says why), VALID otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): called now and then on large bundles."""

PROGRESS_EVERY: Final = 5_000
"""Items between two progress calls."""


@dataclass
class CheckResult:
    """One check: `passed` is None when it could not be run (say why in `detail`)."""

    name: str
    passed: bool | None = True
    items: int = 0
    detail: str = ""

    def fail(self, reason: str) -> None:
        if self.passed is not False:  # keep the first failing item
            self.passed = False
            self.detail = reason


@dataclass
class VerificationReport:
    fingerprint: str
    checks: list[CheckResult] = field(default_factory=list)
    event_failures: dict[int, str] = field(default_factory=dict)
    not_checked: list[str] = field(default_factory=list)
    chain_source: str = ""
    unpinned: list[str] = field(default_factory=list)
    """Why the verdict cannot be VALID although no check failed (nothing pinned, anchors the
    trust file requires but no node was asked for)."""
    scope_unproven: list[str] = field(default_factory=list)
    """Why nothing proves the bundle holds its whole scope (checkpoints without a head map):
    the verdict cannot be VALID, though the checkpoints themselves may be pinned."""
    anchored: list[dict[str, object]] = field(default_factory=list)
    """Each checkpoint's anchor as the chain confirmed it: size, block, block hash."""

    @property
    def ok(self) -> bool:
        """No check failed (which is VALID only when `unpinned` is empty too)."""
        return all(c.passed is not False for c in self.checks)

    @property
    def verdict(self) -> str:
        """"valid", "invalid" or "unpinned"."""
        if not self.ok:
            return "invalid"
        return "unpinned" if self.unpinned_reasons else "valid"

    @property
    def unpinned_reasons(self) -> list[str]:
        """Every reason the verdict is UNPINNED: the trust roots', then the scope's."""
        return [*self.unpinned, *self.scope_unproven]

    @property
    def checkpoint_pinned(self) -> bool:
        """No check failed and the trust roots vouch for the newest checkpoint (what the
        verifier may remember as the last verified, whatever the scope's completeness)."""
        return self.ok and not self.unpinned

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_record(self) -> dict[str, object]:
        return {"ok": self.ok, "verdict": self.verdict, "fingerprint": self.fingerprint,
                "chain": self.chain_source, "unpinned": self.unpinned_reasons,
                "anchored": self.anchored,
                "checks": [{"name": c.name, "passed": c.passed, "items": c.items,
                            "detail": c.detail} for c in self.checks],
                "not_checked": self.not_checked,
                "failed_events": {str(k): v for k, v in sorted(self.event_failures.items())}}

    def render(self) -> str:
        """The human-readable report: one line per check, then what was not checked."""
        lines = [f"bundle fingerprint {self.fingerprint}", f"chain: {self.chain_source}"]
        for check in self.checks:
            mark = {True: "pass", False: "FAIL", None: "not checked"}[check.passed]
            line = f"  {mark:<11} {check.name} ({check.items} items)"
            if check.detail:
                line += f": {check.detail}"
            lines.append(line)
        for anchor in self.anchored:
            lines.append(f"  anchored: size {anchor['size']} in block {anchor['block']} "
                         f"({anchor['block_hash']}), confirmed by the node")
        for item in self.not_checked:
            lines.append(f"  not checked: {item}")
        for item in self.unpinned_reasons:
            lines.append(f"  unpinned: {item}")
        lines.append("verdict: " + self.verdict.upper())
        return "\n".join(lines) + "\n"
