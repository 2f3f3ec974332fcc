"""Storing a verified batch: idempotent observations, quarantine, gaps, sightings, last seen.

Runs inside the caller's write transaction. (device, seq) already stored with the same envelope
is a replay and is acknowledged without any change; the same (device, seq) with a different
envelope is a device reusing a number (a cloned key or a reset counter) and is quarantined.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.bulk import insert_rows, update_rows
from api.custody.events import AssetRow
from api.db import ByIds, among, pairs_in, table
from api.ingest import sequence
from api.ingest.batch_writes import load_asset_rows
from api.ingest.verify import Rejected, RejectReason, Verified
from api.logstore import SELECT_BATCH
from api.models.assets import Asset
from api.models.ingest import (
    MAX_QUARANTINE_PAYLOAD_BYTES,
    MAX_TOPIC_CHARS,
    IngestedObservation,
    QuarantinedMessage,
    Sighting,
)
from api.models.people import Badge

_OBSERVATIONS = table(IngestedObservation)


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """What a batch did: new observations (for the custody rules), replays, rejections."""

    accepted: list[Verified]
    duplicates: list[Verified]
    rejected: list[Rejected]
    refilled: dict[str, int] = field(default_factory=dict)
    """Devices some of whose missing numbers arrived in this batch -> the lowest of them."""
    assets: dict[str, AssetRow] | None = None
    """The assets tagged by `accepted` reads, by EPC, as read (and locked) in this batch's
    transaction, for the custody rules to use rather than read them again; None: not read."""
    badges: dict[str, str] | None = None
    """Badge EPC -> person id for the `accepted` reads' EPCs, read with `assets`."""
    sighted: dict[str, AssetRow] = field(default_factory=dict)
    """Asset id -> those of `assets` whose last sighting this batch moved (in memory), not
    yet stored: whoever stores them takes them out. The custody rules store them with the
    assets they move, in one UPDATE (`api.ingest.batch_writes.BatchWrites`); the pipeline
    stores what is left (`write_sightings`)."""


def quarantine(session: Session, rejected: Rejected, now: datetime) -> None:
    payload = rejected.message.payload
    session.add(
        QuarantinedMessage(
            reason=rejected.reason.value, detail=rejected.detail,
            topic=rejected.message.topic[:MAX_TOPIC_CHARS], device_id=rejected.device_id,
            payload=payload[:MAX_QUARANTINE_PAYLOAD_BYTES], payload_size=len(payload),
            received_at=now,
        )
    )


def _stored_hashes(session: Session, keys: list[tuple[str, int]]) -> dict[tuple[str, int], bytes]:
    """The stored envelope hash of each (device, seq) in `keys` that is already stored."""
    columns = _OBSERVATIONS.c
    found: dict[tuple[str, int], bytes] = {}
    if not keys:
        return found
    connection = session.connection()
    for start in range(0, len(keys), SELECT_BATCH):
        chunk = keys[start:start + SELECT_BATCH]
        found.update(((device, seq), digest) for device, seq, digest in connection.execute(
            core_select(columns.device_id, columns.seq, columns.envelope_hash)
            .where(pairs_in(columns.device_id, columns.seq, chunk, bind=connection))
        ))
    return found


def _split_replays(
    session: Session, verified: Sequence[Verified], cursors: sequence.Cursors
) -> tuple[list[Verified], list[Verified], list[Rejected]]:
    # Only a number at or below its device's cursor and in no open gap can be stored already
    # (`sequence.Cursors`): in steady flow that is none, and the look-up is skipped.
    seen = _stored_hashes(session, list({
        (i.observation.device, i.observation.seq) for i in verified
        if cursors.maybe_stored(i.observation.device, i.observation.seq)
    }))
    fresh: list[Verified] = []
    replays: list[Verified] = []
    conflicts: list[Rejected] = []
    for item in verified:
        key = (item.observation.device, item.observation.seq)
        known = seen.get(key)
        if known is None:
            seen[key] = item.envelope_hash
            fresh.append(item)
        elif known == item.envelope_hash:
            replays.append(item)
        else:
            conflicts.append(Rejected(
                item.message, RejectReason.SEQ_CONFLICT,
                f"device {key[0]} reused seq {key[1]} for another envelope", key[0],
            ))
    return fresh, replays, conflicts


_ASSETS = table(Asset)
_BADGES = table(Badge)


_BADGES_BY_EPC = ByIds(_BADGES.c.epc_hex, lambda where: core_select(
    _BADGES.c.epc_hex, _BADGES.c.person_id).where(where))


def badge_holders(connection: Connection, epcs: Collection[str]) -> dict[str, str]:
    """Badge EPC -> person id, for those of `epcs` that are badges."""
    return {epc: person_id for epc, person_id in _BADGES_BY_EPC(connection, epcs)}


