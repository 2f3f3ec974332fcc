"""The writes of one batch's custody rulings, queued and stored with a few bulk statements.

`api.custody.events.append_change` hands each change's event row and moved asset to an
`EventSink`. Written one at a time, that is one INSERT round trip and one ORM unit-of-work
object per event. During a batch the rules pass a `CustodyWrites` instead: event rows,
moved and sighted assets (`AssetRow`, plain values, no ORM instance), alerts and refusals
are queued, and `flush()` stores each kind once, still inside the batch's transaction: the
log's new nodes, one bulk INSERT of events (with their webhook events, `api.webhook_outbox`),
one bulk UPDATE of assets, the alerts (with theirs), the refusals and the foreign sightings
(`api.custody.foreign`), and closes the overdue alerts of the assets that came back and the
shares of the loans that ended.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from sqlmodel import Session, col, select

from api import webhook_outbox
from api.bulk import insert_rows, update_rows
from api.custody.events import AssetRow
from api.custody.foreign import ForeignSightings
from api.custody.overdue import resolve_overdue
from api.custody.rules import ReaderView, Ruling
from api.custody.transfers import end_loan_shares
from api.db import among, table
from api.logstore import AgencyLogs
from api.models.assets import Asset
from api.models.custody import Alert, CustodyEventRow, Refusal
from api.registry_log import append_registry, share

_ASSETS = table(Asset)
_EVENTS = table(CustodyEventRow)
_REFUSALS = table(Refusal)

MAX_QUEUED_ROWS: Final = 50_000
"""Rows queued before `flush()`: a batch holds at most `MAX_INGEST_BATCH` reads plus the reads
held for a session, each at most one event, so this only catches a runaway loop."""

ALERT_REPEAT_WINDOW: Final = timedelta(minutes=5)
"""An asset carried through a portal is read many times in a few seconds; one alert says it.
Unresolved and this recent, the same alert (kind, asset, reader) is not raised again."""


class BatchWriteError(RuntimeError):
    """A batch queued more rows than any batch can legitimately produce."""


class CustodyWrites:
    """An `EventSink` for one batch, and the queue of its alerts and refusals: nothing is
    written before `flush()`, which writes each table once, in the session's transaction."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.logs = AgencyLogs(session)
        """The agencies' Merkle logs the batch's changes are appended to."""
        self._events: list[dict[str, Any]] = []
        self._assets: dict[tuple[str, str], Asset | AssetRow] = {}
        """By (owner, id): ids are per agency."""
        self._alerts: list[dict[str, object]] = []
        self._refusals: list[dict[str, object]] = []
        self._returned: set[tuple[str, str]] = set()
        self._loans_ended: set[tuple[str, str, str]] = set()
        """(owner, asset id, borrower)."""
        self.foreign = ForeignSightings()
        """Reads of assets by readers of agencies that may not see them."""

    def insert_event(self, row: dict[str, Any]) -> None:
        if len(self._events) >= MAX_QUEUED_ROWS:
            raise BatchWriteError(f"a batch queued more than {MAX_QUEUED_ROWS} rows")
        self._events.append(row)

    def moved(self, asset: Asset | AssetRow) -> None:
        self._assets[(asset.agency_id, asset.id)] = asset

    def sighted(self, assets: Mapping[tuple[str, str], AssetRow]) -> None:
        """The last sightings of `assets` (by owner and id) moved, in memory: store them with
        the assets that move, one UPDATE of each asset rather than one for the sighting and one
        for the change."""
        self._assets.update(assets)

    def returned(self, owner: str, asset_id: str) -> None:
        """Agency `owner`'s `asset_id` is back in store: its open overdue alert is closed."""
        self._returned.add((owner, asset_id))

    def loan_ended(self, asset_id: str, owner: str, borrower: str, now: datetime) -> None:
        """`asset_id` of agency `owner`, lent to agency `borrower`, is returned: the loan's
        share ends, and the owner's log records it (`api.registry_log`)."""
        if (owner, asset_id, borrower) not in self._loans_ended:
            append_registry(self._session, self.logs, owner,
                            [share(asset_id, borrower, granted=False)], now)
        self._loans_ended.add((owner, asset_id, borrower))

    def alert(self, reader: ReaderView, asset: AssetRow, ruling: Ruling, now: datetime) -> None:
        """Raise `ruling.alert` about `asset` at `reader` (unless an open one says it)."""
        assert ruling.alert is not None
        self._alerts.append({
            "agency_id": asset.agency_id, "kind": ruling.alert.value, "asset_id": asset.id,
            "reader_id": reader.reader_id, "site_id": reader.site_id,
            "detail": ruling.reason or ruling.alert.value, "created_at": now,
            "resolved_at": None})

    def refusal(self, reader: ReaderView, asset: AssetRow, reason: str, now: datetime) -> None:
        """Record that a read of `asset` asked for a change the rules refused."""
        self._refusals.append({
            "agency_id": reader.agency_id, "asset_id": asset.id, "reader_id": reader.reader_id,
            "action": "read", "reason": reason, "created_at": now})

    def flush(self, now: datetime) -> None:
        """Store everything queued, each table once, in the session's transaction."""
        connection = self._session.connection()
        self.logs.write()
        insert_rows(connection, _EVENTS, self._events)
        webhook_outbox.enqueue_custody_events(connection, self._events)
        update_rows(connection, _ASSETS, [
            {"agency_id": a.agency_id, "id": a.id, "status": str(a.status),
             "holder_kind": str(a.holder_kind), "holder_ref": a.holder_ref,
             "holder_agency_id": a.holder_agency_id, "due_at": a.due_at,
             "chain_next_seq": a.chain_next_seq, "chain_prev": a.chain_prev,
             "last_seen_at": a.last_seen_at, "last_seen_reader_id": a.last_seen_reader_id,
             "last_seen_site_id": a.last_seen_site_id}
            for a in self._assets.values()
        ], key=("agency_id", "id"))
        webhook_outbox.raise_alerts(self._session, self._fresh_alerts(now))
        resolve_overdue(self._session, self._returned, now)
        end_loan_shares(connection, self._loans_ended)
        insert_rows(connection, _REFUSALS, self._refusals)
        self.foreign.flush(connection)
        self._events.clear()
        self._assets.clear()
        self._alerts.clear()
        self._refusals.clear()
        self._returned.clear()
        self._loans_ended.clear()

    def _fresh_alerts(self, now: datetime) -> Iterable[dict[str, object]]:
        """The queued alerts less repeats: a tag read several times as it passes one reader is
        one event, so an open alert of the same kind for the same asset at the same reader
        raised within `ALERT_REPEAT_WINDOW` (or earlier in this batch) is not raised again."""
        if not self._alerts:
            return []
        session = self._session
        recent: set[tuple[object, ...]] = set(session.exec(
            select(Alert.agency_id, Alert.kind, Alert.asset_id, Alert.reader_id).where(
                among(col(Alert.asset_id), {a["asset_id"] for a in self._alerts}, session),
                col(Alert.resolved_at).is_(None), Alert.created_at >= now - ALERT_REPEAT_WINDOW,
            )
        ).all())
        fresh = []
        for alert in self._alerts:
            key = (alert["agency_id"], alert["kind"], alert["asset_id"], alert["reader_id"])
            if key not in recent:
                recent.add(key)
                fresh.append(alert)
        return fresh
