"""Is each checkpoint root recorded on chain, by an authorised anchorer of that log?

The verifier asks a `ChainReader`, a small Protocol with two implementations: `OfflineChainReader`
decodes the `Anchored` receipt logs embedded in the bundle (no node consulted: it says plainly
what that leaves unchecked), and `ledger.verify.rpc.RpcChainReader` reads the CustodyAnchor
contract through `ledger.chain` with one batched event query per bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

from ledger.core.bundle import AnchorProof, AuditBundle
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id
from ledger.core.envelope import key_id, public_key_from_raw
from ledger.verify.report import CheckResult, VerificationReport

ANCHORED_TOPIC: Final = bytes.fromhex(
    "7196d6002b555d592bc808cc522b6e167501be1b6185fd206cd187b7330acf7a"
)
"""keccak256("Anchored(bytes32,uint64,bytes32,address)"): topic 0 of the contract's event
(a test recomputes it with web3 against the committed ABI)."""


class ChainUnreachable(Exception):
    """The chain node could not be asked (exit code 3), as opposed to a failed check."""


@dataclass(frozen=True, slots=True)
class ChainAnchor:
    """What the chain says anchored a log at one tree size."""

    tree_size: int
    root: bytes
    anchorer: str
    tx_hash: bytes
    block_number: int
    block_hash: bytes


class ChainReader(Protocol):
    """The verifier's view of the chain, asked once per bundle (batched)."""

    @property
    def source(self) -> str: ...

    @property
    def not_checked(self) -> tuple[str, ...]: ...

    @property
    def online(self) -> bool:
        """True when a node answered for the chain (not the bundle's own receipts)."""
        ...

    def log_agency(self, chain_log_id: bytes) -> bytes | None:
        """The agency id the log is registered to, or None if it is not registered."""
        ...

    def anchors(self, chain_log_id: bytes) -> dict[int, ChainAnchor]:
        """Every anchor of `chain_log_id` the reader knows, by tree size."""
        ...

    def latest_size(self, chain_log_id: bytes) -> int | None:
        """The newest anchored tree size, or None when the reader cannot know it."""
        ...


def _address_topic(topic: bytes) -> str | None:
    if len(topic) != 32 or any(topic[:12]):
        return None
    return "0x" + topic[12:].hex()


def decode_anchor(proof: AnchorProof, contract: str) -> tuple[bytes, ChainAnchor] | None:
    """(chain log id, anchor) from an embedded `Anchored` receipt log; None if it is not one
    from `contract`."""
    topics = proof.log_topics
    if proof.log_address.lower() != contract.lower() or len(topics) != 4:
        return None
    if topics[0] != ANCHORED_TOPIC or len(proof.log_data) != 32 or any(topics[2][:24]):
        return None
    anchorer = _address_topic(topics[3])
    if anchorer is None:
        return None
    size = int.from_bytes(topics[2], "big")
    return topics[1], ChainAnchor(size, proof.log_data, anchorer, proof.tx_hash,
                                  proof.block_number, proof.block_hash)


class OfflineChainReader:
    """Reads anchors from the receipts embedded in the bundle, trusting no node and asking none."""

    source = "offline: receipt logs embedded in the bundle"
    online = False
    not_checked = (
        "that the anchoring transactions are in the chain (no node was asked, block headers "
        "are not proven)",
        "that the log is registered to the bundle's agency on chain",
        "that the anchorer held the agency's anchoring role (the contract enforces it, but "
        "only a node can show the contract accepted the transaction)",
        "whether the chain holds anchors of this log that the bundle leaves out",
        "whether newer checkpoints were anchored after the bundle was made",
    )

    def __init__(self, bundle: AuditBundle) -> None:
        self._anchors: dict[tuple[bytes, int], ChainAnchor] = {}
        self._agency = chain_agency_id(bundle.chain.agency) if bundle.chain else None
        if bundle.chain is None:
            return
        for checkpoint in bundle.checkpoints:
            if checkpoint.anchor is None:
                continue
            decoded = decode_anchor(checkpoint.anchor, bundle.chain.contract)
            if decoded is not None:
                self._anchors[(decoded[0], decoded[1].tree_size)] = decoded[1]

    def log_agency(self, chain_log_id: bytes) -> bytes | None:
        # Not knowable offline: echo the bundle's claim so the check reports "not checked".
        return self._agency

    def anchors(self, chain_log_id: bytes) -> dict[int, ChainAnchor]:
        return {size: anchor for (log, size), anchor in self._anchors.items()
                if log == chain_log_id}

    def latest_size(self, chain_log_id: bytes) -> int | None:
        return None


