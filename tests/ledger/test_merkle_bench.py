"""Keeps bench/merkle.py from rotting: its --quick smoke run must print the whole table.

Speed is not asserted here (speed lives in bench/, never in timed tests)."""

from __future__ import annotations

import subprocess
import sys

from tests.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "merkle.py"


def test_quick_benchmark_prints_every_row() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--quick"], capture_output=True, text=True, timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "pymerkle 7" in out
    for row in ("append, one at a time", "append_many", "inclusion proofs generated",
                "inclusion proofs verified", "consistency proof", "peak memory"):
        line = next(line for line in out.splitlines() if line.startswith(row))
        assert any(char.isdigit() for char in line), line
    assert out.count(">= ") == 3  # the three bars of the issue, each with a verdict
