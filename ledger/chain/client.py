"""The CustodyAnchor client: deploy, manage roles, register logs, anchor and read checkpoints.

Explicit policy, in one place: the chain id is checked on connect (see `provider`); every write
is simulated with `eth_call` first so a refusal comes back as a typed `ContractRevert` without
spending gas; the nonce is the sender's pending count; an anchor's `(nonce, tx hash, root)` and
signed raw bytes are persisted before sending; only idempotent requests (reads, re-sending the
same signed bytes) are retried, with capped backoff; receipts are awaited with a deadline.
Fees and error mapping live in `txpolicy`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import BlockNotFound, TransactionNotFound, Web3RPCError

from ledger.chain.contract_artifact import load_artifact
from ledger.chain.errors import ChainUnavailable, ReceiptTimeout, TransactionFailed
from ledger.chain.pending import PendingAnchor, PendingAnchorStore
from ledger.chain.txpolicy import (
    FeePolicy,
    base_tx,
    guarded,
    is_duplicate_send,
    send_and_wait,
    unsigned,
    with_retries,
)

__all__ = ["AnchorReceipt", "AnchoredEvent", "CustodyAnchorClient", "FeePolicy",
           "OnChainCheckpoint", "guarded", "with_retries"]

ANCHOR_GAS: Final = 150_000
"""Measured at about 100k for a log's first anchor (three fresh storage slots); the margin covers
later Solidity versions without letting a runaway call burn a block."""
ADMIN_GAS: Final = 120_000
DEPLOY_GAS: Final = 2_000_000
MAX_EVENTS_PER_QUERY: Final = 10_000
"""`Anchored` events returned by one read; larger ranges are paged by the caller."""
POLL_INTERVAL_S: Final = 0.05


@dataclass(frozen=True, slots=True)
class OnChainCheckpoint:
    """The latest checkpoint the contract holds for a log (size 0: none yet)."""

    tree_size: int
    root: bytes
    block_number: int


@dataclass(frozen=True, slots=True)
class AnchorReceipt:
    """A mined transaction: where it landed, what it cost, how deep it is."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    gas_used: int
    confirmations: int


@dataclass(frozen=True, slots=True)
class AnchoredEvent:
    log_id: bytes
    tree_size: int
    root: bytes
    anchorer: str
    block_number: int
    tx_hash: bytes


