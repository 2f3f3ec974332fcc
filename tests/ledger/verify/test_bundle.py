"""The bundle format: round trip, fingerprint, and hostile files refused before any hashing."""

from __future__ import annotations

import json

import pytest

from ledger.core import bundle as bundle_format
from ledger.core.bundle import BundleError, fast_canonical
from ledger.core.bundle_parse import parse_bundle
from ledger.core.encoding import canonical_bytes, parse_record
from ledger.core.envelope import Envelope, envelope_hash, signing_message
from ledger.core.errors import LedgerError
from ledger.core.record_scan import read_event, read_observation
from ledger.core.records import CustodyEvent, Observation, event_hash
from tests.ledger.verify.audit_support import (
    Story,
    edit_json_line,
    make_story,
    relines,
    section_start,
)


@pytest.fixture(scope="module")
def offline_story() -> Story:
    return make_story(None)


@pytest.fixture(scope="module")
def plain(offline_story: Story) -> bytes:
    return offline_story.bundle()


def test_round_trip_keeps_every_part(plain: bytes, offline_story: Story) -> None:
    parsed = parse_bundle(plain)
    assert parsed.fingerprint == parsed.computed_fingerprint
    assert len(parsed.events) == len(offline_story.events) == 12
    assert [e.record for e in parsed.events] == [e.to_bytes() for e in offline_story.events]
    assert parsed.devices == tuple(offline_story.devices)
    assert [c.size1 for c in parsed.consistency] == [6]
    # Every line is its own RFC 8785 canonical form (the reference encoder agrees).
    for line in plain.split(b"\n")[:-1]:
        assert canonical_bytes(parse_record(line)) == line


def test_fingerprint_covers_every_line(plain: bytes) -> None:
    tampered = plain.replace(b'"store-central"', b'"store-centrak"', 1)
    parsed = parse_bundle(tampered)
    assert parsed.fingerprint != parsed.computed_fingerprint
    assert parse_bundle(plain).fingerprint.hex() in plain.decode()


def test_fast_readers_agree_with_the_reference(offline_story: Story) -> None:
    for event in offline_story.events:
        line = event.to_bytes()
        assert read_event(line, "t") == CustodyEvent.from_record(parse_record(line))
        assert event_hash(event) == event_hash(read_event(line, "t"))
    for envelope in offline_story.observations:
        line = envelope.to_bytes()
        parsed, observation, payload = read_observation(line, "t")
        assert observation == Observation.from_record(envelope.payload)
        assert parsed.kid == envelope.kid and parsed.sig == envelope.sig
        assert b"kitledger/v1/envelope-signature\x00" + payload == signing_message(
            envelope.payload)
        assert envelope_hash(Envelope.from_bytes(line)) == envelope_hash(envelope)
    assert fast_canonical({"a": "\u00e9\x01", "b": [1, -2]}) == canonical_bytes(
        {"a": "\u00e9\x01", "b": [1, -2]})


@pytest.mark.parametrize("variant", [
    "seq-bool", "bad-action", "seq-float", "unknown-field", "bad-prev", "leap-second",
    "quote-in-id",
])
def test_odd_events_take_the_reference_path(offline_story: Story, variant: str) -> None:
    record = offline_story.events[1].to_record()
    changes = {"seq-bool": ("seq", True), "bad-action": ("action", "steal"),
               "unknown-field": ("colour", "red"), "bad-prev": ("prev", "AB" * 32),
               "leap-second": ("time", "2016-12-31T23:59:60.000Z"),
               "quote-in-id": ("reader", 'desk"1')}
    if variant == "seq-float":
        line = fast_canonical(record).replace(b'"seq":1', b'"seq":1.0')
    else:
        name, value = changes[variant]
        record[name] = value
        line = fast_canonical(record)
    try:
        reference: object = CustodyEvent.from_record(json.loads(line))
    except (LedgerError, ValueError) as exc:
        reference = type(exc)
    try:
        fast: object = read_event(line, "t")
    except (LedgerError, ValueError) as exc:
        fast = type(exc)
    if isinstance(reference, CustodyEvent):
        assert fast == reference
    else:
        assert isinstance(fast, type) and issubclass(fast, LedgerError)


def test_hostile_bundles_are_refused(plain: bytes) -> None:
    header, rest = plain.split(b"\n", 1)
    cases = {
        "not json": b"{nope\n",
        "empty": b"",
        "no final newline": plain[:-1],
        "trailing garbage": plain + b'{"type":"extra"}\n',
        "trailing blank": plain + b"\n",
        "truncated": plain[: plain.rindex(b"\n", 0, -1) + 1],
        "wrong version": edit_json_line(header, lambda r: r.update(v=4)) + b"\n" + rest,
        "wrong format": edit_json_line(header, lambda r: r.update(format="x")) + b"\n" + rest,
        "huge counts": edit_json_line(header, lambda r: r["counts"].update(events=10**9))
        + b"\n" + rest,
        "count mismatch": edit_json_line(header, lambda r: r["counts"].update(devices=3))
        + b"\n" + rest,
        "non-canonical": header.replace(b'{"chain"', b'{ "chain"') + b"\n" + rest,
        "duplicate key": header[:-1] + b',"v":3}\n' + rest,
        "float": header.replace(b'"v":3', b'"v":3.0') + b"\n" + rest,
        "deep": b"[" * 100_000 + b"\n",
        "array line": b"[]\n",
    }
    for name, data in cases.items():
        with pytest.raises(BundleError):
            parse_bundle(data)
        assert name  # each case named for the failure message


def test_oversize_is_refused_before_reading(monkeypatch: pytest.MonkeyPatch, plain: bytes
                                            ) -> None:
    monkeypatch.setattr("ledger.core.bundle_parse.MAX_BUNDLE_BYTES", len(plain) - 1)
    with pytest.raises(BundleError, match="exceeds"):
        parse_bundle(plain)
    long_line = b'{"x":"' + b"a" * (bundle_format.MAX_RECORD_BYTES + 1) + b'"}\n'
    with pytest.raises(BundleError, match="exceeds"):
        parse_bundle(long_line)


def test_malformed_inclusion_line_is_refused(plain: bytes) -> None:
    first = section_start(plain, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first + 1] = edit_json_line(lines[first + 1], lambda r: r.update(leaf=-1))
        return lines

    with pytest.raises(BundleError, match="out of range"):
        parse_bundle(relines(plain, edit))


def test_header_log_id_must_match_its_key(plain: bytes) -> None:
    from ledger.verify import OfflineChainReader, verify_bundle

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[0] = edit_json_line(lines[0], lambda r: r["log"].update(id="0" * 32))
        return lines

    parsed = parse_bundle(relines(plain, edit))
    report = verify_bundle(parsed, OfflineChainReader(parsed))
    assert "header names log" in report.check("checkpoint-signatures").detail
