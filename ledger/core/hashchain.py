"""The per-asset hash chain: each custody event commits to the hash of the asset's previous one.

Deleting, inserting, reordering or rewriting any event of an asset breaks the chain at that
point, and `verify_chain` says where and what it expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ledger.core.errors import HashChainError
from ledger.core.records import GENESIS_PREV, CustodyEvent, event_hash


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where an asset's chain stands: the next event's `seq` and the `prev` it must carry."""

    asset: str
    next_seq: int = 0
    prev: str = GENESIS_PREV

    def advance(self, event: CustodyEvent) -> ChainHead:
        """The head after appending `event`, which must link to this head."""
        check_link(self, event)
        return ChainHead(asset=self.asset, next_seq=self.next_seq + 1, prev=event_hash(event).hex())


def check_link(head: ChainHead, event: CustodyEvent) -> None:
    """Raise unless `event` is the next link after `head`."""
    if event.asset != head.asset:
        raise HashChainError(f"event is for asset {event.asset!r}, chain is {head.asset!r}")
    if event.seq != head.next_seq:
        raise HashChainError(
            f"asset {head.asset!r}: expected event seq {head.next_seq}, found {event.seq}"
        )
    if event.prev != head.prev:
        raise HashChainError(
            f"asset {head.asset!r} event {event.seq}: expected prev {head.prev}, "
            f"found {event.prev}"
        )


def verify_chain(asset: str, events: Iterable[CustodyEvent]) -> ChainHead:
    """Check a whole chain from its genesis; return its head."""
    head = ChainHead(asset=asset)
    for event in events:
        head = head.advance(event)
    return head