@dataclass
class CustodyAnchorClient:
    """Drives one deployed CustodyAnchor contract from one local account."""

    w3: Web3
    address: str
    account: LocalAccount
    fees: FeePolicy = field(default_factory=FeePolicy)
    contract: Contract = field(init=False)

    def __post_init__(self) -> None:
        artifact = load_artifact()
        self.contract = self.w3.eth.contract(
            address=Web3.to_checksum_address(self.address), abi=artifact.abi
        )

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        account: LocalAccount,
        admin: str | None = None,
        fees: FeePolicy | None = None,
    ) -> CustodyAnchorClient:
        """Deploy a fresh contract with `admin` (default: `account`) as consortium admin."""
        artifact = load_artifact()
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        policy = fees or FeePolicy()
        tx = unsigned(factory.constructor(admin or account.address),
                       base_tx(w3, account, policy, DEPLOY_GAS))
        # Simulate first, so a refused constructor (ZeroAdmin) surfaces as a typed error.
        guarded(lambda: w3.eth.call({"from": account.address, "data": tx["data"]}))
        receipt = send_and_wait(w3, account, tx)
        return cls(w3, str(receipt["contractAddress"]), account, policy)

    # -- roles and logs (consortium admin) -------------------------------------------------

    def anchorer_role(self, agency_id: bytes) -> bytes:
        return bytes(with_retries(self.contract.functions.anchorerRole(agency_id).call))

    def grant_anchorer(self, agency_id: bytes, account: str) -> AnchorReceipt:
        """Give `account` the right to anchor the logs of `agency_id`."""
        role = self.anchorer_role(agency_id)
        return self._transact(self.contract.functions.grantRole(role, account))

    def revoke_anchorer(self, agency_id: bytes, account: str) -> AnchorReceipt:
        role = self.anchorer_role(agency_id)
        return self._transact(self.contract.functions.revokeRole(role, account))

    def is_anchorer(self, agency_id: bytes, account: str) -> bool:
        role = self.anchorer_role(agency_id)
        return bool(with_retries(self.contract.functions.hasRole(role, account).call))

    def register_log(self, log_id: bytes, agency_id: bytes) -> AnchorReceipt:
        return self._transact(self.contract.functions.registerLog(log_id, agency_id))

    # -- anchoring ------------------------------------------------------------------------

    def prepare_anchor(
        self, log_id: bytes, tree_size: int, root: bytes, checkpoint: bytes, now: float
    ) -> PendingAnchor:
        """Simulate and sign an anchor; nothing is sent (persist the result, then `send`)."""
        call = self.contract.functions.anchor(log_id, tree_size, root)
        with_retries(lambda: call.call({"from": self.account.address}))
        base = with_retries(lambda: base_tx(self.w3, self.account, self.fees, ANCHOR_GAS))
        signed = self.account.sign_transaction(unsigned(call, base))
        return PendingAnchor(
            log_id=log_id,
            tree_size=tree_size,
            root=root,
            nonce=int(base["nonce"]),
            tx_hash=bytes(signed.hash),
            raw_tx=bytes(signed.raw_transaction),
            sender=self.account.address,
            checkpoint=checkpoint,
            created_at=now,
        )

    def anchor(
        self,
        store: PendingAnchorStore,
        log_id: bytes,
        tree_size: int,
        root: bytes,
        checkpoint: bytes,
        now: float,
    ) -> PendingAnchor:
        """Prepare, persist, then send one anchor transaction."""
        pending = self.prepare_anchor(log_id, tree_size, root, checkpoint, now)
        store.record_sent(pending)
        self.send(pending)
        return pending

    def send(self, pending: PendingAnchor) -> None:
        """(Re-)send the signed bytes: the same hash every time, so retrying is safe."""

        def push() -> None:
            try:
                self.w3.eth.send_raw_transaction(pending.raw_tx)
            except (ValueError, Web3RPCError, EthValidationError) as exc:
                # "already known"/"nonce too low" after a lost answer: the outcome is read from
                # the chain by reconciliation, never guessed here.
                if not is_duplicate_send(exc):
                    raise

        with_retries(push)

    def is_known(self, tx_hash: bytes) -> bool:
        """Whether the node knows the transaction (mined or in its pool)."""

        def lookup() -> bool:
            try:
                self.w3.eth.get_transaction(HexBytes(tx_hash))
            except TransactionNotFound:
                return False
            return True

        return with_retries(lookup)

    def receipt(self, tx_hash: bytes) -> AnchorReceipt | None:
        """The receipt if the transaction is mined on the current chain, else None."""

        def lookup() -> AnchorReceipt | None:
            try:
                r = self.w3.eth.get_transaction_receipt(HexBytes(tx_hash))
            except TransactionNotFound:
                return None
            if r["status"] != 1:
                raise TransactionFailed(f"transaction 0x{tx_hash.hex()} reverted on chain")
            head = int(self.w3.eth.block_number)
            number = int(r["blockNumber"])
            return AnchorReceipt(
                tx_hash, number, bytes(r["blockHash"]), int(r["gasUsed"]), head - number + 1
            )

        return with_retries(lookup)

    def wait_for_receipt(
        self, tx_hash: bytes, confirmations: int = 1, timeout_s: float = 30.0
    ) -> AnchorReceipt:
        """Block until the transaction has `confirmations` blocks on top, or the deadline."""
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.receipt(tx_hash)
            if found is not None and found.confirmations >= confirmations:
                return found
            if time.monotonic() >= deadline:
                state = "unmined" if found is None else f"{found.confirmations} confirmations"
                raise ReceiptTimeout(f"0x{tx_hash.hex()} still {state} after {timeout_s}s")
            time.sleep(POLL_INTERVAL_S)

    def has_code(self) -> bool:
        """Whether the contract's address holds code on this chain: none means a wrong address
        or a chain that was replaced (reset, restored empty) since the contract was deployed."""
        return len(with_retries(lambda: self.w3.eth.get_code(self.contract.address))) > 0

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block `number` on the current chain, None when it has no such block."""

        def lookup() -> bytes | None:
            try:
                return bytes(self.w3.eth.get_block(number)["hash"])
            except BlockNotFound:
                return None

        return with_retries(lookup)

    def head(self) -> tuple[int, bytes]:
        """The latest block's number and hash."""
        block = with_retries(lambda: self.w3.eth.get_block("latest"))
        return int(block["number"]), bytes(block["hash"])

    def genesis_hash(self) -> bytes:
        """The hash of block 0: a chain restarted empty has another, even at the same id."""
        found = self.block_hash(0)
        if found is None:
            raise ChainUnavailable("the node has no genesis block")
        return found

    def pending_nonce(self) -> int:
        return int(with_retries(lambda: self.w3.eth.get_transaction_count(
            self.account.address, "pending")))

    def mined_nonce(self) -> int:
        return int(with_retries(lambda: self.w3.eth.get_transaction_count(
            self.account.address, "latest")))

    # -- reads ----------------------------------------------------------------------------

    def latest_checkpoint(self, log_id: bytes) -> OnChainCheckpoint:
        size, root, block = with_retries(self.contract.functions.latestCheckpoint(log_id).call)
        return OnChainCheckpoint(int(size), bytes(root), int(block))

    def root_at(self, log_id: bytes, tree_size: int) -> bytes:
        return bytes(with_retries(self.contract.functions.rootAt(log_id, tree_size).call))

    def anchored_events(
        self, log_id: bytes, from_block: int, to_block: int | str = "latest"
    ) -> list[AnchoredEvent]:
        """`Anchored` events of one log; an index in the database is the fast path, not this."""
        event = self.contract.events.Anchored
        logs = with_retries(lambda: event.get_logs(
            from_block=from_block, to_block=to_block, argument_filters={"logId": log_id}))
        return [
            AnchoredEvent(
                bytes(e["args"]["logId"]), int(e["args"]["treeSize"]), bytes(e["args"]["root"]),
                str(e["args"]["anchorer"]), int(e["blockNumber"]), bytes(e["transactionHash"]),
            )
            for e in logs[:MAX_EVENTS_PER_QUERY]
        ]

    def _transact(self, call: Any) -> AnchorReceipt:
        with_retries(lambda: call.call({"from": self.account.address}))
        base = with_retries(lambda: base_tx(self.w3, self.account, self.fees, ADMIN_GAS))
        r = send_and_wait(self.w3, self.account, unsigned(call, base))
        return AnchorReceipt(
            bytes(r["transactionHash"]), int(r["blockNumber"]), bytes(r["blockHash"]),
            int(r["gasUsed"]), 1,
        )


