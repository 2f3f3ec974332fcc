"""The faults, each a small function acting on a running `FaultStack` during its stream.

Each one waits for its moment (seconds after the stream started, `stack.at`), breaks one part
the way it breaks in the field, restores it, and calls `stack.restored()` so the time until
every sequence issued by then is stored is measured. Random choices come from the `rng` the
test seeds, so a failing run can be replayed with its seed.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from typing import Final

from tests.faults.stack import FaultStack
from tests.faults.stream import DESKS, START_S
from tests.fixtures.polling import wait_for

Fault = Callable[[FaultStack, random.Random], None]

BROKER_AWAY_S: Final = 2.0
API_AWAY_S: Final = 3.0
"""How long the API stays down while readers keep publishing (their messages queue)."""
DB_CUT_S: Final = 6.0
CHAIN_AWAY_S: Final = 3.0
REPLACED_STATES: Final = ("contract_missing", "chain_replaced")
"""The anchoring states that report a replaced chain (docs/anchoring.md)."""
REPORTED_S: Final = 60.0
"""Longest wait for the service to report a replaced chain (it checks every 15 s)."""
PARTITION_S: Final = 45.0
"""The partition ends this long after it could have begun at the earliest (it begins 0-2 s
later): at `stream.HEAVY`'s rate, tens of thousands of observations wait in the outboxes."""
DISK_FULL_S: Final = 6.0


def _midstream(stack: FaultStack, rng: random.Random, share: float = 0.6) -> float:
    """A random moment in the middle `share` of the stream."""
    span = stack.shape.duration_s
    return START_S + span * (1 - share) / 2 + rng.random() * span * share


def agent_kills(count: int) -> Fault:
    """`count` kill -9s of a random agent at random moments, each restarted 0.2-2 s later."""
    def fault(stack: FaultStack, rng: random.Random) -> None:
        moments = sorted(_midstream(stack, rng, 0.9) for _ in range(count))
        for moment in moments:
            stack.at(moment)
            reader = rng.choice(DESKS)
            name = f"agent {reader.reader_id}"
            if not stack.procs.running(name):
                continue
            stack.procs.kill(name)
            time.sleep(rng.uniform(0.2, 2.0))
            stack.procs.restart(name)
            stack.restored()
    return fault


def broker_down(signum: int, *, api_down: bool) -> Fault:
    """The broker stopped by `signum` (SIGTERM saves its queues, SIGKILL does not) and started
    again; with `api_down`, the API is stopped first, so messages wait in the broker."""
    def fault(stack: FaultStack, rng: random.Random) -> None:
        assert stack.broker is not None
        stack.at(_midstream(stack, rng))
        if api_down:
            for node in range(stack.nodes):
                stack.stop_api(node)
            time.sleep(API_AWAY_S)
        if signum == signal.SIGKILL:
            stack.broker.kill()
        else:
            stack.broker.stop()
        time.sleep(BROKER_AWAY_S)
        stack.broker.start()
        if api_down:
            for node in range(stack.nodes):
                stack.restart_api(node)
            for node in range(stack.nodes):
                stack.wait_api(node)
        stack.restored()
    return fault


def api_kill(stack: FaultStack, rng: random.Random) -> None:
    """kill -9 of `kitledger serve` mid-batch; started again after API_AWAY_S."""
    stack.at(_midstream(stack, rng))
    stack.stop_api(0, signal.SIGKILL)
    time.sleep(API_AWAY_S)
    stack.restart_api(0)
    stack.wait_api(0)
    stack.restored()


def database_cut(stack: FaultStack, rng: random.Random) -> None:
    """Every database connection reset and new ones refused for DB_CUT_S."""
    assert stack.db_link is not None
    stack.at(_midstream(stack, rng))
    stack.db_link.cut()
    time.sleep(DB_CUT_S)
    stack.db_link.restore()
    stack.restored()


def _after_next_anchor(stack: FaultStack) -> None:
    """Until the database records an anchor newer than the one it holds now."""
    before = stack.anchored_size()
    wait_for(lambda: stack.anchored_size() > before, timeout=30)


def chain_restored(stack: FaultStack, rng: random.Random) -> None:
    """The node killed (kill -9) just after an anchor became final, and started from its last
    state dump: its newest blocks, with that anchor, are gone."""
    assert stack.anvil is not None
    stack.at(_midstream(stack, rng))
    _after_next_anchor(stack)
    stack.anvil.kill()
    time.sleep(CHAIN_AWAY_S)
    stack.anvil.start()
    stack.restored()


