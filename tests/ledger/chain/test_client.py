"""The chain client on both chains: connecting, fees, persisting before sending, idempotent
re-sends, receipts with deadlines, and the pending-anchor store."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain.client import CustodyAnchorClient, FeePolicy
from ledger.chain.errors import (
    ChainIdMismatch,
    ChainUnavailable,
    PendingStoreError,
    ReceiptTimeout,
)
from ledger.chain.pending import PendingAnchor, SqlitePendingAnchorStore
from ledger.chain.provider import MAX_URL_CHARS, connect
from tests.fixtures.ports import free_port
from tests.ledger.chain.anvil_node import AnvilNode
from tests.ledger.chain.chain_support import ChainHarness, Deployment


def test_connect_checks_chain_id(chain: ChainHarness) -> None:
    right = chain.w3.eth.chain_id
    assert connect(chain.url, expected_chain_id=right).eth.chain_id == right
    with pytest.raises(ChainIdMismatch) as caught:
        connect(chain.url, expected_chain_id=right + 1)
    assert (caught.value.expected, caught.value.found) == (right + 1, right)


def test_connect_refuses_bad_urls() -> None:
    with pytest.raises(ValueError, match="scheme"):
        connect("ftp://127.0.0.1:1")
    with pytest.raises(ValueError, match="longer"):
        connect("http://" + "a" * MAX_URL_CHARS)


def test_unreachable_node_is_typed_and_hides_credentials() -> None:
    port = free_port()
    with pytest.raises(ChainUnavailable) as caught:
        connect(f"http://agency:s3cret@127.0.0.1:{port}", timeout=1.0)
    assert "s3cret" not in str(caught.value) and str(port) in str(caught.value)
    with pytest.raises(ChainUnavailable):
        connect(f"ws://127.0.0.1:{port}", timeout=1.0)


def test_anchor_persists_before_sending(chain: ChainHarness, deployment: Deployment,
                                        tmp_db: Path) -> None:
    client = deployment.anchorer
    seen: list[bool] = []

    class WitnessStore(SqlitePendingAnchorStore):
        def record_sent(self, anchor: PendingAnchor) -> None:
            # At the moment of persisting, the node must not know the transaction yet.
            seen.append(client.is_known(anchor.tx_hash))
            super().record_sent(anchor)

    store = WitnessStore(tmp_db)
    root = os.urandom(32)
    sent = client.anchor(store, deployment.log_id, 5, root, b'{"cp":1}', 12.5)
    assert seen == [False]
    receipt = client.wait_for_receipt(sent.tx_hash)
    (row,) = store.unfinished(deployment.log_id)
    assert (row.tx_hash, row.nonce, row.root, row.tree_size, row.checkpoint, row.created_at) == (
        sent.tx_hash, sent.nonce, root, 5, b'{"cp":1}', 12.5)
    assert receipt.gas_used > 21_000 and receipt.confirmations >= 1
    # EIP-1559 by default where the node reports a base fee.
    assert chain.w3.eth.get_transaction(sent.tx_hash)["type"] == 2


def test_resending_the_same_bytes_is_idempotent(chain: ChainHarness, deployment: Deployment,
                                                tmp_db: Path) -> None:
    client = deployment.anchorer
    store = SqlitePendingAnchorStore(tmp_db)
    before = client.mined_nonce()
    sent = client.anchor(store, deployment.log_id, 3, os.urandom(32), b"{}", 0.0)
    client.send(sent)
    client.wait_for_receipt(sent.tx_hash)
    client.send(sent)  # already mined: refused by the node as known / nonce too low, no error
    assert client.mined_nonce() == before + 1
    assert [e.tree_size for e in client.anchored_events(deployment.log_id, 0)] == [3]


def test_nonce_comes_from_the_pending_count(chain: ChainHarness, deployment: Deployment,
                                            tmp_db: Path) -> None:
    client = deployment.anchorer
    store = SqlitePendingAnchorStore(tmp_db)
    first = client.anchor(store, deployment.log_id, 1, os.urandom(32), b"{}", 0.0)
    second = client.anchor(store, deployment.log_id, 2, os.urandom(32), b"{}", 0.0)
    assert second.nonce == first.nonce + 1
    client.wait_for_receipt(second.tx_hash)
    assert client.latest_checkpoint(deployment.log_id).tree_size == 2


def test_receipt_deadline(chain: ChainHarness, deployment: Deployment) -> None:
    client = deployment.anchorer
    assert client.receipt(os.urandom(32)) is None
    with pytest.raises(ReceiptTimeout, match="unmined"):
        client.wait_for_receipt(os.urandom(32), timeout_s=0.2)
    grant = deployment.admin.grant_anchorer(os.urandom(32), client.account.address)
    with pytest.raises(ReceiptTimeout, match="confirmations"):
        client.wait_for_receipt(grant.tx_hash, confirmations=10_000, timeout_s=0.2)
    chain.mine(2)
    assert client.wait_for_receipt(grant.tx_hash, confirmations=3).confirmations >= 3


def test_free_gas_network(tmp_path: Path) -> None:
    """A Besu free-gas network: zero base fee, gas price 0, and accounts holding no ether."""
    node = AnvilNode(tmp_path, extra=["--base-fee", "0", "--gas-price", "0"])
    node.start()
    try:
        w3 = connect(node.url, expected_chain_id=node.chain_id)
        free = FeePolicy(gas_price=0)
        admin = CustodyAnchorClient.deploy(w3, Account.create(), fees=free)
        anchorer = CustodyAnchorClient(w3, admin.address, Account.create(), free)
        log_id, agency_id = os.urandom(32), os.urandom(32)
        admin.register_log(log_id, agency_id)
        admin.grant_anchorer(agency_id, anchorer.account.address)
        sent = anchorer.anchor(SqlitePendingAnchorStore(tmp_path / "p.sqlite"), log_id, 1,
                               os.urandom(32), b"{}", 0.0)
        anchorer.wait_for_receipt(sent.tx_hash)
        assert w3.eth.get_balance(anchorer.account.address) == 0
        assert w3.eth.get_transaction(sent.tx_hash)["gasPrice"] == 0
        # EIP-1559 with a zero base fee works the same way.
        eip1559 = replace(anchorer, fees=FeePolicy(max_priority_fee=0))
        sent = eip1559.anchor(SqlitePendingAnchorStore(tmp_path / "q.sqlite"), log_id, 2,
                              os.urandom(32), b"{}", 0.0)
        eip1559.wait_for_receipt(sent.tx_hash)
        assert w3.eth.get_transaction(sent.tx_hash)["type"] == 2
    finally:
        node.stop()


def _row(tx_hash: bytes, log_id: bytes = b"L" * 32, size: int = 1) -> PendingAnchor:
    return PendingAnchor(log_id, size, b"R" * 32, 0, tx_hash, b"raw", "0xabc", b"{}", 1.0)


def test_pending_store_survives_reopen_and_refuses_contradictions(tmp_db: Path) -> None:
    store = SqlitePendingAnchorStore(tmp_db)
    store.record_sent(_row(b"A" * 32))
    with pytest.raises(PendingStoreError, match="already recorded"):
        store.record_sent(_row(b"A" * 32))  # replayed insert
    with pytest.raises(PendingStoreError, match="never recorded"):
        store.update(replace(_row(b"B" * 32), state="final"))
    store.update(replace(_row(b"A" * 32), state="mined", block_number=7, block_hash=b"H" * 32))
    store.close()
    reopened = SqlitePendingAnchorStore(tmp_db)
    (row,) = reopened.unfinished(b"L" * 32)
    assert (row.state, row.block_number, row.block_hash) == ("mined", 7, b"H" * 32)
    reopened.update(replace(row, state="final"))
    assert reopened.unfinished(b"L" * 32) == []
    assert reopened.latest_final(b"L" * 32) == replace(row, state="final")
    assert reopened.count(b"L" * 32, "final") == 1
    assert reopened.latest_final(b"X" * 32) is None


@pytest.mark.parametrize("sender", [
    "0x" + (b"b'" + bytes(18)).hex(),             # repr picks b"...", with b' inside it
    "0x" + (b"'\"b'" + bytes(16)).hex(),          # both quotes: repr escapes one of them
    "0x" + (b'"' * 20).hex(),
])
def test_refusal_is_named_whatever_bytes_the_revert_carries(
        chain: ChainHarness, deployment: Deployment, sender: str) -> None:
    # The revert data holds the sender, so its bytes are the caller's choice; on the embedded
    # chain they come back as a bytes repr whose quoting depends on them.
    from web3 import Web3

    from ledger.chain.errors import ContractRevert
    from ledger.chain.txpolicy import guarded

    caller = Web3.to_checksum_address(sender)
    chain.w3.eth.wait_for_transaction_receipt(chain.w3.eth.send_transaction(
        {"from": chain.w3.eth.accounts[0], "to": caller, "value": 10**18}), timeout=30)
    call = deployment.admin.contract.functions.anchor(deployment.log_id, 1, bytes(32))
    with pytest.raises(ContractRevert) as caught:
        guarded(lambda: call.call({"from": caller}))
    assert caught.value.error_name == "NotAnchorer"
    assert caught.value.arguments["account"].lower() == sender
    assert caught.value.arguments["logId"] == deployment.log_id


def test_a_pending_store_from_before_contracts_is_upgraded_and_scoped(tmp_db: Path) -> None:
    import sqlite3

    old = sqlite3.connect(tmp_db)
    old.executescript("""
        CREATE TABLE pending_anchor (tx_hash BLOB PRIMARY KEY, log_id BLOB NOT NULL,
            tree_size INTEGER NOT NULL, root BLOB NOT NULL, nonce INTEGER NOT NULL,
            raw_tx BLOB NOT NULL, sender TEXT NOT NULL, checkpoint BLOB NOT NULL,
            created_at REAL NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('sent', 'mined', 'final', 'dropped')),
            block_number INTEGER, block_hash BLOB);
        CREATE INDEX pending_anchor_log ON pending_anchor (log_id, state, tree_size);
        INSERT INTO pending_anchor VALUES (x'01', x'4c', 3, x'02', 0, x'03', '0xsender', x'04',
            1.0, 'final', 7, x'05');
        INSERT INTO pending_anchor VALUES (x'06', x'4c', 4, x'02', 1, x'03', '0xsender', x'04',
            2.0, 'sent', NULL, NULL);
    """)
    old.close()
    store = SqlitePendingAnchorStore(tmp_db, "0xAbC")  # the contract in use until now
    final = store.latest_final(b"L")
    assert final is not None and (final.tree_size, final.block_number) == (3, 7)
    assert [a.tree_size for a in store.unfinished(b"L")] == [4]
    store.close()
    other = SqlitePendingAnchorStore(tmp_db, "0xdef")  # a new contract starts afresh
    assert other.latest_final(b"L") is None and other.unfinished(b"L") == []
    other.close()
    same = SqlitePendingAnchorStore(tmp_db, "0xabc")
    assert same.mark_lost(b"L") == 2
    assert same.count(b"L", "lost") == 2 and same.latest_final(b"L") is None
    assert same.unfinished(b"L") == []
    same.close()
