"""Record types, hash chains and commitments: known answers, tamper cases and refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ledger.core import commitments
from ledger.core.encoding import canonical_bytes, parse_record
from ledger.core.errors import HashChainError, SchemaError
from ledger.core.hashchain import ChainHead, verify_chain
from ledger.core.records import (
    CLASS_POLICY,
    GENESIS_PREV,
    READER_REGISTERED,
    READER_REVOKED,
    CustodyEvent,
    Holder,
    Observation,
    RegistryChains,
    RegistryRecord,
    event_hash,
    format_time,
    parse_time,
    registry_hash,
)
from tests.paths import VECTORS_DIR

VECTORS = json.loads((VECTORS_DIR / "core_records.json").read_text())
EVENTS = [CustodyEvent.from_record(r) for r in VECTORS["chain"]["events"]]


def test_event_hash_known_answers() -> None:
    assert [event_hash(e).hex() for e in EVENTS] == VECTORS["chain"]["hashes"]
    assert [e.to_record() for e in EVENTS] == VECTORS["chain"]["events"]


def test_chain_verifies_and_reports_head() -> None:
    head = verify_chain(EVENTS[0].asset, EVENTS)
    assert head.next_seq == 2
    assert head.prev == VECTORS["chain"]["hashes"][-1]


def _extend(events: list[CustodyEvent], count: int) -> list[CustodyEvent]:
    result = list(events)
    for _ in range(count):
        last = result[-1]
        result.append(replace(last, seq=last.seq + 1, prev=event_hash(last).hex(),
                              action="check_in", holder_from=last.holder_to,
                              holder_to=Holder("location", "met/store/central")))
    return result


CHAIN = _extend(EVENTS, 3)


@pytest.mark.parametrize(
    ("name", "events", "message"),
    [
        ("delete middle", CHAIN[:2] + CHAIN[3:], "expected event seq 2, found 3"),
        ("delete first", CHAIN[1:], "expected event seq 0, found 1"),
        ("reorder", [CHAIN[0], CHAIN[2], CHAIN[1], *CHAIN[3:]], "expected event seq 1"),
        ("rewrite", [CHAIN[0], replace(CHAIN[1], time="2026-11-28T10:00:00.000Z"), *CHAIN[2:]],
         "expected prev"),
        # The inserted event links correctly; the original that follows it no longer does.
        ("insert", [*CHAIN[:2], replace(CHAIN[2], action="dispose"), *CHAIN[2:]],
         "expected event seq 3, found 2"),
        ("other asset", [replace(CHAIN[0], asset="urn:epc:id:giai:1.2")], "is for asset"),
    ],
)
def test_chain_tampering_detected(name: str, events: list[CustodyEvent], message: str) -> None:
    with pytest.raises(HashChainError, match=message):
        verify_chain(CHAIN[0].asset, events)


def test_head_refuses_wrong_link() -> None:
    head = ChainHead(asset=CHAIN[0].asset)
    with pytest.raises(HashChainError):
        head.advance(replace(CHAIN[0], prev="11" * 32))
    assert head.advance(CHAIN[0]).next_seq == 1


def test_observation_round_trip_and_limits() -> None:
    record = VECTORS["envelope"]["observation"]
    obs = Observation.from_record(record)
    assert obs.to_record() == record


OBS = VECTORS["envelope"]["observation"]


@pytest.mark.parametrize(
    "change",
    [
        {"type": "custody-event"}, {"v": 2}, {"seq": -1}, {"seq": True}, {"seq": "1"},
        {"time": "2026-11-28 09:15:02Z"}, {"time": "2026-02-30T00:00:00.000Z"},
        {"time": "2026-11-28T09:15:02.125+01:00"}, {"kind": "teleport"}, {"epc": "3034zz"},
        {"epc": "abcd"}, {"epc": "ABC"}, {"epc": "AB" * 63}, {"antenna": 256}, {"rssi": 500},
        {"rssi": 1.5}, {"device": ""}, {"device": "x" * 129}, {"device": "has space"},
        {"zone": "\u00e9"}, {"direction": "up"}, {"uri": "http://evil"}, {"extra": 1},
    ],
    ids=lambda c: next(iter(c)) + "=" + repr(next(iter(c.values())))[:20],
)
def test_observation_refuses(change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        Observation.from_record({**OBS, **change})


EV = VECTORS["chain"]["events"][1]


@pytest.mark.parametrize(
    "change",
    [
        {"action": "steal"}, {"prev": "00"}, {"prev": "G" * 64}, {"seq": -2},
        {"to": {"kind": "person", "ref": "pc-4471"}}, {"to": {"kind": "alien", "ref": "x"}},
        {"from": {"kind": "location"}}, {"observations": ["00" * 32] * 65},
        {"authorised_by": ["nothex"]}, {"observations": "00" * 32}, {"reader": 7},
    ],
    ids=lambda c: next(iter(c)),
)
def test_custody_event_refuses(change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        CustodyEvent.from_record({**EV, **change})


@pytest.mark.parametrize(
    "change",
    [
        {"action": "steal"}, {"prev": "00"}, {"prev": "G" * 64}, {"seq": -2}, {"seq": True},
        {"holder_to": Holder("person", "pc-4471")}, {"holder_to": Holder("alien", "x")},
        {"holder_from": Holder("location", "")}, {"observations": ("00" * 32,) * 65},
        {"authorised_by": ("nothex",)}, {"reader": 7}, {"reader": "has space"},
        {"agency": "x" * 129}, {"asset": ""}, {"time": "2026-11-28 10:00:00Z"},
        {"time": "2026-02-30T10:00:00.000Z"},
    ],
    ids=lambda c: next(iter(c)) + "=" + repr(next(iter(c.values())))[:20],
)
def test_custody_event_built_in_code_is_refused_before_it_is_written(
    change: dict[str, Any],
) -> None:
    """`to_record` (so `to_bytes`, what the log stores) checks an event made in code, not
    parsed: the same faults `from_record` refuses in a record."""
    event = replace(EVENTS[1], **change)
    with pytest.raises(SchemaError):
        event.to_record()
    with pytest.raises(SchemaError):
        event.to_bytes()


def test_people_only_as_commitments() -> None:
    c = VECTORS["commitment"]
    salt = bytes.fromhex(c["salt_hex"])
    assert commitments.commit(c["purpose"], c["value"], salt) == c["commitment"]
    assert commitments.opens(c["commitment"], c["purpose"], c["value"], salt)
    assert not commitments.opens(c["commitment"], c["purpose"], "met/officer/4472", salt)
    assert not commitments.opens(c["commitment"], commitments.BADGE, c["value"], salt)
    assert commitments.commit(c["purpose"], c["value"], bytes(16)) != c["commitment"]
    assert c["value"] not in json.dumps(VECTORS["chain"]["events"])


def test_erasure_keeps_chain_verifiable() -> None:
    """Forgetting the salt and value leaves every event hash unchanged."""
    before = [event_hash(e) for e in CHAIN]
    assert verify_chain(CHAIN[0].asset, CHAIN).next_seq == len(CHAIN)
    assert [event_hash(CustodyEvent.from_record(e.to_record())) for e in CHAIN] == before


@pytest.mark.parametrize(
    ("purpose", "value", "salt"),
    [("person", "x", b"short"), ("person", "", bytes(16)), ("", "x", bytes(16)),
     ("person", "x" * 257, bytes(16)), ("person", "x", bytes(65))],
)
def test_commitment_inputs_bounded(purpose: str, value: str, salt: bytes) -> None:
    with pytest.raises(SchemaError):
        commitments.commit(purpose, value, salt)


def test_time_format_round_trip() -> None:
    moment = datetime(2026, 11, 28, 9, 15, 2, 125_000, tzinfo=timezone(timedelta(hours=1)))
    text = format_time(moment)
    assert text == "2026-11-28T08:15:02.125Z"
    assert parse_time(text) == moment.astimezone(UTC)
    with pytest.raises(SchemaError):
        format_time(datetime(2026, 1, 1))


def test_genesis_prev_is_zero_hash() -> None:
    assert GENESIS_PREV == "0" * 64


def test_committed_vectors_match_the_generator() -> None:
    """Any change to ledger.core that alters bytes or hashes must come with new vectors."""
    import sys

    sys.path.insert(0, str(VECTORS_DIR))
    try:
        import generate_core
    finally:
        sys.path.pop(0)
    assert generate_core.build() == VECTORS


# -- registry records ------------------------------------------------------------------------

REGISTRY_TIME = "2026-01-01T00:00:00.000Z"
READER_FIELDS = {"reader": "desk-1", "site": "store-1", "role": "issue_desk", "kid": "ab" * 16,
                 "public_key": "cd" * 32}


def _reader_record() -> dict[str, object]:
    return RegistryRecord.make(READER_REGISTERED, agency="met", seq=0, prev=GENESIS_PREV,
                               time=REGISTRY_TIME, **READER_FIELDS).to_record()


def test_a_registry_record_round_trips_through_its_canonical_bytes() -> None:
    record = _reader_record()
    data = canonical_bytes(record)
    parsed = RegistryRecord.from_record(parse_record(data))
    assert parsed.to_bytes() == data and parsed.subject == ("reader", "desk-1")


@pytest.mark.parametrize("change", [
    {"type": "reader-promoted"},
    {"role": "janitor"},
    {"kid": "AB" * 16},
    {"public_key": "cd" * 31},
    {"seq": -1},
    {"seq": True},
    {"prev": "00"},
    {"time": "2026-02-30T00:00:00.000Z"},
    {"reader": "desk 1"},
    {"site": None},
    {"extra": 1},
    {"v": 2},
])
def test_a_malformed_registry_record_is_refused(change: dict[str, object]) -> None:
    record = {**_reader_record(), **change}
    with pytest.raises(SchemaError):
        RegistryRecord.from_record(record)


def test_a_registry_record_missing_a_field_is_refused() -> None:
    record = _reader_record()
    del record["site"]
    with pytest.raises(SchemaError, match="missing fields"):
        RegistryRecord.from_record(record)


@pytest.mark.parametrize(("field", "value"), [
    ("dual_signoff", 1), ("loan_days", 0), ("loan_days", 3651), ("disposal_final", None),
    ("required_qualification", "q" * 129), ("required_qualification", 7)])
def test_a_class_policy_holds_only_what_the_rules_read(field: str, value: object) -> None:
    fields = {"class": "taser", "dual_signoff": True, "required_qualification": None,
              "loan_days": None, "disposal_final": True, field: value}
    with pytest.raises(SchemaError):
        RegistryRecord.make(CLASS_POLICY, agency="met", seq=0, prev=GENESIS_PREV,
                            time=REGISTRY_TIME, **fields)


def test_a_class_policy_carries_any_qualification_the_api_stores() -> None:
    """The API takes a qualification as any text up to 128 characters: its policy is logged
    as it is (refusing it would make the registration fail after the row was accepted)."""
    for qualification in ("", "Taser level 2 \u00e9", "x" * 128):
        record = RegistryRecord.make(CLASS_POLICY, agency="met", seq=0, prev=GENESIS_PREV,
                                     time=REGISTRY_TIME, **{
                                         "class": "taser", "dual_signoff": False,
                                         "required_qualification": qualification,
                                         "loan_days": 30, "disposal_final": True})
        assert RegistryRecord.from_record(parse_record(record.to_bytes())) == record


def test_registry_chains_link_each_subject_to_its_previous_record() -> None:
    chains = RegistryChains("met")
    first = chains.append(READER_REGISTERED, REGISTRY_TIME, **READER_FIELDS)
    other = chains.append(CLASS_POLICY, REGISTRY_TIME, **{
        "class": "taser", "dual_signoff": True, "required_qualification": None,
        "loan_days": None, "disposal_final": True})
    revoked = chains.append(READER_REVOKED, REGISTRY_TIME, reader="desk-1", reason="lost")
    assert (first.seq, other.seq, revoked.seq) == (0, 0, 1)
    assert revoked.prev == registry_hash(first.to_bytes()).hex()


# -- the property room: manual entries, corrections, retirements ----------------------------

ROOM = VECTORS["property_room"]


def test_property_room_records_match_their_known_answers() -> None:
    manual = CustodyEvent.from_record(ROOM["manual_event"])
    assert manual.manual == "tag unreadable: label torn"
    assert event_hash(manual).hex() == ROOM["manual_hash"]
    for record, digest in zip(ROOM["records"], ROOM["hashes"], strict=True):
        parsed = RegistryRecord.from_record(record)
        assert registry_hash(parsed.to_bytes()).hex() == digest
    assert [RegistryRecord.from_record(r).subject[0] for r in ROOM["records"]] == [
        "asset", "asset", "person"]


def test_a_manual_reason_is_encoded_as_the_general_canonical_path_would() -> None:
    """The fast path (`schema_checked_bytes`) and RFC 8785 agree on every printable ASCII
    reason, quotes and backslashes included."""
    event = CustodyEvent.from_record(ROOM["manual_event"])
    for reason in ('said "it won\'t read"', "back\\slash /", " ~!#$%&'()*+,-.:;<=>?@[]^_`{|}"):
        manual = replace(event, manual=reason)
        assert manual.to_bytes() == canonical_bytes(manual.to_record())
        assert CustodyEvent.from_record(parse_record(manual.to_bytes())) == manual


def test_an_event_without_manual_keeps_its_bytes() -> None:
    """`manual` is written only when set: every reader-made event hashes as before."""
    assert "manual" not in EVENTS[1].to_record()
    assert event_hash(EVENTS[1]).hex() == VECTORS["chain"]["hashes"][1]


@pytest.mark.parametrize("change", [
    {"manual": None},  # the field is absent when unset, never null
    {"manual": ""},
    {"manual": "x" * 201},
    {"manual": "line\nbreak"},
    {"manual": "caf\u00e9"},
    {"manual": 7},
    {"observations": ["00" * 32]},  # a manual entry cites no reads
    {"reader": None},  # ... names its desk
    {"authorised_by": []},  # ... and the officer who entered it
], ids=lambda c: next(iter(c)) + "=" + repr(next(iter(c.values())))[:20])
def test_a_malformed_manual_event_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        CustodyEvent.from_record({**ROOM["manual_event"], **change})


@pytest.mark.parametrize(("index", "change"), [
    (0, {"event": "AB" * 32}), (0, {"leaf": -1}), (0, {"leaf": "1"}), (0, {"reason": ""}),
    (0, {"reason": "r" * 201}), (0, {"asset": "has space"}), (1, {"reason": None}),
    (1, {"event": "00" * 32}), (2, {"person": "officer-17"}), (2, {"asset": "x"}),
    (0, {"type": "event-edited"}), (0, {"type": "event-deleted"}),
])
def test_a_malformed_property_room_record_is_refused(index: int, change: dict[str, Any]
                                                     ) -> None:
    with pytest.raises(SchemaError):
        RegistryRecord.from_record({**ROOM["records"][index], **change})
