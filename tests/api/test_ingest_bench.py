"""Keeps bench/api_ingest.py from rotting: a small run on both databases prints every row.

Speed is not asserted here (speed lives in bench/, never in timed tests); the run does check
that every published observation became a custody event, or the bench itself times out."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.api.api_support import assert_machine_row
from tests.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "api_ingest.py"


def test_small_ingest_benchmark_prints_every_row_on_both_databases() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--desks", "2", "--assets", "30", "--workers", "1,2",
         "--pack", "7", "--rate", "200"],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| sqlite")
            or line.startswith("| postgresql")]
    assert len(rows) == 2 * 2 * 3, done.stdout  # databases x worker counts x measures
    for row in rows:
        assert re.search(r"\d", row.split("|")[4]), row  # a figure in the result column
    ingest = [row for row in rows if "ingest (check-outs)" in row]
    assert all("7 per message | 62 obs" in row for row in ingest), ingest  # 2 badges + 60
    latency = [row for row in rows if "decision latency" in row]
    assert all("| 60 obs |" in row for row in latency), latency  # every check-in answered
    assert_machine_row(done.stdout)


INSTRUCTIONS = REPO_ROOT / "bench" / "api_ingest_instructions.py"


@pytest.mark.parametrize("db", ["sqlite", "postgresql"])
def test_instruction_count_benchmark_counts_every_observation_after_the_first_batch(
    db: str,
) -> None:
    done = subprocess.run(
        [sys.executable, str(INSTRUCTIONS), "--desks", "2", "--assets", "20", "--batch", "10",
         "--webhooks", "--db", db],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split("|")[1].strip(): line.split("|")[2:4]
            for line in done.stdout.splitlines() if line.startswith("| verify")
            or line.startswith("| store")}
    assert set(rows) == {"verify", "store"}, done.stdout
    assert f"| part ({db}) |" in done.stdout
    for observations, instructions in rows.values():
        assert int(observations) == 2 * 21 - 10  # all but the warm-up batch
        # A Python function call alone is hundreds of instructions: a count this small
        # would mean the measured part did not run.
        assert int(instructions.replace(",", "")) > 10_000
