"""End-to-end acks at the API: `through` with gaps, refused-but-signed numbers, signed lost
ranges, and the periodic request for old gaps (`api.ingest.acks`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.config import load_settings
from api.ingest.acks import MISSING_AFTER_S, old_gap_acks
from api.ingest.checks import InboundMessage
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.sequence import open_gaps
from api.models import QuarantinedMessage
from api.models.registry import Reader
from api.registry import revoke_reader
from ledger.core.envelope import sign_envelope
from ledger.core.lost import LostRange
from ledger.core.records import format_time
from tests.api.api_support import RegisteredReader

SETTINGS = load_settings(database_url="sqlite://")


def pipeline(engine: Engine, ago_s: float = 0.0) -> IngestPipeline:
    """A pipeline whose clock runs `ago_s` seconds behind: gaps it opens look that old."""
    return IngestPipeline(engine, SETTINGS,
                          clock=lambda: datetime.now(UTC) - timedelta(seconds=ago_s))


def acks(result: BatchResult, reader: RegisteredReader) -> dict[str, Any]:
    [ack] = result.acks
    assert ack.topic == f"kitledger/v1/{reader.agency_id}/{reader.site_id}/{reader.reader_id}/acks"
    body: dict[str, Any] = json.loads(ack.payload)
    return body


def lost(reader: RegisteredReader, first: int, last: int,
         key: Ed25519PrivateKey | None = None) -> InboundMessage:
    record = LostRange(reader.reader_id, first, last, "outbox quarantine",
                       format_time(datetime.now(UTC))).to_record()
    return InboundMessage(reader.topic, sign_envelope(record, key or reader.key).to_bytes())


def test_through_stops_below_the_first_gap_and_old_gaps_are_asked_for(
        engine: Engine, reader: RegisteredReader) -> None:
    messages = [reader.message(seq) for seq in (0, 1, 2, 5, 6, 9)]
    first = pipeline(engine, ago_s=MISSING_AFTER_S + 5).process(messages)
    assert acks(first, reader) == {"v": 1, "through": 2}  # gaps too new to ask for
    later = pipeline(engine).process(messages[:1])  # only a replay: acked all the same
    assert later.recorded.duplicates and acks(later, reader) == {
        "v": 1, "through": 2, "missing": [[3, 4], [7, 8]]}
    filled = pipeline(engine).process([reader.message(3), reader.message(4)])
    assert acks(filled, reader) == {"v": 1, "through": 6, "missing": [[7, 8]]}


def test_a_number_refused_after_its_signature_verified_is_accounted_for(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine).process([reader.message(seq) for seq in (0, 1, 2)])
    too_old = format_time(datetime.now(UTC) - timedelta(days=3650))
    result = pipeline(engine).process([
        reader.message(3, time=too_old),  # refused by policy, signed: spent
        reader.message(4),
    ])
    assert [r.reason for r in result.recorded.rejected] == ["clock_skew"]
    assert acks(result, reader)["through"] == 4
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == []  # 3 is not "missing"
        assert session.exec(select(QuarantinedMessage.reason)).all() == ["clock_skew"]


def test_a_number_that_cannot_be_attributed_stays_missing(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine).process([reader.message(seq) for seq in (0, 1, 2)])
    forged = InboundMessage(reader.topic, sign_envelope(
        reader.observation(3).to_record(), Ed25519PrivateKey.generate()).to_bytes())
    tampered = InboundMessage(reader.topic, reader.signed(3).replace(b'"rssi":-50', b'"rssi":-51'))
    result = pipeline(engine).process([forged, tampered, reader.message(4)])
    assert sorted(r.reason for r in result.recorded.rejected) == [
        "bad_signature", "unknown_device"]
    assert acks(result, reader)["through"] == 2
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(3, 3)]


def test_a_revoked_readers_signed_numbers_are_accounted_for(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine).process([reader.message(0)])
    with Session(engine) as session:
        row = session.get(Reader, reader.reader_id)
        assert row is not None
        revoke_reader(session, reader=row, now=datetime.now(UTC))
        session.commit()
    ingest = pipeline(engine)
    ingest.readers._cache.clear()
    result = ingest.process([reader.message(1), reader.message(2)])
    assert {r.reason for r in result.recorded.rejected} == {"revoked_device"}
    assert acks(result, reader)["through"] == 2  # else its agent re-sends them forever


def test_a_signed_lost_range_closes_the_gap_recorded_and_counted(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine).process([reader.message(seq) for seq in (0, 1, 5, 6)])
    result = pipeline(engine).process([lost(reader, 2, 3)])
    assert acks(result, reader)["through"] == 3  # 4 is still missing
    result = pipeline(engine).process([lost(reader, 4, 4)])
    assert acks(result, reader)["through"] == 6
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == []
        details = session.exec(select(QuarantinedMessage.detail).where(
            col(QuarantinedMessage.reason) == "lost_at_reader")).all()
    assert details == [f"reader {reader.reader_id} no longer holds seqs 2..3: outbox quarantine",
                       f"reader {reader.reader_id} no longer holds seqs 4..4: outbox quarantine"]


def test_a_forged_or_future_lost_range_closes_nothing_and_moves_no_cursor(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine).process([reader.message(seq) for seq in (0, 1, 5)])
    forged = pipeline(engine).process([lost(reader, 2, 4, Ed25519PrivateKey.generate())])
    assert [r.reason for r in forged.recorded.rejected] == ["unknown_device"]
    future = pipeline(engine).process([lost(reader, 100, 200)])
    assert acks(future, reader)["through"] == 1
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(2, 4)]
    assert acks(pipeline(engine).process([reader.message(6)]), reader)["through"] == 1


def test_the_periodic_scan_asks_readers_that_send_nothing_for_their_old_gaps(
        engine: Engine, reader: RegisteredReader) -> None:
    pipeline(engine, ago_s=MISSING_AFTER_S + 5).process([reader.message(0), reader.message(4)])
    with Session(engine) as session:
        [ack] = old_gap_acks(session, datetime.now(UTC))
        assert json.loads(ack.payload) == {"v": 1, "through": 0, "missing": [[1, 3]]}
        assert old_gap_acks(session, datetime.now(UTC) - timedelta(seconds=60)) == []