def chain_replaced_empty(stack: FaultStack, rng: random.Random) -> None:
    """The node replaced by an empty one on the same address: no contract, no anchors. Once
    the service reports it (`contract_missing` or `chain_replaced`, /readyz 503), the operator
    does what docs/anchoring.md says: deploys the contract at a new address and restarts
    `serve` with that `anchor_contract`, which anchors each log's head there."""
    assert stack.anvil is not None
    stack.at(_midstream(stack, rng))
    _after_next_anchor(stack)
    stack.anvil.kill()
    stack.anvil.state.unlink(missing_ok=True)
    time.sleep(CHAIN_AWAY_S)
    stack.anvil.start()
    assert wait_for(lambda: stack.anchoring_state() in REPLACED_STATES, timeout=REPORTED_S), (
        f"the replaced chain was never reported (anchoring is {stack.anchoring_state()})")
    stack.contract = stack.deploy_new_contract()
    for node in range(stack.nodes):
        stack.stop_api(node)
        stack.restart_api(node)
    for node in range(stack.nodes):
        stack.wait_api(node)
    stack.restored()


def _partition(freeze: bool) -> Fault:
    def fault(stack: FaultStack, rng: random.Random) -> None:
        assert stack.uplink is not None
        stack.at(START_S + 2.0 + rng.random() * 2.0)
        if not freeze:
            stack.uplink.cut()
        elif stack.site is not None:
            stack.site.black_hole(True)
        else:
            stack.uplink.freeze()
        stack.at(min(stack.shape.end_s, START_S + 2.0 + PARTITION_S))
        stack.note_buffered()
        if stack.site is not None:
            stack.site.black_hole(False)
        stack.uplink.restore()
        stack.restored()
    return fault


partition = _partition(freeze=False)
"""The reader site's uplink refused (the agents buffer the whole partition in their outbox)."""
blackhole = _partition(freeze=True)
"""The uplink a black hole: packets dropped, not refused; only keepalives can tell. The
agents' network namespace loses its link (`tests.faults.netns`) or, where namespaces are not
allowed, the uplink proxy stops moving bytes."""


def outbox_disk_full(stack: FaultStack, rng: random.Random) -> None:
    """Each agent's outbox file system fills up for DISK_FULL_S, then has room again."""
    mounts = stack.outbox_mounts
    assert mounts is not None
    stack.at(_midstream(stack, rng))
    mounts.fill()
    time.sleep(DISK_FULL_S)
    mounts.empty()
    _revive_agents(stack)
    stack.restored()


def outbox_read_only(stack: FaultStack, rng: random.Random) -> None:
    """Each agent's outbox file system turns read-only on an error (ext4 `errors=remount-ro`,
    a failing SD card) for DISK_FULL_S; then what the agent's log line asks of the operator:
    the agent stopped (SIGTERM), the card checked and mounted again, the agent started."""
    mounts = stack.outbox_mounts
    assert mounts is not None
    stack.at(_midstream(stack, rng))
    mounts.fail()
    time.sleep(DISK_FULL_S)
    for reader in DESKS:
        name = f"agent {reader.reader_id}"
        if stack.procs.running(name):
            stack.procs.kill(name, signal.SIGTERM)
    mounts.repair()
    _revive_agents(stack)
    stack.restored()


def _revive_agents(stack: FaultStack) -> None:
    """An agent that exited on the fault is started again, as systemd would."""
    for reader in DESKS:
        name = f"agent {reader.reader_id}"
        if not stack.procs.running(name):
            stack.procs.restart(name)


def node_kill(stack: FaultStack, rng: random.Random) -> None:
    """kill -9 of one `serve` node, never started again: the others carry on alone."""
    stack.at(_midstream(stack, rng))
    stack.stop_api(rng.randrange(stack.nodes), signal.SIGKILL)
    stack.restored()


def rolling_restart(stack: FaultStack, rng: random.Random) -> None:
    """Every node in turn: SIGTERM, started again, ready before the next one goes."""
    stack.at(_midstream(stack, rng, 0.3))
    for node in range(stack.nodes):
        stack.stop_api(node)
        stack.restart_api(node)
        stack.wait_api(node)
    stack.restored()
