"""Shared set-up for anchorer tests: a real Merkle log, its key, and a registered chain log id."""

from __future__ import annotations

import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.anchorer import Anchorer, AnchorPolicy
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.core.checkpoint import chain_log_id
from ledger.core.envelope import key_id
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore
from tests.ledger.chain.chain_support import Deployment


def new_log(leaves: int = 0, tag: bytes = b"event") -> MerkleLog:
    log = MerkleLog(MemoryNodeStore())
    grow(log, leaves, tag)
    return log


def grow(log: MerkleLog, leaves: int, tag: bytes = b"event") -> None:
    start = log.size
    for i in range(start, start + leaves):
        log.append(tag + b"-%d" % i)


def registered_log_key(deployment: Deployment) -> Ed25519PrivateKey:
    """A fresh log key whose chain log id is registered to the deployment's agency."""
    key = Ed25519PrivateKey.generate()
    deployment.admin.register_log(chain_log_id(key_id(key.public_key())), deployment.agency_id)
    return key


def make_anchorer(
    deployment: Deployment,
    log: MerkleLog,
    key: Ed25519PrivateKey,
    db: Path,
    policy: AnchorPolicy | None = None,
    client: CustodyAnchorClient | None = None,
) -> Anchorer:
    return Anchorer(log, key, client or deployment.anchorer, SqlitePendingAnchorStore(db),
                    policy or AnchorPolicy(interval_s=60, max_new_leaves=10))


def settle(anchorer: Anchorer, now: float, timeout_s: float = 15.0) -> None:
    """Step at `now` until nothing is in flight (blocks arrive every 0.2 s on anvil)."""
    deadline = time.monotonic() + timeout_s
    while True:
        anchorer.step(now)
        if not anchorer.store.unfinished(anchorer.chain_log_id):
            return
        assert time.monotonic() < deadline, f"anchor still in flight: {anchorer.metrics}"
        time.sleep(0.05)
