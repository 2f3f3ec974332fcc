"""The independent verifier of audit bundles: needs the bundle and, for anchors, a chain reader;
no database, no API, no server extra (web3 only for `RpcChainReader`, in `ledger.verify.rpc`).

Modules, one per thing checked: `bundle` (the entry point, `verify_bundle`), `observations`
(reader keys and signed observations), `checkpoints` (signatures and consistency), `witnesses`
(cosignatures under a witness policy), `events` (records, hash chains, inclusion), `anchors`
(on-chain anchors and the `ChainReader` protocol), `rpc` (a node as chain reader), `report`
(the result), `sources` (reading a bundle, choosing a chain reader).
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
