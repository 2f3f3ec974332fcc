"""Foreign sightings: an agency's asset read by a reader of an agency that may not see it.

A reader speaks for its own agency. When agency B's reader reads the tag of agency A's asset
that A has not shared with B (a loan shares it while it lasts), the read is B's word about A's
kit, and A has not agreed to take it: it is not the asset's last sighting (the hand-over's
"seen recently" check and stocktakes read that), it raises no alert and moves no custody (the
rules answer B "not ours", `api.custody.rules`). It is kept here instead, where, when and which
agency reported it, for A to see and B never (`GET /v1/assets/{id}/foreign-sightings`).

A batch gathers its foreign sightings per (asset, reader) and stores them at its flush: one row
per pair, whose count, first and last time move. The batch holds the assets' rows locked (and
the log writer's lock), so reading the stored rows and then writing them races with nobody.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from api.bulk import insert_rows, update_rows
from api.custody.reads import ReaderRef
from api.db import among, table
from api.models.ingest import ForeignSighting

_SIGHTINGS = table(ForeignSighting)


class ForeignSightings:
    """A batch's foreign sightings, gathered per (asset, reader) until `flush`: each a
    `foreign_sighting` row's values (plain values: this runs for every foreign read)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], dict[str, Any]] = {}
        """(owner, asset id, reader id) -> the row's values."""

    def add(self, owner: str, asset_id: str, reader: ReaderRef, observed_at: datetime) -> None:
        """`reader`, of an agency that may not see agency `owner`'s asset `asset_id`, read its
        tag."""
        key = (owner, asset_id, reader.reader_id)
        seen = self._seen.get(key)
        if seen is None:
            self._seen[key] = {
                "owner_id": owner, "asset_id": asset_id, "reader_id": reader.reader_id,
                "reporting_agency_id": reader.agency_id, "site_id": reader.site_id,
                "first_seen_at": observed_at, "last_seen_at": observed_at, "count": 1}
            return
        seen["count"] += 1
        seen["first_seen_at"] = min(seen["first_seen_at"], observed_at)
        seen["last_seen_at"] = max(seen["last_seen_at"], observed_at)

    def flush(self, connection: Connection) -> None:
        """Store what was gathered, in the connection's transaction: new pairs inserted, known
        ones counted on (a late re-sent read never moves the last time back)."""
        if not self._seen:
            return
        columns = _SIGHTINGS.c
        stored = {
            (owner, asset_id, reader_id): (row_id, first, last, count)
            for row_id, owner, asset_id, reader_id, first, last, count in connection.execute(
                select(columns.id, columns.owner_id, columns.asset_id, columns.reader_id,
                       columns.first_seen_at, columns.last_seen_at, columns.count)
                .where(among(columns.asset_id, {k[1] for k in self._seen}, connection)))
        }
        new, known = [], []
        for key, seen in self._seen.items():
            if key not in stored:
                new.append(seen)
                continue
            row_id, first, last, count = stored[key]
            known.append({
                "id": row_id, "reporting_agency_id": seen["reporting_agency_id"],
                "site_id": seen["site_id"], "first_seen_at": min(first, seen["first_seen_at"]),
                "last_seen_at": max(last, seen["last_seen_at"]), "count": count + seen["count"]})
        insert_rows(connection, _SIGHTINGS, new)
        update_rows(connection, _SIGHTINGS, known)
        self._seen.clear()