def check_anchor(bundle_anchor: AnchorProof | None, chain: ChainAnchor | None, size: int,
                 root: bytes) -> str | None:
    """Why the checkpoint (size, root) is not anchored as the bundle claims; None if it is."""
    if chain is None:
        return f"checkpoint at size {size}: expected an anchor on chain, found none"
    if chain.root != root:
        return (f"checkpoint at size {size}: expected on-chain root {root.hex()}, "
                f"found {chain.root.hex()}")
    if bundle_anchor is not None and bundle_anchor.tx_hash != chain.tx_hash:
        return (f"checkpoint at size {size}: bundle names tx {bundle_anchor.tx_hash.hex()}, "
                f"chain anchored it in tx {chain.tx_hash.hex()}")
    if bundle_anchor is not None and bundle_anchor.anchorer.lower() != chain.anchorer.lower():
        return (f"checkpoint at size {size}: bundle names anchorer {bundle_anchor.anchorer}, "
                f"chain says {chain.anchorer}")
    if bundle_anchor is not None and (bundle_anchor.block_number, bundle_anchor.block_hash) != (
            chain.block_number, chain.block_hash):
        return (f"checkpoint at size {size}: bundle names block {bundle_anchor.block_number} "
                f"({bundle_anchor.block_hash.hex()}), chain anchored it in block "
                f"{chain.block_number} ({chain.block_hash.hex()})")
    return None


def check_anchors(bundle: AuditBundle, points: list[Checkpoint | None], reader: ChainReader,
                  report: VerificationReport, require_latest: bool,
                  known_size: int | None = None) -> None:
    """Every signed checkpoint is anchored on chain as the bundle says (root, tx, anchorer,
    block and block hash), the log belongs to the bundle's agency, no anchor is left out, and
    (if required) the newest one is the latest. Anchors below the bundle's first checkpoint
    may be left out only when that checkpoint is `known_size`, the auditor's own last
    verified one (a `since_size` bundle): it was checked against them before."""
    result = CheckResult("anchors")
    report.checks.append(result)
    report.chain_source = reader.source
    report.not_checked += list(reader.not_checked)
    if bundle.chain is None:
        result.fail("expected the bundle to name a chain and contract, found none")
        return
    log_id = chain_log_id(key_id(public_key_from_raw(bundle.log_public_key)))
    agency = reader.log_agency(log_id)
    expected_agency = chain_agency_id(bundle.chain.agency)
    if agency != expected_agency:
        result.fail(f"log registered to agency {agency.hex() if agency else 'none'} on chain, "
                    f"expected {expected_agency.hex()} ({bundle.chain.agency})")
    signed = [(item, p) for item, p in zip(bundle.checkpoints, points, strict=True) if p]
    found = reader.anchors(log_id)
    for item, point in signed:
        result.items += 1
        chain = found.get(point.tree_size)
        reason = check_anchor(item.anchor, chain, point.tree_size, point.root)
        if reason:
            result.fail(reason)
        elif chain is not None and reader.online:
            report.anchored.append({"size": point.tree_size, "block": chain.block_number,
                                    "block_hash": "0x" + chain.block_hash.hex()})
    newest = max((p.tree_size for _i, p in signed), default=0)
    shown = {p.tree_size for _i, p in signed}
    vouched = min(shown) if shown and known_size == min(shown) else 0
    # An anchor the bundle leaves out could hide a rewrite: the bundle's checkpoints would no
    # longer be proven consistent with it.
    left_out = sorted(size for size in found
                      if vouched < size <= newest and size not in shown)
    if left_out:
        result.fail(f"chain anchored size {left_out[0]} (root {found[left_out[0]].root.hex()}), "
                    "expected it among the bundle's checkpoints, not found")
    fresh = CheckResult("freshness", passed=None, detail="not required (--require-latest)")
    latest = reader.latest_size(log_id)
    if require_latest:
        fresh.passed, fresh.detail = True, f"newest checkpoint {newest} is the chain's latest"
        if latest is None:
            fresh.passed, fresh.detail = None, "the chain's latest checkpoint is unknown offline"
        elif latest != newest:
            fresh.fail(f"expected the chain's latest anchored size {latest}, bundle's newest "
                       f"checkpoint is {newest} (stale view)")
    report.checks.append(fresh)
