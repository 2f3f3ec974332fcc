"""The verification benchmark runs (quick size) and prints its table; speed is judged in bench/."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO_ROOT

REPO = REPO_ROOT


def test_bench_verify_quick_prints_its_figure() -> None:
    result = subprocess.run([sys.executable, str(REPO / "bench" / "verify.py"), "--quick"],
                            capture_output=True, text=True, check=True, timeout=240)
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 2,000 |")]
    assert len(rows) == 1, result.stdout
    seconds = float(rows[0].split("|")[4])
    assert seconds > 0
