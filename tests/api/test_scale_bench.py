"""Keeps bench/scale.py from rotting: a small run of one and two real `serve` nodes prints a row
per node count with every figure filled in.

Speed is not asserted (speed lives in bench/, never in timed tests). What is checked: each run
stored every check-out it sent (else the bench times out and exits non-zero), every check-in
was answered, and the CPU and lock figures were measured from the nodes' own processes and
sessions (a node whose processes the bench could not find would show 0 µs)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.api.api_support import assert_machine_row
from tests.paths import REPO_ROOT

BENCH = REPO_ROOT / "bench" / "scale.py"

AGENCIES, DESKS, ASSETS, RUNS = 2, 1, 40, 2
"""Enough check-outs that each node spends some clock ticks (10 ms) on them."""


def test_small_scale_benchmark_prints_a_row_per_node_count() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH), "--nodes", "1,2", "--agencies", str(AGENCIES),
         "--desks", str(DESKS), "--assets", str(ASSETS), "--runs", str(RUNS), "--pack", "4",
         "--rate", "50"],
        capture_output=True, text=True, timeout=900, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {int(line.split("|")[1]): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in done.stdout.splitlines() if re.match(r"^\| \d+ \|", line)}
    assert set(rows) == {1, 2}, done.stdout
    for count, (throughput, ratio, waits, cpu, postgres, broker, latency, busy) in rows.items():
        assert re.match(r"[\d,]+ obs/s \(runs [\d,]+, [\d,]+\)$", throughput), throughput
        assert re.match(r"[\d.]+x$", ratio), ratio
        assert re.match(r"\d+% of [1-9]\d* samples", waits), waits  # it sampled
        nodes = re.findall(r"node-[a-c] ([\d,]+)", cpu)
        assert len(nodes) == count and all(int(n.replace(",", "")) > 0 for n in nodes), cpu
        assert re.match(r"[\d,]+ µs$", postgres) and re.match(r"[\d,]+ µs$", broker)
        answered = AGENCIES * DESKS * ASSETS  # the check-ins of the first run's radios
        assert re.search(rf"p50 \d+ ms, p99 \d+ ms \({answered} at 50/s\)", latency), latency
        assert busy.startswith("nodes "), busy
    assert rows[1][1] == "1.00x"
    assert_machine_row(done.stdout)