def _note_sightings(
    session: Session, fresh: Sequence[Verified]
) -> tuple[dict[str, AssetRow], dict[str, str], dict[str, AssetRow]]:
    """Move assets' last-seen; keep unknown EPCs (neither asset nor badge) for stocktake.
    Return the assets (locked until commit) and badges of `fresh`'s EPCs, which the custody
    rules need next: read once per batch, not once here and once there; and the assets
    whose last sighting moved, by id, moved in memory only (`RecordedBatch.sighted`).

    Core statements, no ORM objects: this runs for every read. The rows are locked (and on
    SQLite the writer lock held) from the read to the commit, so moving them forward here
    is what a conditional UPDATE would do.
    """
    connection = session.connection()
    epcs = {item.observation.epc for item in fresh}
    rows = load_asset_rows(connection, epcs)
    badges = badge_holders(connection, epcs)
    sighted: dict[str, AssetRow] = {}
    unknown: list[Verified] = []
    for item in fresh:
        row = rows.get(item.observation.epc)
        if row is None:
            if item.observation.epc not in badges:
                unknown.append(item)
        # Forward only: a late re-sent read never moves an asset's last sighting back.
        elif row.last_seen_at is None or row.last_seen_at <= item.observed_at:
            row.last_seen_at = item.observed_at
            row.last_seen_reader_id = item.reader.reader_id
            row.last_seen_site_id = item.reader.site_id
            sighted[row.id] = row
    if unknown:
        _note_unknown(session, unknown)
    return rows, badges, sighted


def write_sightings(session: Session, batch: RecordedBatch) -> None:
    """Store the last sightings of `batch.sighted` (those nothing has stored yet)."""
    update_rows(session.connection(), _ASSETS, [
        {"id": row.id, "last_seen_at": row.last_seen_at,
         "last_seen_reader_id": row.last_seen_reader_id,
         "last_seen_site_id": row.last_seen_site_id}
        for row in batch.sighted.values()
    ])
    batch.sighted.clear()


def _note_unknown(session: Session, unknown: Sequence[Verified]) -> None:
    sightings = {
        (s.epc_hex, s.site_id): s
        for s in session.exec(
            select(Sighting).where(among(
                col(Sighting.epc_hex), {i.observation.epc for i in unknown}, session))
        )
    }
    for item in unknown:
        key = (item.observation.epc, item.reader.site_id)
        sighting = sightings.get(key)
        if sighting is None:
            sighting = Sighting(
                epc_hex=key[0], site_id=key[1], reader_id=item.reader.reader_id,
                first_seen_at=item.observed_at, last_seen_at=item.observed_at, count=0,
            )
            sightings[key] = sighting
        sighting.count += 1
        if item.observed_at >= sighting.last_seen_at:
            sighting.last_seen_at = item.observed_at
            sighting.reader_id = item.reader.reader_id
        sighting.first_seen_at = min(sighting.first_seen_at, item.observed_at)
        session.add(sighting)


def record_batch(
    session: Session, verified: Sequence[Verified], rejected: Sequence[Rejected], now: datetime
) -> RecordedBatch:
    """Store one batch in `session`'s transaction (the caller commits, once its
    `sighted` assets are stored: `write_sightings`)."""
    arriving: dict[str, list[int]] = defaultdict(list)
    for item in verified:
        arriving[item.observation.device].append(item.observation.seq)
    cursors = sequence.load_cursors(session, arriving)
    fresh, replays, conflicts = _split_replays(session, verified, cursors)
    all_rejected = [*rejected, *conflicts]
    for refused in all_rejected:
        quarantine(session, refused, now)
    per_device: dict[str, list[int]] = defaultdict(list)
    rows = []
    for item in fresh:
        obs = item.observation
        rows.append({
            "device_id": obs.device, "seq": obs.seq, "envelope": item.envelope_bytes,
            "envelope_hash": item.envelope_hash, "kind": obs.kind, "epc_hex": obs.epc,
            "session": obs.session, "site_id": item.reader.site_id,
            "observed_at": item.observed_at, "received_at": now,
        })
        per_device[obs.device].append(obs.seq)
    # One bulk INSERT (no ORM objects, no per-row SQLAlchemy work): the hottest write of ingest.
    insert_rows(session.connection(), _OBSERVATIONS, rows)
    refilled = sequence.advance(session, per_device, now, cursors)
    assets, badges, sighted = _note_sightings(session, fresh) if fresh else ({}, {}, {})
    return RecordedBatch(accepted=fresh, duplicates=replays, rejected=all_rejected,
                         refilled=refilled, assets=assets, badges=badges, sighted=sighted)
