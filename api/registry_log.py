"""The registry in the log: each change of what the custody rules read, appended as a record.

Registering or revoking a reader, setting a class's policy, registering an asset (its tag and
class) and granting or ending a share each append a `ledger.core.records.RegistryRecord` to the
agency's Merkle log, chained to its subject's previous record, in the transaction that changes
the registry row (the log writers' lock claimed, like a custody event), and store it in
`registry_record`. The auditor's verifier then checks readers, tags and policies against the
log, not against a list the operator hands over (`ledger.verify.registry`).

The first record of an agency opens its registry (`registry-opened`). Rows that existed before
the registry was logged get their records once from `backfill_registry` (`kitledger migrate`
runs it after the schema upgrade): it opens the registry counting the records it writes right
after, so the verifier knows which records stand for older history, and it writes a record
only for a row the log does not mirror yet, so running it again appends nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlmodel import Session, col
from sqlmodel import select as orm_select

from api.db import table
from api.logstore import AgencyLogs, appending_log, claim_log_writer
from api.models.assets import Asset, AssetClass, AssetShare
from api.models.custody import RegistryRecordRow
from api.models.registry import Agency, Reader
from ledger.core.encoding import parse_record
from ledger.core.records import (
    ASSET_REGISTERED,
    ASSET_RETIRED,
    CLASS_POLICY,
    EVENT_CORRECTED,
    GENESIS_PREV,
    PERSON_RETIRED,
    READER_REGISTERED,
    READER_REVOKED,
    REGISTRY_OPENED,
    SHARE_ENDED,
    SHARE_GRANTED,
    RegistryRecord,
    format_time,
    registry_hash,
)

_ROWS = table(RegistryRecordRow)

REVOKED_REASON = "revoked by an administrator"
"""The reason a revocation through the API logs (the API takes none from the caller)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One registry record to append: its kind and its own fields."""

    kind: str
    fields: dict[str, Any]


def reader_registered(reader: Reader) -> Change:
    return Change(READER_REGISTERED, {"reader": reader.id, "site": reader.site_id,
                                      "role": str(reader.role), "kid": reader.key_id,
                                      "public_key": reader.public_key})


def reader_revoked(reader: Reader, reason: str = REVOKED_REASON) -> Change:
    return Change(READER_REVOKED, {"reader": reader.id, "reason": reason})


def class_policy(asset_class: AssetClass) -> Change:
    return Change(CLASS_POLICY, {"class": asset_class.id,
                                 "dual_signoff": bool(asset_class.dual_signoff),
                                 "required_qualification": asset_class.required_qualification,
                                 "loan_days": asset_class.loan_days,
                                 "disposal_final": bool(asset_class.disposal_final)})


def asset_registered(asset: Asset) -> Change:
    return Change(ASSET_REGISTERED, {"asset": asset.id, "class": asset.class_id,
                                     "epc": asset.epc_hex})


def share(asset_id: str, with_agency: str, *, granted: bool) -> Change:
    return Change(SHARE_GRANTED if granted else SHARE_ENDED,
                  {"asset": asset_id, "with": with_agency})


def event_corrected(asset_id: str, event_hash: str, leaf: int, reason: str) -> Change:
    return Change(EVENT_CORRECTED, {"asset": asset_id, "event": event_hash, "leaf": leaf,
                                    "reason": reason})


def asset_retired(asset_id: str, reason: str) -> Change:
    return Change(ASSET_RETIRED, {"asset": asset_id, "reason": reason})


def person_retired(commitment: str, reason: str) -> Change:
    return Change(PERSON_RETIRED, {"person": commitment, "reason": reason})


def subject_records(session: Session, agency_id: str, subject: tuple[str, str]
                    ) -> list[tuple[RegistryRecord, int]]:
    """The records of registry subject `subject` in agency `agency_id`'s log, with their
    leaves, in order."""
    rows = session.connection().execute(
        select(_ROWS.c.record, _ROWS.c.leaf_index).where(
            _ROWS.c.agency_id == agency_id, _ROWS.c.subject_kind == subject[0],
            _ROWS.c.subject_id == subject[1]).order_by(_ROWS.c.seq))
    return [(RegistryRecord.from_record(parse_record(bytes(data))), leaf) for data, leaf in rows]


def last_logged(session: Session, agency_id: str, subject: tuple[str, str]) -> tuple[int, str]:
    """(leaf, hash in hex) of registry subject `subject`'s latest record (one just appended,
    without reading the subject's whole chain)."""
    row = session.connection().execute(
        select(_ROWS.c.leaf_index, _ROWS.c.record_hash).where(
            _ROWS.c.agency_id == agency_id, _ROWS.c.subject_kind == subject[0],
            _ROWS.c.subject_id == subject[1]).order_by(_ROWS.c.seq.desc()).limit(1)).one()
    return int(row.leaf_index), bytes(row.record_hash).hex()


def _subject(change: Change, agency_id: str) -> tuple[str, str]:
    return RegistryRecord(change.kind, agency_id, 0, GENESIS_PREV, "2000-01-01T00:00:00.000Z",
                          tuple(sorted(change.fields.items()))).subject


def _head(connection: Connection, agency_id: str, subject: tuple[str, str]
          ) -> tuple[int, str]:
    """(seq of the subject's next record, hash of its last) as stored in this transaction."""
    row = connection.execute(
        select(_ROWS.c.seq, _ROWS.c.record_hash)
        .where(_ROWS.c.agency_id == agency_id, _ROWS.c.subject_kind == subject[0],
               _ROWS.c.subject_id == subject[1])
        .order_by(_ROWS.c.seq.desc()).limit(1)).first()
    return (0, GENESIS_PREV) if row is None else (row.seq + 1, bytes(row.record_hash).hex())


