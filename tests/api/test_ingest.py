"""Ingest without MQTT: accepted, replayed, forged, malformed and late messages, gaps, sightings."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.custody.batch import CustodyBatch
from api.custody.reads import VerifiedRead
from api.ingest.checks import MAX_MESSAGE_BYTES, InboundMessage
from api.ingest.pipeline import IngestPipeline
from api.ingest.sequence import open_gaps
from api.models import (
    Asset,
    AssetClass,
    Badge,
    IngestedObservation,
    Person,
    QuarantinedMessage,
    ReaderStatus,
    Sighting,
)
from api.models import Reader as ReaderRow
from api.models.ingest import MAX_QUARANTINE_PAYLOAD_BYTES
from ledger.core.envelope import Envelope, sign_envelope
from ledger.core.records import format_time
from tests.api.api_support import RADIO_EPC, RegisteredReader, register_reader


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def _reasons(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(session.exec(select(QuarantinedMessage.reason)))


def test_accepted_then_replayed_is_stored_once(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    batch = [reader.message(seq) for seq in range(3)]
    first = pipeline.process(batch)
    assert [v.observation.seq for v in first.recorded.accepted] == [0, 1, 2]
    again = pipeline.process(batch + batch)
    assert again.recorded.accepted == []
    assert len(again.recorded.duplicates) == 6 and again.recorded.rejected == []
    assert _count(engine, IngestedObservation) == 3
    with Session(engine) as session:
        stored = session.exec(select(IngestedObservation).where(IngestedObservation.seq == 1)).one()
    assert stored.envelope == batch[1].payload  # the exact signed bytes are kept


def test_duplicate_inside_one_batch_is_stored_once(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    message = reader.message(0)
    result = pipeline.process([message, message])
    assert len(result.recorded.accepted) == 1 and len(result.recorded.duplicates) == 1
    assert _count(engine, IngestedObservation) == 1


def _tampered_epc(reader: RegisteredReader) -> bytes:
    record = json.loads(reader.signed(0))
    record["payload"]["epc"] = "E2801160600002054BD1A1B2"
    return Envelope.from_record(record).to_bytes()


def _nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


HOSTILE = {
    "oversize": lambda r: b"{" + b" " * (MAX_MESSAGE_BYTES + 1) + b"}",
    "malformed": lambda r: b"\xff\xfe not json",
    "malformed-noncanonical": lambda r: json.dumps(json.loads(r.signed(0)), indent=1).encode(),
    "malformed-deep": lambda r: _nested(500),
    "malformed-not-envelope": lambda r: b'{"a":1}',
    "bad_signature": _tampered_epc,
    "unknown_device": lambda r: sign_envelope(
        r.observation(0).to_record(), Ed25519PrivateKey.generate()
    ).to_bytes(),
    "schema": lambda r: sign_envelope({"type": "observation", "v": 1}, r.key).to_bytes(),
    "device_mismatch": lambda r: r.signed(0, device="rdr-2"),
    "clock_skew-future": lambda r: r.signed(
        0, time=format_time(datetime.now(UTC) + timedelta(hours=1))
    ),
    "clock_skew-old": lambda r: r.signed(
        0, time=format_time(datetime.now(UTC) - timedelta(days=30))
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_messages_are_quarantined_never_accepted(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline, case: str
) -> None:
    reason = case.split("-")[0]
    payload = HOSTILE[case](reader)
    before = REGISTRY.get_sample_value("kitledger_ingest_rejected_total", {"reason": reason}) or 0
    result = pipeline.process([InboundMessage(reader.topic, payload)])
    assert result.recorded.accepted == []
    assert [r.reason.value for r in result.recorded.rejected] == [reason]
    assert _reasons(engine) == [reason]
    assert _count(engine, IngestedObservation) == 0
    after = REGISTRY.get_sample_value("kitledger_ingest_rejected_total", {"reason": reason})
    assert after == before + 1
    with Session(engine) as session:
        kept = session.exec(select(QuarantinedMessage)).one()
    assert kept.payload_size == len(payload)
    assert kept.payload == payload[:MAX_QUARANTINE_PAYLOAD_BYTES]


@pytest.mark.parametrize(
    "topic",
    [
        "kitledger/v1/north/other-site/rdr-1/events",
        "kitledger/v1/south/north-store/rdr-1/events",
        "kitledger/v1/north/north-store/rdr-1/status",
        "kitledger/v1/north/north-store/rdr-1",
        "x" * 5000,
    ],
)
def test_topic_must_name_the_signer(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline, topic: str
) -> None:
    result = pipeline.process([InboundMessage(topic, reader.signed(0))])
    assert [r.reason.value for r in result.recorded.rejected] == ["bad_topic"]
    assert _count(engine, IngestedObservation) == 0


def test_revoked_reader_is_refused_even_when_cached(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    pipeline.process([reader.message(0)])  # caches the reader as active
    with Session(engine) as session:
        row = session.get(ReaderRow, reader.reader_id)
        assert row is not None
        row.status = ReaderStatus.REVOKED
        session.add(row)
        session.commit()
    result = pipeline.process([reader.message(1)])
    assert [r.reason.value for r in result.recorded.rejected] == ["revoked_device"]
    assert _count(engine, IngestedObservation) == 1


def test_sequence_reuse_with_another_envelope_is_a_conflict(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    pipeline.process([reader.message(0, epc="E28011606000020500000001")])
    result = pipeline.process([reader.message(0, epc="E28011606000020500000002")])
    assert [r.reason.value for r in result.recorded.rejected] == ["seq_conflict"]
    assert _count(engine, IngestedObservation) == 1


def test_gaps_open_and_close_as_the_agent_resends(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    pipeline.process([reader.message(s) for s in (0, 1, 6)])
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(2, 5)]
    pipeline.process([reader.message(4)])
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(2, 3), (5, 5)]
    pipeline.process([reader.message(s) for s in (5, 2, 3, 9)])
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(7, 8)]


def _missing_ranges(seen: set[int]) -> list[tuple[int, int]]:
    """The model: every number below the highest seen and not seen, as ranges."""
    ranges: list[tuple[int, int]] = []
    for seq in range(max(seen, default=-1)):
        if seq in seen:
            continue
        if ranges and ranges[-1][1] == seq - 1:
            ranges[-1] = (ranges[-1][0], seq)
        else:
            ranges.append((seq, seq))
    return ranges


def test_workers_splitting_a_readers_numbers_lose_none_and_store_none_twice(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    # A shared subscription hands alternate messages of one reader to each worker, so most
    # batches fill gaps another batch left: every such number is new, not a replay, and the
    # gaps left open are exactly the numbers still missing (checked against a model).
    messages = {seq: reader.message(seq) for seq in range(60)}
    rng = random.Random(7)
    order = list(messages)
    rng.shuffle(order)
    seen: set[int] = set()
    while order:
        size = rng.randint(1, 9)
        batch, order = order[:size], order[size:]
        result = pipeline.process([messages[seq] for seq in batch])
        assert sorted(v.observation.seq for v in result.recorded.accepted) == sorted(batch)
        assert result.recorded.duplicates == [] and result.recorded.rejected == []
        seen.update(batch)
        with Session(engine) as session:
            assert open_gaps(session, reader.reader_id) == _missing_ranges(seen)
    assert _count(engine, IngestedObservation) == 60
    again = pipeline.process([messages[seq] for seq in (5, 31, 59)])
    assert again.recorded.accepted == [] and len(again.recorded.duplicates) == 3
    reused = pipeline.process([reader.message(31, epc="E28011606000020500000002")])
    assert [r.reason.value for r in reused.recorded.rejected] == ["seq_conflict"]
    assert _count(engine, IngestedObservation) == 60


def test_a_replay_of_a_number_that_filled_a_gap_is_a_replay(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    pipeline.process([reader.message(s) for s in (0, 4)])
    filled = reader.message(2)
    assert len(pipeline.process([filled]).recorded.accepted) == 1
    # 2 is below the cursor and no longer in a gap: only a look-up can tell, and it must.
    result = pipeline.process([filled, reader.message(3)])
    assert len(result.recorded.duplicates) == 1
    assert [v.observation.seq for v in result.recorded.accepted] == [3]
    with Session(engine) as session:
        assert open_gaps(session, reader.reader_id) == [(1, 1)]


def test_gaps_are_per_device(engine: Engine, pipeline: IngestPipeline) -> None:
    one = register_reader(engine, reader_id="rdr-1")
    two = register_reader(engine, reader_id="rdr-2")
    pipeline.process([one.message(0), two.message(3), one.message(1)])
    with Session(engine) as session:
        assert open_gaps(session, "rdr-1") == []
        assert open_gaps(session, "rdr-2") == [(0, 2)]


def test_one_batch_opens_and_fills_gaps_of_several_devices(
    engine: Engine, pipeline: IngestPipeline
) -> None:
    # Cursors read and written for the whole batch at once: a gap opened early in the batch
    # must still be found by a re-sent number later in it, device by device.
    one = register_reader(engine, reader_id="rdr-1")
    two = register_reader(engine, reader_id="rdr-2")
    three = register_reader(engine, reader_id="rdr-3")
    pipeline.process([two.message(0), two.message(1)])
    one_3, two_2 = one.message(3), two.message(2)
    pipeline.process([one.message(5), two.message(4), one.message(0), one_3,
                      three.message(0), two_2])
    with Session(engine) as session:
        assert open_gaps(session, "rdr-1") == [(1, 2), (4, 4)]
        assert open_gaps(session, "rdr-2") == [(3, 3)]
        assert open_gaps(session, "rdr-3") == []
    # Replays of several devices in one batch are found by their own (device, seq) only.
    again = pipeline.process([one_3, two_2, three.message(1)])
    assert sorted((v.observation.device, v.observation.seq) for v in again.recorded.duplicates
                  ) == [("rdr-1", 3), ("rdr-2", 2)]
    assert [(v.observation.device, v.observation.seq) for v in again.recorded.accepted
            ] == [("rdr-3", 1)]


def test_unknown_epcs_become_sightings_and_assets_move(
    engine: Engine, reader: RegisteredReader, pipeline: IngestPipeline
) -> None:
    stranger, badge = "E28011606000020599999999", "E28011606000020511111111"
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.add(Person(id="p-1", agency_id="north", commitment="ab" * 32))
        session.flush()
        session.add(Asset(id="R-1", agency_id="north", class_id="radio", epc_hex=RADIO_EPC,
                          home_site_id="north-store", holder_ref="north-store",
                          holder_agency_id="north"))
        session.add(Badge(agency_id="north", epc_hex=badge, person_id="p-1"))
        session.commit()
    pipeline.process([reader.message(0, epc=RADIO_EPC), reader.message(1, epc=stranger),
                      reader.message(2, epc=badge, kind="badge"), reader.message(3, epc=stranger)])
    with Session(engine) as session:
        sightings = session.exec(select(Sighting)).all()
        asset = session.get(Asset, ("north", "R-1"))
    assert [(s.epc_hex, s.site_id, s.count) for s in sightings] == [
        (stranger, "north-store", 2)
    ]
    assert asset is not None and asset.last_seen_reader_id == reader.reader_id
    assert asset.last_seen_site_id == "north-store" and asset.last_seen_at is not None


def _no_custody(
    batch: CustodyBatch, reads: Sequence[VerifiedRead], refilled: Mapping[str, int]
) -> None:
    return None


@pytest.mark.parametrize("custody", ["rules", "none"])
def test_an_assets_last_sighting_only_moves_forward(
    engine: Engine, reader: RegisteredReader, custody: str
) -> None:
    """Reads arrive out of time order (a re-sent backlog, another reader's late batch): the
    latest read stays the last sighting, whether the custody rules store it with the assets
    they move or the pipeline stores it alone (a custody hook that moves nothing)."""
    from api.config import load_settings

    pipeline = (IngestPipeline(engine, load_settings()) if custody == "rules" else
                IngestPipeline(engine, load_settings(), custody=_no_custody))
    south = register_reader(engine, site_id="south-store", reader_id="rdr-2")
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        session.add(Asset(id="R-1", agency_id="north", class_id="radio", epc_hex=RADIO_EPC,
                          home_site_id="north-store", holder_ref="north-store",
                          holder_agency_id="north"))
        session.commit()
    now = datetime.now(UTC).replace(microsecond=0)

    def at(who: RegisteredReader, seq: int, minutes_ago: int) -> InboundMessage:
        return who.message(seq, time=format_time(now - timedelta(minutes=minutes_ago)))

    def last_seen() -> tuple[object, ...]:
        with Session(engine) as session:
            asset = session.get(Asset, ("north", "R-1"))
            assert asset is not None
            return asset.last_seen_at, asset.last_seen_reader_id, asset.last_seen_site_id

    pipeline.process([at(reader, 0, 2), at(reader, 1, 5)])  # the later read first
    assert last_seen() == (now - timedelta(minutes=2), "rdr-1", "north-store")
    pipeline.process([at(south, 0, 3)])  # an earlier read, arriving late
    assert last_seen() == (now - timedelta(minutes=2), "rdr-1", "north-store")
    pipeline.process([at(south, 1, 1)])
    assert last_seen() == (now - timedelta(minutes=1), "rdr-2", "south-store")


def test_a_failing_batch_stores_nothing(engine: Engine, reader: RegisteredReader) -> None:
    from api.config import load_settings

    def broken_custody(
        batch: CustodyBatch, reads: Sequence[VerifiedRead], refilled: Mapping[str, int]
    ) -> None:
        raise RuntimeError("custody rules crashed")

    pipeline = IngestPipeline(engine, load_settings(), custody=broken_custody)
    with pytest.raises(RuntimeError):
        pipeline.process([reader.message(0), InboundMessage(reader.topic, b"junk")])
    assert _count(engine, IngestedObservation) == 0
    assert _count(engine, QuarantinedMessage) == 0
