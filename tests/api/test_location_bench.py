"""Keeps bench/api_location.py from rotting: a small run on both databases prints its table.

Speed is not asserted (speed lives in bench/); the row must carry the run's own figures."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.api.api_support import assert_machine_row
from tests.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "api_location.py"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_small_location_benchmark_times_every_request(db: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--assets", "300", "--events", "900", "--requests", "40",
         "--db", db],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    row = next((line for line in done.stdout.splitlines() if line.startswith(f"| {db} |")), "")
    cells = [cell.strip() for cell in row.split("|")[1:-1]]
    assert cells[:4] == [db, "300", "900", "40"], done.stdout
    p50, p99 = (float(re.fullmatch(r"([\d.]+) ms", cell)[1]) for cell in cells[4:6])
    assert 0 < p50 <= p99
    assert float(cells[7].removesuffix("x")) == pytest.approx(10 / p99, abs=0.01)
    assert_machine_row(done.stdout)