def _append(session: Session, logs: AgencyLogs, agency_id: str, change: Change,
            now: datetime) -> int:
    connection = session.connection()
    subject = _subject(change, agency_id)
    seq, prev = _head(connection, agency_id, subject)
    record = RegistryRecord.make(change.kind, agency=agency_id, seq=seq, prev=prev,
                                 time=format_time(now), **change.fields)
    data = record.to_bytes()
    leaf = logs.of(agency_id).append(data)
    connection.execute(insert(_ROWS), {
        "agency_id": agency_id, "subject_kind": subject[0], "subject_id": subject[1],
        "seq": seq, "kind": change.kind, "record": data, "record_hash": registry_hash(data),
        "leaf_index": leaf, "created_at": now})
    return leaf


def _opened(session: Session, agency_id: str) -> bool:
    return _head(session.connection(), agency_id, ("agency", agency_id))[0] > 0


def append_registry(session: Session, logs: AgencyLogs, agency_id: str,
                    changes: Iterable[Change], now: datetime) -> None:
    """Append `changes` to agency `agency_id`'s log in the caller's transaction (the log
    writers' lock claimed), opening its registry first if this is its first record."""
    changes = list(changes)
    if changes and not _opened(session, agency_id):
        _append(session, logs, agency_id, Change(REGISTRY_OPENED, {"backfilled": 0}), now)
    for change in changes:
        _append(session, logs, agency_id, change, now)


def log_registry(session: Session, agency_id: str, changes: Iterable[Change],
                 now: datetime) -> None:
    """`append_registry` in a transaction of its own making: claims the log writers' lock and
    stores the log's new nodes (for the registry routes; custody code passes its own logs)."""
    claim_log_writer(session, now)
    with appending_log(session) as logs:
        append_registry(session, logs, agency_id, changes, now)


def _logged(session: Session, agency_id: str) -> set[tuple[str, str, str]]:
    """(kind, subject kind, subject id) of every record agency `agency_id`'s log holds."""
    rows = session.connection().execute(
        select(_ROWS.c.kind, _ROWS.c.subject_kind, _ROWS.c.subject_id)
        .where(_ROWS.c.agency_id == agency_id))
    return {(kind, subject_kind, subject_id) for kind, subject_kind, subject_id in rows}


def _shares_logged(session: Session, agency_id: str) -> set[tuple[str, str]]:
    """(asset, agency) of the shares the log holds as granted (its latest record of each)."""
    rows = session.connection().execute(
        select(_ROWS.c.kind, _ROWS.c.record).where(
            _ROWS.c.agency_id == agency_id,
            _ROWS.c.kind.in_([SHARE_GRANTED, SHARE_ENDED])).order_by(_ROWS.c.leaf_index))
    granted: set[tuple[str, str]] = set()
    for kind, data in rows:
        record = RegistryRecord.from_record(parse_record(bytes(data)))
        pair = (str(record.get("asset")), str(record.get("with")))
        if kind == SHARE_GRANTED:
            granted.add(pair)
        else:
            granted.discard(pair)
    return granted


def _missing(session: Session, agency_id: str) -> list[Change]:
    """The records agency `agency_id`'s registry rows need and its log does not hold."""
    logged = _logged(session, agency_id)
    changes: list[Change] = []
    for reader in session.exec(orm_select(Reader).where(Reader.agency_id == agency_id)
                               .order_by(col(Reader.id))):
        if (READER_REGISTERED, "reader", reader.id) not in logged:
            changes.append(reader_registered(reader))
        if reader.revoked_at is not None and (READER_REVOKED, "reader", reader.id) not in logged:
            changes.append(reader_revoked(reader))
    for asset_class in session.exec(orm_select(AssetClass).where(
            AssetClass.agency_id == agency_id).order_by(col(AssetClass.id))):
        if (CLASS_POLICY, "class", asset_class.id) not in logged:
            changes.append(class_policy(asset_class))
    owned: set[str] = set()
    for asset in session.exec(orm_select(Asset).where(Asset.agency_id == agency_id)
                              .order_by(col(Asset.id))):
        owned.add(asset.id)
        if (ASSET_REGISTERED, "asset", asset.id) not in logged:
            changes.append(asset_registered(asset))
    granted = _shares_logged(session, agency_id)
    for row in session.exec(orm_select(AssetShare).where(AssetShare.owner_id == agency_id)
                            .order_by(col(AssetShare.asset_id), col(AssetShare.agency_id))):
        if row.asset_id in owned and (row.asset_id, row.agency_id) not in granted:
            changes.append(share(row.asset_id, row.agency_id, granted=True))
    return changes


def backfill_registry(session: Session, now: datetime) -> int:
    """Log the records of every registry row no record mirrors yet, in the caller's
    transaction; the number appended. An agency whose registry is not open yet gets it opened
    with that count (`backfilled`), so the records stand for the history before them."""
    claim_log_writer(session, now)
    appended = 0
    with appending_log(session) as logs:
        for agency_id in session.exec(orm_select(Agency.id).order_by(col(Agency.id))).all():
            changes = _missing(session, str(agency_id))
            if not _opened(session, str(agency_id)):
                changes.insert(0, Change(REGISTRY_OPENED, {"backfilled": len(changes)}))
            for change in changes:
                _append(session, logs, str(agency_id), change, now)
            appended += len(changes)
    return appended
