"""Several `kitledger serve` nodes on one PostgreSQL database and one Mosquitto broker, under
steady load and through a node's kill -9 (never restarted), a rolling restart, a broker
restart and a database cut. Besides every end check: every read owed an answer got one, and
no log was anchored by two nodes at once (each node anchors from an account of its own, so
the chain says who anchored what, `checks.anchorer_overlaps`). The longest wait of a read for
its answer, per reader, goes in the table.

`make test` runs two of them (`QUICK_SET`, two nodes); `make faults` runs every fault with two
and with three nodes, three runs each.
"""

from __future__ import annotations

import random
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pytest

from ledger.chain.provider import connect
from tests.faults import faults
from tests.faults.checks import anchorer_overlaps, check_end, stalls
from tests.faults.stack import ANVIL_CHAIN_ID, FaultStack
from tests.faults.table import ROWS, Row
from tests.faults.test_faults import FULL, FULL_RUNS, RUN_TIMEOUT_S, SEED

NODE_COUNTS: Final = (2, 3)

FAULTS: Final[dict[str, Callable[[FaultStack, random.Random], None] | None]] = {
    "steady": None,
    "node-kill": faults.node_kill,
    "rolling-restart": faults.rolling_restart,
    "broker-restart": faults.broker_down(signal.SIGTERM, api_down=False),
    "database-cut": faults.database_cut,
}


QUICK_SET: Final = ((2, "node-kill"), (2, "rolling-restart"))
"""In `make test`: two nodes, one losing a node for good, one restarted node by node."""


def _params() -> list[Any]:
    cases = ([(nodes, name, run) for nodes in NODE_COUNTS for name in FAULTS
              for run in range(FULL_RUNS)] if FULL
             else [(nodes, name, 0) for nodes, name in QUICK_SET])
    return [pytest.param(nodes, name, SEED + run, marks=pytest.mark.timeout(RUN_TIMEOUT_S),
                         id=f"{nodes}nodes-{name}-seed{SEED + run}")
            for nodes, name, run in cases]


@pytest.mark.slow
@pytest.mark.parametrize(("nodes", "name", "seed"), _params())
def test_nodes(nodes: int, name: str, seed: int, tmp_path: Path) -> None:
    rng = random.Random(seed)
    fault = FAULTS[name]
    with FaultStack(tmp_path, nodes=nodes) as stack:
        outcome = stack.play(None if fault is None else lambda s: fault(s, rng))
        assert stack.engine is not None and stack.anvil is not None
        w3 = connect(stack.anvil.url, ANVIL_CHAIN_ID)
        report = check_end(stack.engine, outcome.issued, w3, stack.contract, answers=True)
        with stack.engine.connect() as conn:
            logs = [log for (log,) in conn.exec_driver_sql(
                "SELECT log_id FROM agency_log WHERE log_id IS NOT NULL")]
        report.problems += anchorer_overlaps(w3, stack.contract, logs, stack.node_of,
                                             stack.lives)
        waits = stalls(stack.engine)
    ROWS.append(Row(f"{nodes} nodes {name}", report.expected, report.stored, report.lost,
                    report.duplicated, tuple(r.seconds for r in outcome.recoveries),
                    tuple(report.problems), tuple(sorted(waits.items()))))
    assert report.expected >= stack.shape.noise_visits, outcome
    assert report.ok, report.problems
