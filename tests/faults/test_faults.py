"""Faults with the real processes: simulator, agent, Mosquitto, `kitledger serve`, PostgreSQL
and anvil, each its own process; every fault is one function of `tests.faults.faults`, every
run ends with all of `tests.faults.checks`.

Length: `make test` runs the quick set; `KITLEDGER_FAULTS=full` (`make faults`) runs every
fault three times (agent kills: 3 runs of 10). `KITLEDGER_FAULTS_SEED` replays a run's random
choices (its seed is in the test id).

A fault the system cannot survive yet is marked xfail (not strict) naming the capability it
waits for; its row in the table still shows what it lost today.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pytest

from ledger.chain.provider import connect
from tests.faults import disks, faults, netns
from tests.faults.checks import check_end
from tests.faults.stack import ANVIL_CHAIN_ID, FaultStack
from tests.faults.stream import HEAVY, QUICK, StreamShape
from tests.faults.table import ROWS, Row

FULL: Final = os.environ.get("KITLEDGER_FAULTS", "quick") == "full"
SEED: Final = int(os.environ.get("KITLEDGER_FAULTS_SEED", "0"))
FULL_RUNS: Final = 3
FULL_AGENT_KILLS: Final = 10
"""Kills per run at full length: 3 runs, 30 kills."""
QUICK_AGENT_KILLS: Final = 3
RUN_TIMEOUT_S: Final = 600

PARTITION_BUFFERED: Final = 20_000
"""A partition must leave tens of thousands of observations buffered (issue 25)."""


@dataclass(frozen=True)
class Case:
    """One fault: its function, how many runs at each length, and what it waits for."""

    name: str
    fault: Callable[[FaultStack, random.Random], None]
    quick_runs: int = 0
    shape: StreamShape = QUICK
    options: dict[str, Any] = field(default_factory=dict)
    missing: str | None = None
    needs: Callable[[], bool] | None = None
    min_buffered: int = 0
    """The fault must have left at least this many observations waiting in the outboxes."""
    loses_anchors: bool = False
    """The fault must have cost recorded anchors (the service moved them to its history)."""


CASES: Final = (
    Case("agent-kill", faults.agent_kills(FULL_AGENT_KILLS if FULL else QUICK_AGENT_KILLS),
         quick_runs=1),
    Case("broker-kill-api-down", faults.broker_down(signal.SIGKILL, api_down=True),
         quick_runs=1),
    Case("broker-term-api-down", faults.broker_down(signal.SIGTERM, api_down=True)),
    Case("broker-kill-api-up", faults.broker_down(signal.SIGKILL, api_down=False)),
    Case("broker-term-api-up", faults.broker_down(signal.SIGTERM, api_down=False)),
    Case("api-kill", faults.api_kill, quick_runs=1),
    Case("database-cut", faults.database_cut),
    Case("chain-killed-restored", faults.chain_restored),
    Case("chain-replaced-empty", faults.chain_replaced_empty, loses_anchors=True),
    Case("partition", faults.partition, shape=HEAVY, min_buffered=PARTITION_BUFFERED),
    Case("blackhole", faults.blackhole, shape=HEAVY, min_buffered=PARTITION_BUFFERED,
         options={"site_netns": netns.available()}),
    Case("outbox-disk-full", faults.outbox_disk_full, options={"outbox_disk": disks.TMPFS},
         needs=disks.can_mount),
    Case("outbox-read-only", faults.outbox_read_only, options={"outbox_disk": disks.EXT4},
         needs=disks.can_mount),
)


def _params() -> list[Any]:
    params = []
    for case in CASES:
        runs = FULL_RUNS if FULL else case.quick_runs
        for run in range(runs):
            marks = [pytest.mark.timeout(RUN_TIMEOUT_S)]
            if case.missing:
                marks.append(pytest.mark.xfail(reason=case.missing, strict=False))
            params.append(pytest.param(case, SEED + run, marks=marks,
                                       id=f"{case.name}-seed{SEED + run}"))
    return params


@pytest.mark.slow
@pytest.mark.parametrize(("case", "seed"), _params())
def test_fault(case: Case, seed: int, tmp_path: Path) -> None:
    if case.needs is not None and not case.needs():
        pytest.skip(f"{case.name} needs root with mount (tmpfs) on this machine")
    rng = random.Random(seed)
    with FaultStack(tmp_path, shape=case.shape, **case.options) as stack:
        outcome = stack.play(lambda s: case.fault(s, rng))
        assert stack.engine is not None and stack.anvil is not None
        w3 = connect(stack.anvil.url, ANVIL_CHAIN_ID)
        report = check_end(stack.engine, outcome.issued, w3, stack.contract)
    ROWS.append(Row(case.name, report.expected, report.stored, report.lost, report.duplicated,
                    tuple(r.seconds for r in outcome.recoveries), tuple(report.problems),
                    buffered=outcome.buffered, anchors_lost=report.anchors_lost))
    # The stream really flowed: at least a quarter of what the readers saw was issued.
    assert report.expected >= case.shape.noise_visits, outcome
    assert outcome.recoveries, "the fault never restored what it broke"
    assert outcome.buffered >= case.min_buffered, (
        f"only {outcome.buffered} observations buffered: {stack.waiting}")
    assert report.anchors_lost or not case.loses_anchors, "no recorded anchor was lost"
    assert report.ok, report.problems
