"""Chain fixtures: every client and anchorer test runs on the embedded py-evm chain AND on a
real anvil node started fresh for the module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from anvil_node import AnvilNode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import EMBEDDED_URL, connect


@dataclass
class ChainHarness:
    """A chain the tests can drive: fund accounts, mine, snapshot and revert."""

    kind: str
    w3: Web3
    url: str
    node: AnvilNode | None = None

    def rpc(self, method: str, params: list[Any] | None = None) -> Any:
        response = self.w3.provider.make_request(method, params or [])  # type: ignore[arg-type]
        assert "error" not in response, response
        return response.get("result")

    def new_account(self, wei: int = 10**18) -> LocalAccount:
        account: LocalAccount = Account.create()
        tx = self.w3.eth.send_transaction(
            {"from": self.w3.eth.accounts[0], "to": account.address, "value": wei}
        )
        self.w3.eth.wait_for_transaction_receipt(tx, timeout=30)
        return account

    def mine(self, blocks: int = 1) -> None:
        for _ in range(blocks):
            self.rpc("evm_mine")

    def snapshot(self) -> Any:
        return self.rpc("evm_snapshot")

    def revert(self, snapshot_id: Any) -> None:
        result = self.rpc("evm_revert", [snapshot_id])
        # eth-tester answers null; anvil answers true. Callers check the effect themselves.
        assert result is True or (self.kind == "embedded" and result is None)


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ChainHarness]:
    if request.param == "embedded":
        yield ChainHarness("embedded", connect(EMBEDDED_URL), EMBEDDED_URL)
        return
    node = AnvilNode(tmp_path_factory.mktemp("anvil"))
    node.start()
    try:
        yield ChainHarness("anvil", connect(node.url, expected_chain_id=node.chain_id),
                           node.url, node)
    finally:
        node.stop()


@dataclass
class Deployment:
    """A fresh contract with one registered log and one granted anchorer."""

    admin: CustodyAnchorClient
    anchorer: CustodyAnchorClient
    log_id: bytes
    agency_id: bytes


@pytest.fixture
def deployment(chain: ChainHarness) -> Deployment:
    admin_account = chain.new_account()
    admin = CustodyAnchorClient.deploy(chain.w3, admin_account)
    anchorer_account = chain.new_account()
    log_id, agency_id = os.urandom(32), os.urandom(32)
    admin.register_log(log_id, agency_id)
    admin.grant_anchorer(agency_id, anchorer_account.address)
    return Deployment(admin, CustodyAnchorClient(chain.w3, admin.address, anchorer_account),
                      log_id, agency_id)


@pytest.fixture
def tmp_db(tmp_path: Path) -> Path:
    return tmp_path / "pending.sqlite"
