"""The head map of a log held as its custody-event leaves: for an in-memory log, the corpus,
tests and benchmarks (the API builds the same map from its asset table, `api.head_maps`).

Kept apart from `ledger.core.heads` because reading events needs `ledger.core.record_scan`,
which needs the bundle format, which needs the head map's proofs. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.core import hashing
from ledger.core.heads import HeadMap, entries_for, located_at
from ledger.core.record_scan import read_event


def head_map_of(records: Iterable[bytes]) -> HeadMap:
    """The head map of a log whose custody-event leaves are `records`, in leaf order."""
    latest: dict[str, tuple[int, bytes, str | None]] = {}
    for position, record in enumerate(records):
        event = read_event(record, f"leaf {position}")
        latest[event.asset] = (event.seq, hashing.domain_hash(hashing.CUSTODY_EVENT, record),
                               located_at(event))
    return HeadMap(e for asset, (seq, head, site) in latest.items()
                   for e in entries_for(asset, seq, head, site))
