"""Where the verifier's inputs come from: the bundle's bytes (a file, or an http(s):// URL,
trusted for nothing and bounded), and the chain reader (the bundle's own receipts, or a node).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Final

from ledger.core.bundle import MAX_BUNDLE_BYTES, AuditBundle, BundleError
from ledger.verify.anchors import ChainReader, OfflineChainReader

FETCH_TIMEOUT_S: Final = 30.0


def fetch_bundle(url: str) -> bytes:
    """A bundle downloaded from the operator's API (or anyone's): trusted for nothing, bounded."""
    # Only http(s) reaches here (read_bundle checks the scheme).
    request = urllib.request.Request(url, headers={"Accept": "application/x-ndjson"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
        data: bytes = response.read(MAX_BUNDLE_BYTES + 1)
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError(f"downloaded bundle exceeds {MAX_BUNDLE_BYTES} bytes")
    return data


def read_bundle(path: str) -> bytes:
    """The bundle at `path` (a file, or an http(s):// URL), refusing an oversize one."""
    if path.startswith(("http://", "https://")):
        return fetch_bundle(path)
    file = Path(path)
    if file.stat().st_size > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle file exceeds {MAX_BUNDLE_BYTES} bytes")
    return file.read_bytes()


def open_chain_reader(bundle: AuditBundle, rpc_url: str | None) -> ChainReader:
    """The bundle's embedded receipts when `rpc_url` is None, else the node at `rpc_url`."""
    if rpc_url is None:
        return OfflineChainReader(bundle)
    if bundle.chain is None:
        raise BundleError("the bundle names no chain, so --rpc has nothing to ask: use --offline")
    from ledger.verify.rpc import RpcChainReader  # web3 only when a node is asked

    blocks = [c.anchor.block_number for c in bundle.checkpoints if c.anchor]
    return RpcChainReader.open(rpc_url, bundle.chain.contract, bundle.chain.chain_id,
                               from_block=min(blocks, default=0))
