"""What only a real node can show: the node going down and coming back (with its chain, without
its transaction pool) while the anchorer keeps working, and the WebSocket transport. anvil,
fresh for this module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain.anchorer import MAX_BACKOFF_S, AnchorPolicy
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import ChainUnavailable
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import connect
from ledger.core.merkle import verify_consistency
from tests.ledger.chain.anchoring_helpers import (
    grow,
    make_anchorer,
    new_log,
    registered_log_key,
    settle,
)
from tests.ledger.chain.anvil_node import AnvilNode
from tests.ledger.chain.chain_support import ChainHarness, Deployment


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AnvilNode]:
    anvil = AnvilNode(tmp_path_factory.mktemp("anvil-faults"))
    anvil.start()
    try:
        yield anvil
    finally:
        anvil.stop()


@pytest.fixture
def harness(node: AnvilNode) -> ChainHarness:
    node.start()  # a test that failed half-way may have left it stopped
    return ChainHarness("anvil", connect(node.url, expected_chain_id=node.chain_id), node.url,
                        node)


@pytest.fixture
def deployed(harness: ChainHarness) -> Deployment:
    admin = CustodyAnchorClient.deploy(harness.w3, harness.new_account())
    anchorer_account = harness.new_account()
    log_id, agency_id = os.urandom(32), os.urandom(32)
    admin.register_log(log_id, agency_id)
    admin.grant_anchorer(agency_id, anchorer_account.address)
    return Deployment(admin, CustodyAnchorClient(harness.w3, admin.address, anchorer_account),
                      log_id, agency_id)


def test_node_down_then_back_no_gap_no_double(node: AnvilNode, deployed: Deployment,
                                              tmp_path: Path) -> None:
    key = registered_log_key(deployed)
    log = new_log(5)
    anchorer = make_anchorer(deployed, log, key, tmp_path / "p.sqlite",
                             AnchorPolicy(interval_s=1, max_new_leaves=4))
    settle(anchorer, 0.0)
    node.stop()
    now = 10.0
    for _ in range(4):  # outages back off and are counted, never raised
        grow(log, 3)
        anchorer.step(now)
        now += MAX_BACKOFF_S + 1
    assert anchorer.metrics.node_failures >= 3
    assert anchorer.last_error is not None and "node request failed" in anchorer.last_error
    assert anchorer.backlog == 12
    node.start()
    settle(anchorer, now)
    sizes = [e.tree_size for e in deployed.anchorer.anchored_events(anchorer.chain_log_id, 0)]
    assert sizes == [5, 17]  # no double anchor; the outage's leaves go in one checkpoint
    events = deployed.anchorer.anchored_events(anchorer.chain_log_id, 0)
    verify_consistency(5, 17, events[0].root, events[1].root, log.consistency_proof(5, 17))
    assert anchorer.backlog == 0 and anchorer.last_error is None


def test_node_restart_loses_the_pool_and_the_anchor_is_resent(
    node: AnvilNode, harness: ChainHarness, deployed: Deployment, tmp_path: Path
) -> None:
    key = registered_log_key(deployed)
    log = new_log(9)
    anchorer = make_anchorer(deployed, log, key, tmp_path / "p.sqlite")
    harness.rpc("evm_setIntervalMining", [0])  # hold the transaction in the pool
    anchorer.step(0.0)
    (sent,) = anchorer.store.unfinished(anchorer.chain_log_id)
    assert deployed.anchorer.is_known(sent.tx_hash)
    assert deployed.anchorer.receipt(sent.tx_hash) is None
    node.stop()
    node.start()  # the chain is restored from its state file; the pool is not
    resends_before = anchorer.metrics.resends
    settle(anchorer, 1.0)
    assert anchorer.metrics.resends == resends_before + 1
    receipt = deployed.anchorer.receipt(sent.tx_hash)
    assert receipt is not None  # the very same transaction, re-sent
    sizes = [e.tree_size for e in deployed.anchorer.anchored_events(anchorer.chain_log_id, 0)]
    assert sizes == [9]


def test_unfunded_anchorer_is_reported_not_crashed(deployed: Deployment, harness: ChainHarness,
                                                   tmp_path: Path) -> None:
    key = registered_log_key(deployed)
    broke = CustodyAnchorClient(harness.w3, deployed.admin.address, Account.create())
    deployed.admin.grant_anchorer(deployed.agency_id, broke.account.address)
    anchorer = make_anchorer(deployed, new_log(3), key, tmp_path / "p.sqlite", client=broke)
    anchorer.step(0.0)
    assert anchorer.metrics.anchors_sent == 0
    assert anchorer.last_error is not None and "funds" in anchorer.last_error.lower()


def test_websocket_transport(node: AnvilNode, deployed: Deployment, tmp_path: Path) -> None:
    w3 = connect(node.ws_url, expected_chain_id=node.chain_id)
    client = CustodyAnchorClient(w3, deployed.admin.address, deployed.anchorer.account)
    sent = client.anchor(SqlitePendingAnchorStore(tmp_path / "p.sqlite"), deployed.log_id, 9,
                         os.urandom(32), b"{}", 0.0)
    assert client.wait_for_receipt(sent.tx_hash).block_number > 0
    assert client.latest_checkpoint(deployed.log_id).tree_size == 9
    # The socket drops with the node and comes back on the next request.
    node.stop()
    with pytest.raises(ChainUnavailable):
        client.latest_checkpoint(deployed.log_id)
    node.start()
    assert client.latest_checkpoint(deployed.log_id).tree_size == 9
