"""The verifier's chain reader over a node: the CustodyAnchor contract read through
`ledger.chain` (the only package that speaks web3).

One `Anchored` event query covers every checkpoint of a bundle, from the contract's deployment
block as the auditor pinned it (never from a block the bundle names: a bundle could then hide
the earlier anchors of a history it rewrote), plus one block look-up per anchoring block, so a
bundle costs a handful of round trips however many checkpoints it holds.
The contract only records anchors sent by an anchorer of the log's agency, so an anchor found
here was made by an authorised anchorer at the time.
"""

from __future__ import annotations

from ledger.chain.client import CustodyAnchorClient
from ledger.chain.errors import ChainError, ChainUnavailable, ContractRevert
from ledger.chain.provider import connect
from ledger.verify.anchors import ChainAnchor, ChainUnreachable


class RpcChainReader:
    """`ChainReader` over a node URL (http(s)://, ws(s)://, or embedded:// in tests)."""

    not_checked: tuple[str, ...] = ()
    online = True

    def __init__(self, client: CustodyAnchorClient, from_block: int = 0) -> None:
        self._client = client
        self._from_block = from_block
        self.source = f"node, contract {client.address}"

    @classmethod
    def open(cls, url: str, contract: str, chain_id: int, from_block: int = 0
             ) -> RpcChainReader:
        try:
            w3 = connect(url, expected_chain_id=chain_id)
        except ChainUnavailable as exc:
            raise ChainUnreachable(str(exc)) from None
        except ChainError as exc:  # another chain id: the bundle is not about this node
            raise ChainUnreachable(f"wrong chain: {exc}") from None
        # Reads never sign, so the client needs no account.
        return cls(CustodyAnchorClient(w3, contract, None), from_block)  # type: ignore[arg-type]

    def log_agency(self, chain_log_id: bytes) -> bytes | None:
        try:
            call = self._client.contract.functions.agencyOf(chain_log_id).call
            agency = bytes(call())
        except Exception as exc:  # any failure to ask the node is exit 3, not a verdict
            raise ChainUnreachable(f"reading the log's agency failed: {exc}") from None
        return None if agency == bytes(32) else agency

    def anchors(self, chain_log_id: bytes) -> dict[int, ChainAnchor]:
        try:
            events = self._client.anchored_events(chain_log_id, self._from_block)
        except Exception as exc:  # any failure to ask the node is exit 3, not a verdict
            raise ChainUnreachable(f"reading Anchored events failed: {exc}") from None
        hashes: dict[int, bytes] = {}
        try:
            for block in sorted({e.block_number for e in events}):
                hashes[block] = bytes(self._client.w3.eth.get_block(block)["hash"])
        except Exception as exc:  # any failure to ask the node is exit 3, not a verdict
            raise ChainUnreachable(f"reading anchoring blocks failed: {exc}") from None
        return {e.tree_size: ChainAnchor(e.tree_size, e.root, e.anchorer, e.tx_hash,
                                         e.block_number, hashes[e.block_number])
                for e in events}

    def latest_size(self, chain_log_id: bytes) -> int | None:
        try:
            return self._client.latest_checkpoint(chain_log_id).tree_size
        except ContractRevert:
            return 0  # an unregistered log has no anchors; the agency check says so
        except Exception as exc:  # any failure to ask the node is exit 3, not a verdict
            raise ChainUnreachable(f"reading the latest checkpoint failed: {exc}") from None
