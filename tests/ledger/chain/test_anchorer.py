"""The anchorer on both chains: when it anchors, what it signs, what it refuses, what it
reports, and how it recovers from a restart mid-transaction and from reorgs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ledger.chain.anchorer import AnchorerMetrics, AnchorPolicy
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import ConsistencyError, TransactionFailed
from ledger.chain.pending import PendingAnchor
from ledger.chain.txpolicy import base_tx, unsigned
from ledger.core.checkpoint import verify_checkpoint
from ledger.core.envelope import Envelope
from ledger.core.merkle import verify_consistency
from tests.ledger.chain.anchoring_helpers import (
    grow,
    make_anchorer,
    new_log,
    registered_log_key,
    settle,
)
from tests.ledger.chain.chain_support import ChainHarness, Deployment


def anchored_sizes(deployment: Deployment, chain_log_id: bytes) -> list[int]:
    return [e.tree_size for e in deployment.anchorer.anchored_events(chain_log_id, 0)]


def test_anchors_on_interval_and_on_leaf_count(deployment: Deployment, tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log()
    anchorer = make_anchorer(deployment, log, key, tmp_db)
    settle(anchorer, 0.0)
    assert anchorer.metrics.anchors_sent == 0 and anchorer.backlog == 0  # empty log: nothing
    grow(log, 3)
    settle(anchorer, 1.0)  # the first checkpoint goes at once
    grow(log, 3)
    settle(anchorer, 2.0)  # 3 new leaves < 10 and 1 s < 60 s: not yet
    assert anchorer.backlog == 3
    settle(anchorer, 61.5)  # the interval has passed
    grow(log, 10)
    settle(anchorer, 62.0)  # 10 new leaves: at once
    assert anchored_sizes(deployment, anchorer.chain_log_id) == [3, 6, 16]
    assert anchorer.metrics.anchors_final == 3 and anchorer.backlog == 0


def test_signed_checkpoints_match_chain_and_are_consistent(deployment: Deployment,
                                                           tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log(5)
    anchorer = make_anchorer(deployment, log, key, tmp_db, AnchorPolicy(max_new_leaves=1))
    for more in (0, 4, 23):
        grow(log, more)
        settle(anchorer, 100.0)
    rows = [anchorer.store.latest_final(anchorer.chain_log_id)]
    assert rows[0] is not None
    previous = None
    for event in deployment.anchorer.anchored_events(anchorer.chain_log_id, 0):
        assert event.root == log.root(event.tree_size)
        if previous is not None:
            proof = log.consistency_proof(previous.tree_size, event.tree_size)
            verify_consistency(previous.tree_size, event.tree_size, previous.root, event.root,
                               proof)
        previous = event
    final = rows[0]
    checkpoint = verify_checkpoint(Envelope.from_bytes(final.checkpoint), key.public_key())
    assert (checkpoint.tree_size, checkpoint.root) == (32, log.root(32))
    assert checkpoint.time == "1970-01-01T00:01:40.000Z"


def test_refuses_to_anchor_a_rewritten_log(deployment: Deployment, tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    anchorer = make_anchorer(deployment, new_log(4), key, tmp_db)
    settle(anchorer, 0.0)
    nonce = deployment.anchorer.mined_nonce()
    anchorer.log = new_log(6, tag=b"forged")  # same key, different history
    with pytest.raises(ConsistencyError, match="does not extend anchored size 4"):
        anchorer.step(1000.0)
    assert deployment.anchorer.pending_nonce() == nonce
    assert anchored_sizes(deployment, anchorer.chain_log_id) == [4]


def test_metrics_report_backlog_and_lag(deployment: Deployment, tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log(2)
    seen: list[AnchorerMetrics] = []
    anchorer = make_anchorer(deployment, log, key, tmp_db)
    anchorer.on_metrics = seen.append
    settle(anchorer, 10.0)
    assert (anchorer.metrics.anchored_size, anchorer.backlog, anchorer.lag_s) == (2, 0, 0.0)
    grow(log, 5)
    anchorer.step(20.0)
    anchorer.step(25.5)
    # The leaves after the anchor taken at t=10 have waited at most 15.5 s.
    assert (anchorer.backlog, anchorer.lag_s) == (5, 15.5)
    assert seen[-1] == anchorer.metrics and seen[-1].log_size == 7
    assert anchorer.metrics.last_gas_used > 21_000


class Crash(BaseException):
    """The process dies here (BaseException: nothing in the anchorer may swallow it)."""


def test_restart_between_persist_and_send(chain: ChainHarness, deployment: Deployment,
                                          tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log(8)

    class CrashingClient(CustodyAnchorClient):
        def send(self, pending: PendingAnchor) -> None:
            raise Crash

    crashing = CrashingClient(chain.w3, deployment.admin.address, deployment.anchorer.account)
    with pytest.raises(Crash):
        make_anchorer(deployment, log, key, tmp_db, client=crashing).step(0.0)
    restarted = make_anchorer(deployment, log, key, tmp_db)
    (persisted,) = restarted.store.unfinished(restarted.chain_log_id)
    assert not deployment.anchorer.is_known(persisted.tx_hash)  # persisted, never sent
    settle(restarted, 1.0)
    assert restarted.metrics.resends == 1
    assert anchored_sizes(deployment, restarted.chain_log_id) == [8]


def test_restart_between_send_and_receipt(deployment: Deployment, tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log(8)

    first = make_anchorer(deployment, log, key, tmp_db)
    first._settle_in_flight = lambda: True  # type: ignore[method-assign]
    first.step(0.0)  # sends, then "dies" before looking at any receipt
    assert first.metrics.anchors_sent == 1
    restarted = make_anchorer(deployment, log, key, tmp_db)
    settle(restarted, 1.0)
    grow(log, 20)
    settle(restarted, 2.0)
    assert restarted.metrics.resends == 0
    assert anchored_sizes(deployment, restarted.chain_log_id) == [8, 28]


def test_shallow_reorg_resends_the_same_transaction(chain: ChainHarness, deployment: Deployment,
                                                   tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    anchorer = make_anchorer(deployment, new_log(6), key, tmp_db,
                             AnchorPolicy(confirmations=10_000))
    snapshot = chain.snapshot()
    anchorer.step(0.0)
    (sent,) = anchorer.store.unfinished(anchorer.chain_log_id)
    deployment.anchorer.wait_for_receipt(sent.tx_hash)
    anchorer.step(0.0)
    assert anchorer.store.unfinished(anchorer.chain_log_id)[0].state == "mined"
    chain.revert(snapshot)
    assert deployment.anchorer.receipt(sent.tx_hash) is None
    anchorer.step(0.0)
    assert anchorer.metrics.reorgs == 1
    assert deployment.anchorer.wait_for_receipt(sent.tx_hash).tx_hash == sent.tx_hash
    assert deployment.anchorer.latest_checkpoint(anchorer.chain_log_id).tree_size == 6
    anchorer.policy = replace(anchorer.policy, confirmations=1)
    settle(anchorer, 0.0)
    assert anchorer.metrics.anchors_sent == 1  # one checkpoint, one transaction, mined twice


def test_deep_reorg_reanchors_a_final_checkpoint(chain: ChainHarness, deployment: Deployment,
                                                 tmp_db: Path) -> None:
    key = registered_log_key(deployment)
    log = new_log(6)
    anchorer = make_anchorer(deployment, log, key, tmp_db)
    snapshot = chain.snapshot()
    settle(anchorer, 0.0)
    assert anchorer.metrics.anchors_final == 1
    chain.revert(snapshot)
    assert deployment.anchorer.latest_checkpoint(anchorer.chain_log_id).tree_size == 0
    settle(anchorer, 1.0)
    assert anchorer.metrics.reorgs == 1
    assert deployment.anchorer.latest_checkpoint(anchorer.chain_log_id).tree_size == 6
    assert anchored_sizes(deployment, anchorer.chain_log_id) == [6]


def test_an_anchor_reverted_on_chain_is_dropped_and_the_head_reanchored(
    deployment: Deployment, tmp_db: Path
) -> None:
    key = registered_log_key(deployment)
    log = new_log(7)
    anchorer = make_anchorer(deployment, log, key, tmp_db)
    client = deployment.anchorer
    # Another transaction anchors size 7; ours, for size 5, was signed without re-simulating
    # and follows it with the next nonce: it is mined, and reverts.
    overtaking = client.anchor(anchorer.store, anchorer.chain_log_id, 7, log.root(7), b"{}", 0.0)
    base = base_tx(client.w3, client.account, client.fees, 150_000)
    base["nonce"] = overtaking.nonce + 1
    call = client.contract.functions.anchor(anchorer.chain_log_id, 5, log.root(5))
    signed = client.account.sign_transaction(unsigned(call, base))
    stale = replace(overtaking, tree_size=5, root=log.root(5), nonce=overtaking.nonce + 1,
                    tx_hash=bytes(signed.hash), raw_tx=bytes(signed.raw_transaction))
    anchorer.store.record_sent(stale)
    client.send(stale)
    with pytest.raises(TransactionFailed):
        client.wait_for_receipt(stale.tx_hash)
    grow(log, 3)
    settle(anchorer, 1.0)
    assert anchored_sizes(deployment, anchorer.chain_log_id) == [7, 10]
    assert anchorer.store.count(anchorer.chain_log_id, "dropped") == 1
