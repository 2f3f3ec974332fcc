"""The head map of an agency's log at a given size (`ledger.core.heads`), from the database.

The asset table holds each asset's chain head (`chain_next_seq`, `chain_prev`) and holder,
written in the same transaction as the log leaf that moved it, so one statement reading them
together with the log's size sees one consistent state on every backend, without taking the
log writers' lock. From that state (size S) the map at an earlier size N is reached by walking
back the few events appended since: an asset whose first event at or after leaf N is number k
had event k - 1 as its head at N (none if k = 0). So the map is exactly the log's state at N,
however far ingest has moved on while it is read.

The registry subjects' entries (`ledger.core.heads.registry_key`) come from `registry_record`:
each subject's record of highest `seq` among the first N leaves; the case index's from the
`evidence-referenced` records among them.

Cost at 1,000,000 assets (bench/head_map.py, PostgreSQL, this 2-core machine): about 12 s per
checkpoint, half of it one streamed scan of the agency's assets, half hashing the map's 1.7
million entries, and about 1 GB at its peak. Only the anchoring process pays it, once per
`anchor_interval_s`; ingest never waits for it.
"""

from __future__ import annotations

import json
from typing import Final

from sqlalchemy import and_, case, select
from sqlmodel import Session

from api.db import pairs_in, table
from api.errors import ApiServiceError
from api.models.assets import Asset, HolderKind
from api.models.custody import AgencyLog, CustodyEventRow, RegistryRecordRow
from ledger.core.heads import CaseHead, HeadMap, RegistryHead, located_at
from ledger.core.record_scan import read_event
from ledger.core.records import EVIDENCE_REFERENCED

_ASSETS = table(Asset)
_LOGS = table(AgencyLog)
_EVENTS = table(CustodyEventRow)
_REGISTRY = table(RegistryRecordRow)

STREAM_ROWS: Final = 20_000
"""Asset rows fetched from the driver at a time."""

PAIRS_PER_QUERY: Final = 400
"""(asset, seq) pairs per look-up of earlier heads, within every backend's parameter limit."""


class HeadMapUnavailable(ApiServiceError):
    """The log has no such size yet (or the agency no log)."""


def head_map_at(session: Session, agency_id: str, size: int) -> HeadMap:
    """The head map of `agency_id`'s log at tree size `size`."""
    current, heads = _current_heads(session, agency_id)
    if size > current:
        raise HeadMapUnavailable(f"agency {agency_id}'s log has {current} leaves, not {size}")
    if size < current:
        _walk_back(session, agency_id, size, current, heads)
    registry, cases = _registry_heads(session, agency_id, size)
    return HeadMap.from_heads(((asset, *head) for asset, head in heads.items()), registry, cases)


def _registry_heads(session: Session, agency_id: str, size: int
                    ) -> tuple[list[RegistryHead], list[CaseHead]]:
    """Each registry subject's latest record among the log's first `size` leaves, and each
    exhibit's latest `evidence-referenced` record with the case it names (the case index, read
    from the records themselves, so the map is the log's at `size` even if a reference has
    changed since). One scan: only reference records' bodies are fetched."""
    reference = _REGISTRY.c.kind == EVIDENCE_REFERENCED
    rows = session.connection().execute(
        select(_REGISTRY.c.subject_kind, _REGISTRY.c.subject_id, _REGISTRY.c.seq,
               _REGISTRY.c.record_hash, case((reference, _REGISTRY.c.record), else_=None))
        .where(_REGISTRY.c.agency_id == agency_id, _REGISTRY.c.leaf_index < size)
        .order_by(_REGISTRY.c.leaf_index))
    latest: dict[tuple[str, str], tuple[int, bytes]] = {}
    cases: dict[str, tuple[str, int, bytes]] = {}
    for kind, ident, seq, digest, record in rows:
        latest[(kind, ident)] = (seq, bytes(digest))
        if record is not None:
            cases[ident] = (json.loads(bytes(record))["case"], seq, bytes(digest))
    return ([(kind, ident, seq, digest) for (kind, ident), (seq, digest) in latest.items()],
            [(ref, asset, seq, digest) for asset, (ref, seq, digest) in cases.items()])


def _current_heads(session: Session, agency_id: str
                   ) -> tuple[int, dict[str, tuple[int, bytes, str | None]]]:
    joined = _LOGS.outerjoin(_ASSETS, and_(_ASSETS.c.agency_id == _LOGS.c.agency_id,
                                           _ASSETS.c.chain_next_seq > 0))
    # Streamed, so a million assets never sit in memory as driver rows as well as heads.
    result = session.connection().execution_options(
        stream_results=True, yield_per=STREAM_ROWS).execute(
        select(_LOGS.c.size, _ASSETS.c.id, _ASSETS.c.chain_next_seq, _ASSETS.c.chain_prev,
               _ASSETS.c.holder_kind, _ASSETS.c.holder_ref)
        .select_from(joined).where(_LOGS.c.agency_id == agency_id))
    location = HolderKind.LOCATION.value
    size: int | None = None
    heads: dict[str, tuple[int, bytes, str | None]] = {}
    for log_size, asset, next_seq, prev, kind, ref in result:
        size = log_size
        if asset is not None:
            heads[asset] = (next_seq - 1, bytes.fromhex(prev), ref if kind == location else None)
    if size is None:
        raise HeadMapUnavailable(f"agency {agency_id} has no log")
    return int(size), heads


def _walk_back(session: Session, agency_id: str, size: int, current: int,
               heads: dict[str, tuple[int, bytes, str | None]]) -> None:
    """Replace each head moved by leaves size..current-1 with the head it had at `size`."""
    connection = session.connection()
    later = connection.execute(
        select(_EVENTS.c.asset_id, _EVENTS.c.seq)
        .where(_EVENTS.c.agency_id == agency_id, _EVENTS.c.leaf_index >= size,
               _EVENTS.c.leaf_index < current)
        .order_by(_EVENTS.c.leaf_index)).all()
    first_after: dict[str, int] = {}
    for asset, seq in later:
        first_after.setdefault(asset, seq)
    for asset in first_after:
        heads.pop(asset, None)
    earlier = [(asset, seq - 1) for asset, seq in first_after.items() if seq > 0]
    for start in range(0, len(earlier), PAIRS_PER_QUERY):
        batch = earlier[start:start + PAIRS_PER_QUERY]
        rows = connection.execute(
            select(_EVENTS.c.asset_id, _EVENTS.c.seq, _EVENTS.c.event_hash, _EVENTS.c.record)
            .where(pairs_in(_EVENTS.c.asset_id, _EVENTS.c.seq, batch,
                            also={_EVENTS.c.agency_id: agency_id}, bind=session))).all()
        for row in rows:
            event = read_event(bytes(row.record), f"event {row.asset_id} #{row.seq}")
            heads[row.asset_id] = (row.seq, bytes(row.event_hash), located_at(event))

