"""The writes of one ingest batch's custody rulings, gathered into a few bulk statements.

`api.custody.events.append_change` hands each change's event row and moved asset to an
`EventSink`. Written one at a time, that is one INSERT round trip and one ORM unit-of-work
object per event, which capped ingest near 700 events/s. During a batch the rules pass a
`BatchWrites` sink instead: event rows are queued, moved assets (`AssetRow`, plain values, no
ORM instance) collected, and `write()` stores everything with one bulk INSERT and one bulk
UPDATE (`api.bulk.insert_rows`, `update_rows`; the UPDATE also stores the batch's sightings),
still inside the batch's transaction; their webhook events (`api.webhook_outbox`) go in one
more bulk INSERT, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from sqlalchemy import Connection, select
from sqlmodel import Session

from api import webhook_outbox
from api.bulk import insert_rows, update_rows
from api.custody.events import AssetRow
from api.db import ByIds, table
from api.models.assets import Asset
from api.models.custody import CustodyEventRow

_ASSETS = table(Asset)
_EVENTS = table(CustodyEventRow)

MAX_QUEUED_ROWS: Final = 50_000
"""Rows queued before `write()`: a batch holds at most `MAX_INGEST_BATCH` reads plus the reads
held for a session, each at most one event, so this only catches a runaway loop."""


class BatchWriteError(RuntimeError):
    """A batch queued more rows than any batch can legitimately produce."""


_ASSET_COLUMNS: Final = (
    "id", "agency_id", "class_id", "status", "holder_kind", "holder_ref", "due_at",
    "chain_next_seq", "chain_prev", "last_seen_at", "last_seen_reader_id", "last_seen_site_id",
)

_ASSETS_BY_EPC = ByIds(_ASSETS.c.epc_hex, lambda where: select(
    _ASSETS.c.epc_hex, *(_ASSETS.c[name] for name in _ASSET_COLUMNS)
).where(where).with_for_update())


def load_asset_rows(connection: Connection, epcs: Collection[str]) -> dict[str, AssetRow]:
    """The assets tagged `epcs`, by EPC, locked until commit (on PostgreSQL; SQLite's writer
    lock is already held by the batch)."""
    if not epcs:
        return {}
    return {row[0]: AssetRow(*row[1:]) for row in _ASSETS_BY_EPC(connection, epcs)}


class BatchWrites:
    """An `EventSink` for one ingest batch: event rows and moved assets are gathered and
    stored by `write()` in a few bulk statements, inside the batch's transaction.

    `sighted`: assets whose last sighting this batch moved, not yet stored
    (`api.ingest.record.RecordedBatch.sighted`). `write()` stores them with the moved ones,
    one UPDATE of each asset rather than one for the sighting and one for the custody
    change, and empties it."""

    def __init__(self, session: Session, sighted: dict[str, AssetRow] | None = None) -> None:
        self._session = session
        self._events: list[dict[str, Any]] = []
        self._moved: dict[str, Asset | AssetRow] = {}
        self._sighted = sighted

    def insert_event(self, row: dict[str, Any]) -> None:
        if len(self._events) >= MAX_QUEUED_ROWS:
            raise BatchWriteError(f"a batch queued more than {MAX_QUEUED_ROWS} rows")
        self._events.append(row)

    def moved(self, asset: Asset | AssetRow) -> None:
        self._moved[asset.id] = asset

    def write(self) -> None:
        """Store the queued rows and the changed assets in the session's transaction."""
        connection = self._session.connection()
        insert_rows(connection, _EVENTS, self._events)
        webhook_outbox.enqueue_custody_events(connection, self._events)
        assets: dict[str, Asset | AssetRow] = {}
        if self._sighted:
            assets.update(self._sighted)
            self._sighted.clear()
        assets.update(self._moved)
        update_rows(connection, _ASSETS, [
            {"id": a.id, "status": str(a.status), "holder_kind": str(a.holder_kind),
             "holder_ref": a.holder_ref, "due_at": a.due_at,
             "chain_next_seq": a.chain_next_seq, "chain_prev": a.chain_prev,
             "last_seen_at": a.last_seen_at, "last_seen_reader_id": a.last_seen_reader_id,
             "last_seen_site_id": a.last_seen_site_id}
            for a in assets.values()
        ])
        self._events.clear()
        self._moved.clear()
