"""The head map of a log held as its leaves (custody events and registry records): for an
in-memory log, the corpus, tests and benchmarks (the API builds the same map from its asset
and registry tables, `api.head_maps`).

Kept apart from `ledger.core.heads` because reading events needs `ledger.core.record_scan`,
which needs the bundle format, which needs the head map's proofs. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable

from ledger.core import hashing
from ledger.core.encoding import parse_record
from ledger.core.heads import HeadEntry, HeadMap, entries_for, located_at
from ledger.core.record_scan import read_event
from ledger.core.records import (
    EVIDENCE_REFERENCED,
    CustodyEvent,
    RegistryRecord,
    registry_hash,
)

_EVENT_START = b'{"action":'
"""How every custody event's canonical record begins (its keys sorted); no registry record's
does (theirs begin with "agency")."""


def head_map_of(records: Iterable[bytes]) -> HeadMap:
    """The head map of a log whose leaves are `records`, in leaf order."""
    latest: dict[str, tuple[int, bytes, str | None]] = {}
    registry: dict[tuple[str, str], tuple[int, bytes]] = {}
    cases: dict[str, tuple[str, int, bytes]] = {}
    for position, record in enumerate(records):
        if not record.startswith(_EVENT_START):
            entry = RegistryRecord.from_record(parse_record(record))
            registry[entry.subject] = (entry.seq, registry_hash(record))
            if entry.kind == EVIDENCE_REFERENCED:
                cases[entry.get("asset")] = (entry.get("case"), *registry[entry.subject])
            continue
        event: CustodyEvent = read_event(record, f"leaf {position}")
        latest[event.asset] = (event.seq, hashing.domain_hash(hashing.CUSTODY_EVENT, record),
                               located_at(event))
    entries = [e for asset, (seq, head, site) in latest.items()
               for e in entries_for(asset, seq, head, site)]
    entries += [HeadEntry(ident, None, seq, head, subject)
                for (subject, ident), (seq, head) in registry.items()]
    entries += [HeadEntry(asset, None, seq, head, case=case)
                for asset, (case, seq, head) in cases.items()]
    return HeadMap(entries)
