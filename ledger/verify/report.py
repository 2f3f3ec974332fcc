"""The verifier's result: each check with pass, fail or not checked, and per-event failures;
and the progress callback long checks report to.

`passed` is None when a check could not be run (offline, or not asked for); a failed check keeps
only its first failing item, which says what was expected and what was found.
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

    @property
    def ok(self) -> bool:
        return all(c.passed is not False for c in self.checks)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def to_record(self) -> dict[str, object]:
        return {"ok": self.ok, "fingerprint": self.fingerprint, "chain": self.chain_source,
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
        for item in self.not_checked:
            lines.append(f"  not checked: {item}")
        lines.append("verdict: " + ("VALID" if self.ok else "INVALID"))
        return "\n".join(lines) + "\n"
