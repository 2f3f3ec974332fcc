"""The anchorer: puts signed checkpoints of one Merkle log on chain, without gaps or doubles.

Each `step(now)` first settles the anchor in flight (the pending store says which): final once
it has enough confirmations; back to "sent" and re-sent, byte for byte, when a reorg or a node
restart made it vanish; dropped only when its nonce went to another transaction. With nothing in
flight it reads the latest on-chain checkpoint and, every `interval_s` or as soon as
`max_new_leaves` leaves wait, signs the log's current head, checks the log's consistency proof
from the anchored checkpoint, and anchors it. One anchor at a time: the contract demands strictly
increasing tree sizes, so a strict sequence is both simpler and gap-free. Node outages back off
exponentially (capped); the loop never gives up.

A final anchor is re-checked on every step: its transaction must still be mined in the block
recorded (a receipt in another block means the chain was restored and the same bytes mined
again: the row moves to the new block, and whoever copied the old one must copy it again), and
the contract must still hold at least its tree size with its root. A contract that contradicts
a final anchor whose transaction is still there raises `ChainReplaced`: that is no reorg, and
the anchorer never decides alone to anchor again on such a chain.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import (
    ChainReplaced,
    ChainUnavailable,
    ConsistencyError,
    ContractRevert,
    NodeRejected,
    TransactionFailed,
)
from ledger.chain.pending import PendingAnchor, PendingAnchorStore
from ledger.core.checkpoint import Checkpoint, chain_log_id, sign_checkpoint
from ledger.core.envelope import key_id
from ledger.core.errors import ProofError
from ledger.core.merkle import verify_consistency
from ledger.core.records import format_time

MAX_BACKOFF_S: Final = 30.0
"""A node down for hours is retried at least this often, so anchoring resumes promptly."""
FIRST_BACKOFF_S: Final = 0.25


class AnchoredLog(Protocol):
    """What the anchorer needs from a Merkle log (`ledger.merkle_log.MerkleLog` fits)."""

    @property
    def size(self) -> int: ...

    def root(self, size: int | None = None) -> bytes: ...

    def consistency_proof(self, size1: int, size2: int | None = None) -> Sequence[bytes]: ...


@dataclass(frozen=True, slots=True)
class AnchorPolicy:
    """When to anchor and when an anchor counts as done."""

    interval_s: float = 60.0
    max_new_leaves: int = 10_000
    confirmations: int = 1


@dataclass(frozen=True, slots=True)
class AnchorerMetrics:
    """What the anchorer exposes for monitoring, refreshed on every step."""

    log_size: int = 0
    anchored_size: int = 0
    backlog: int = 0
    lag_s: float = 0.0
    anchors_sent: int = 0
    anchors_final: int = 0
    resends: int = 0
    reorgs: int = 0
    node_failures: int = 0
    last_gas_used: int = 0


class Anchorer:
    """Anchors one log from one account; all chain state lives on chain and in the store."""

    def __init__(
        self,
        log: AnchoredLog,
        log_key: Ed25519PrivateKey,
        client: CustodyAnchorClient,
        store: PendingAnchorStore,
        policy: AnchorPolicy | None = None,
        on_metrics: Callable[[AnchorerMetrics], None] | None = None,
        heads: Callable[[int], bytes] | None = None,
    ) -> None:
        self.log = log
        # The head map root at a size (`ledger.core.heads`), committed in each checkpoint.
        self.heads = heads
        self.log_key = log_key
        self.log_id = key_id(log_key.public_key())
        self.chain_log_id = chain_log_id(self.log_id)
        self.client = client
        self.store = store
        self.policy = policy or AnchorPolicy()
        self.on_metrics = on_metrics
        self.metrics = AnchorerMetrics()
        self._last_anchor_at: float | None = None
        self._unanchored_since: float | None = None
        self._last_step_at: float | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF_S
        self.last_error: str | None = None
        # The failure behind `last_error`: its type tells an outage from a refusal.
        self.last_failure: Exception | None = None

    @property
    def backlog(self) -> int:
        return self.metrics.backlog

    @property
    def lag_s(self) -> float:
        return self.metrics.lag_s

    def step(self, now: float) -> None:
        """Do at most one round of work; `now` is wall-clock seconds (injected for tests).

        Raises ConsistencyError (the log no longer extends what is on chain: never anchor that)
        and ChainReplaced (the chain contradicts a final anchor); node outages and contract
        refusals are absorbed into backoff and `last_error`.
        """
        if now < self._retry_at:
            return
        try:
            if self._settle_in_flight() and self._due(now):
                self._anchor_head(now)
                self._settle_in_flight()
        except ChainUnavailable as exc:
            self._count(node_failures=1)
            self._back_off(now, exc)
        except (ContractRevert, NodeRejected) as exc:
            # A refusal such as a revoked role or an empty account: keep trying slowly, say why.
            self._backoff = MAX_BACKOFF_S
            self._back_off(now, exc)
        else:
            self._backoff = FIRST_BACKOFF_S
            self.last_error = None
            self.last_failure = None
        self._refresh(now)

    def settle(self) -> bool:
        """Move in-flight anchors on without sending a new one; True when none is on its way:
        none is in the node's pool or mined short of its confirmations. (One the node has not
        got, such as a re-send it refused, is not on its way: it waits in the store for this
        process's next round as anchorer.) What a process giving up the anchorer's role does
        before it lets go, so the next holder does not anchor beside one of ours."""
        try:
            if self._settle_in_flight():
                return True
            return not any(anchor.state == "mined" or self.client.is_known(anchor.tx_hash)
                           for anchor in self.store.unfinished(self.chain_log_id))
        except (ChainUnavailable, ContractRevert, NodeRejected) as exc:
            self.last_error = str(exc)
            self.last_failure = exc
            return False

    def _back_off(self, now: float, exc: Exception) -> None:
        self.last_error = str(exc)
        self.last_failure = exc
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF_S)

    def run(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        """Step until `stop` is set (the API runs this in a thread)."""
        while not stop.is_set():
            self.step(time.time())
            stop.wait(poll_s)

    def _settle_in_flight(self) -> bool:
        """Move in-flight anchors on; True when none is left in flight."""
        self._reopen_vanished_final()
        settled = True
        for anchor in self.store.unfinished(self.chain_log_id):
            settled = self._settle(anchor) and settled
        return settled

    def _reopen_vanished_final(self) -> None:
        final = self.store.latest_final(self.chain_log_id)
        if final is None:
            return
        receipt = self.client.receipt(final.tx_hash)
        if receipt is not None:
            self._check_final(final, receipt.block_number, receipt.block_hash)
            return
        # A reorg deeper than our confirmation depth removed a final anchor: put it back in
        # flight, so it is re-sent (same bytes) or, if its nonce is gone, anchored afresh.
        self.store.update(replace(final, state="sent", block_number=None, block_hash=None))
        self._count(reorgs=1)
        self._last_anchor_at = None

    def _check_final(self, final: PendingAnchor, number: int, block: bytes) -> None:
        """The final anchor's transaction is mined: in the block recorded, on a contract that
        still holds its checkpoint."""
        if block != final.block_hash:
            # Mined again elsewhere (a chain restored from an older state, the bytes re-sent):
            # the anchor stands, in its new block.
            self.store.update(replace(final, block_number=number, block_hash=block))
            self._count(reorgs=1)
        on_chain = self.client.latest_checkpoint(self.chain_log_id)
        if on_chain.tree_size < final.tree_size or (
                on_chain.tree_size == final.tree_size and on_chain.root != final.root):
            raise ChainReplaced(
                f"the contract holds size {on_chain.tree_size} but our final anchor of size "
                f"{final.tree_size} (transaction 0x{final.tx_hash.hex()}) is mined")

    def _settle(self, anchor: PendingAnchor) -> bool:
        try:
            receipt = self.client.receipt(anchor.tx_hash)
        except TransactionFailed:
            # Mined but reverted (the chain moved between simulation and mining): its nonce is
            # spent and nothing was anchored, so the head is anchored afresh.
            self.store.update(replace(anchor, state="dropped"))
            return True
        if receipt is not None:
            if receipt.confirmations >= self.policy.confirmations:
                self.store.update(replace(anchor, state="final", block_number=receipt.block_number,
                                          block_hash=receipt.block_hash))
                self._count(anchors_final=1, last_gas_used=receipt.gas_used)
                return True
            if anchor.state != "mined" or anchor.block_hash != receipt.block_hash:
                self.store.update(replace(anchor, state="mined", block_number=receipt.block_number,
                                          block_hash=receipt.block_hash))
            return False
        if anchor.state == "mined":
            # It was mined and is gone: the block was reorganised away.
            anchor = replace(anchor, state="sent", block_number=None, block_hash=None)
            self.store.update(anchor)
            self._count(reorgs=1)
        if self.client.is_known(anchor.tx_hash):
            return False  # in the node's pool: wait for a block
        if self.client.mined_nonce() <= anchor.nonce:
            self.client.send(anchor)  # lost from the pool (node restart): same bytes again
            self._count(resends=1)
            return False
        # The nonce was used by another transaction: this one can never be mined.
        self.store.update(replace(anchor, state="dropped"))
        return True

    def _due(self, now: float) -> bool:
        anchored = self.client.latest_checkpoint(self.chain_log_id).tree_size
        waiting = self.log.size - anchored
        if waiting <= 0:
            return False
        if waiting >= self.policy.max_new_leaves or self._last_anchor_at is None:
            return True
        return now - self._last_anchor_at >= self.policy.interval_s

    def _anchor_head(self, now: float) -> None:
        on_chain = self.client.latest_checkpoint(self.chain_log_id)
        size = self.log.size
        root = self.log.root(size)
        if on_chain.tree_size > 0:
            try:
                proof = self.log.consistency_proof(on_chain.tree_size, size)
                verify_consistency(on_chain.tree_size, size, on_chain.root, root, proof)
            except ProofError as exc:
                raise ConsistencyError(
                    f"log head {size} does not extend anchored size {on_chain.tree_size}: {exc}"
                ) from exc
        moment = format_time(datetime.fromtimestamp(now, UTC))
        heads = self.heads(size) if self.heads is not None else None
        envelope = sign_checkpoint(Checkpoint(self.log_id, size, root, moment, heads),
                                   self.log_key)
        try:
            self.client.anchor(
                self.store, self.chain_log_id, size, root, envelope.to_bytes(), now
            )
        except ContractRevert as exc:
            if exc.error_name != "TreeSizeNotIncreasing":
                raise
            return  # the chain moved under us; the next step re-reads it
        self._last_anchor_at = now
        self._count(anchors_sent=1)

    def _count(self, **increments: int) -> None:
        values = {
            name: (value if name == "last_gas_used" else getattr(self.metrics, name) + value)
            for name, value in increments.items()
        }
        self.metrics = replace(self.metrics, **values)

    def _refresh(self, now: float) -> None:
        final = self.store.latest_final(self.chain_log_id)
        anchored = final.tree_size if final is not None else 0
        size = self.log.size
        backlog = max(size - anchored, 0)
        if backlog == 0:
            self._unanchored_since = None
        elif final is not None and anchored > self.metrics.anchored_size:
            # Leaves past the new anchor were appended after its checkpoint was taken.
            self._unanchored_since = final.created_at
        elif self._unanchored_since is None:
            # The new leaves arrived after the previous step saw none: an upper bound on lag.
            self._unanchored_since = self._last_step_at if self._last_step_at is not None else now
        lag = 0.0 if self._unanchored_since is None else now - self._unanchored_since
        self._last_step_at = now
        self.metrics = replace(
            self.metrics, log_size=size, anchored_size=anchored, backlog=backlog, lag_s=lag
        )
        if self.on_metrics is not None:
            self.on_metrics(self.metrics)
