"""The independent verifier of audit bundles: needs the bundle and, for anchors, a chain reader;
no database, no API, no server extra (web3 only for `RpcChainReader`, in `ledger.verify.rpc`).

Modules, one per thing checked: `bundle` (the entry point, `verify_bundle`), `trust` (the
auditor's pinned log keys, chain and contract, and witness policy: the trust file), `state`
(the auditor's last verified checkpoint per log), `observations` (reader keys and signed
observations), `checkpoints` (signatures and consistency), `witnesses` (cosignatures under a
witness policy), `events` (records, hash chains, inclusion), `completeness` (nothing in scope
left out, by the head map), `anchors` (on-chain anchors and the `ChainReader` protocol), `rpc`
(a node as chain reader), `report` (the result and its verdict), `sources` (reading a bundle
safely, choosing a chain reader).
"""

from ledger.verify.anchors import ChainAnchor, ChainReader, ChainUnreachable, OfflineChainReader
from ledger.verify.bundle import verify_bundle
from ledger.verify.report import CheckResult, Progress, VerificationReport
from ledger.verify.sources import open_chain_reader, read_bundle

__all__ = [
    "ChainAnchor",
    "ChainReader",
    "ChainUnreachable",
    "CheckResult",
    "OfflineChainReader",
    "Progress",
    "VerificationReport",
    "open_chain_reader",
    "read_bundle",
    "verify_bundle",
]
