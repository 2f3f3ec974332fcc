"""The chain tests' harness types, shared by the chain test modules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.chain.client import CustodyAnchorClient
from tests.ledger.chain.anvil_node import AnvilNode


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


@dataclass
class Deployment:
    """A fresh contract with one registered log and one granted anchorer."""

    admin: CustodyAnchorClient
    anchorer: CustodyAnchorClient
    log_id: bytes
    agency_id: bytes
