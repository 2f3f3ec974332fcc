"""Recording a verified batch: replays told apart, quarantine, observation rows, sightings.

Runs inside the batch's write transaction. (device, seq) already stored with the same envelope
is a replay and is acknowledged without any change; the same (device, seq) with a different
envelope is a device reusing a number (a cloned key or a reset counter) and is quarantined.
An accepted read moves its asset's last sighting forward, if the reader's agency may see the
asset (otherwise it is a foreign sighting, `api.custody.foreign`); a tag that is neither an
asset nor a badge is kept as a sighting for stocktake.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api.custody.events import AssetRow
from api.custody.facts import BatchFacts
from api.custody.rules import visible_to
from api.custody.writes import CustodyWrites
from api.db import among, pairs_in, table
from api.ingest import sequence
from api.ingest.checks import Rejected, RejectReason, Verified
from api.logstore import SELECT_BATCH
from api.models.ingest import (
    MAX_QUARANTINE_PAYLOAD_BYTES,
    MAX_TOPIC_CHARS,
    IngestedObservation,
    QuarantinedMessage,
    Sighting,
)

_OBSERVATIONS = table(IngestedObservation)


@dataclass(frozen=True, slots=True)
class RecordedBatch:
    """What a batch holds: new observations (for the custody rules), replays, rejections."""

    accepted: list[Verified]
    duplicates: list[Verified]
    rejected: list[Rejected]


def quarantine(session: Session, rejected: Rejected, now: datetime) -> None:
    """Keep a refused message (bounded) for an operator to look at; written at commit."""
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


def sort_out(
    session: Session, verified: Sequence[Verified], rejected: Sequence[Rejected],
    cursors: sequence.Cursors,
) -> RecordedBatch:
    """Tell `verified`'s new reads from replays and reused numbers (refused with `rejected`)."""
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
                item.reader, (key[1], key[1]),
            ))
    return RecordedBatch(accepted=fresh, duplicates=replays, rejected=[*rejected, *conflicts])


def observation_rows(fresh: Sequence[Verified], now: datetime) -> list[dict[str, Any]]:
    """The `ingested_observation` rows of `fresh`, for one bulk INSERT (no ORM objects, no
    per-row SQLAlchemy work: the hottest write of ingest)."""
    rows = []
    for item in fresh:
        obs = item.observation
        rows.append({
            "device_id": obs.device, "seq": obs.seq, "envelope": item.envelope_bytes,
            "envelope_hash": item.envelope_hash, "kind": obs.kind, "epc_hex": obs.epc,
            "session": obs.session, "site_id": item.reader.site_id,
            "observed_at": item.observed_at, "received_at": now,
        })
    return rows


def note_sightings(
    session: Session, fresh: Sequence[Verified], facts: BatchFacts, writes: CustodyWrites,
) -> None:
    """Move the last sighting of the assets (locked until commit, as `facts` holds them)
    `fresh` reads name for their readers' agencies, queued on `writes`; a read by a reader
    whose agency may not see the asset is a foreign sighting instead, which moves nothing of
    the owner's. Keep unknown EPCs (neither an asset nor one of the agency's badges) for
    stocktake.

    Plain values, no ORM objects: this runs for every read. The rows are locked (and on
    SQLite the writer lock held) from the read to the commit, so moving them forward here
    is what a conditional UPDATE would do.
    """
    unknown: list[Verified] = []
    sighted: dict[tuple[str, str], AssetRow] = {}
    for item in fresh:
        agency_id = item.reader.agency_id
        row = facts.asset_for(agency_id, item.observation.epc)
        if row is None:
            if not facts.is_badge(agency_id, item.observation.epc):
                unknown.append(item)
        elif not visible_to(row.agency_id, facts.shares.get((row.agency_id, row.id),
                                                             frozenset()), agency_id):
            writes.foreign.add(row.agency_id, row.id, item.reader, item.observed_at)
        elif sight(row, item.reader.reader_id, item.reader.site_id, item.observed_at):
            sighted[(row.agency_id, row.id)] = row
    writes.sighted(sighted)
    if unknown:
        _note_unknown(session, unknown)


def sight(asset: AssetRow, reader_id: str, site_id: str, observed_at: datetime) -> bool:
    """Move `asset`'s last sighting to a read by `reader_id` at `site_id` (in memory), and say
    whether it moved: forward only, so a late re-sent read (or a handheld's batch uploaded
    after newer reads) never moves it back."""
    if asset.last_seen_at is not None and asset.last_seen_at > observed_at:
        return False
    asset.last_seen_at = observed_at
    asset.last_seen_reader_id = reader_id
    asset.last_seen_site_id = site_id
    return True


def _note_unknown(session: Session, unknown: Sequence[Verified]) -> None:
    sightings = {
        (s.agency_id, s.site_id, s.epc_hex): s
        for s in session.exec(
            select(Sighting).where(among(
                col(Sighting.epc_hex), {i.observation.epc for i in unknown}, session))
        )
    }
    for item in unknown:
        key = (item.reader.agency_id, item.reader.site_id, item.observation.epc)
        sighting = sightings.get(key)
        if sighting is None:
            sighting = Sighting(
                agency_id=key[0], site_id=key[1], epc_hex=key[2],
                reader_id=item.reader.reader_id,
                first_seen_at=item.observed_at, last_seen_at=item.observed_at, count=0,
            )
            sightings[key] = sighting
        sighting.count += 1
        if item.observed_at >= sighting.last_seen_at:
            sighting.last_seen_at = item.observed_at
            sighting.reader_id = item.reader.reader_id
        sighting.first_seen_at = min(sighting.first_seen_at, item.observed_at)
        session.add(sighting)
