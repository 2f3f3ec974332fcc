"""The line scanner's compiled patterns read exactly what the full parse reads, by property:
for generated custody events and signed observation envelopes, as built and as tampered with
(ids at and past their bounds, quotes and backslashes, integers at and past 2^53-1, lists at
and past their limits), `read_event` / `read_observation` give the value
`from_record(parse_record(line))` gives, or refuse what it refuses."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import bounds
from ledger.core.encoding import MAX_SAFE_INTEGER, canonical_bytes, parse_record
from ledger.core.envelope import SIGNING_PREFIX, Envelope, key_id
from ledger.core.errors import LedgerError
from ledger.core.record_scan import _PLAIN_ID_CHAR, read_event, read_observation
from ledger.core.records import CustodyEvent, Observation

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
IDS = st.one_of(
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12),
    st.sampled_from(["a" * bounds.MAX_ID_CHARS, 'q"uote', "back\\slash", "~!#"]),
)
BAD_IDS = st.sampled_from(["a" * (bounds.MAX_ID_CHARS + 1), "", "sp ace", "é", "tab\t"])
SEQS = st.one_of(st.integers(0, 10**6), st.sampled_from([MAX_SAFE_INTEGER, 10**15, 10**16 - 1]))
BAD_SEQS = st.sampled_from([MAX_SAFE_INTEGER + 1, -1, 2**60, True])
TIME = "2026-03-01T12:30:15.123Z"
BAD_TIMES = st.sampled_from(["2016-12-31T23:59:60.000Z", "2026-02-30T00:00:00.000Z",
                             "2026-03-01T12:30:15Z"])
HOLDERS = st.one_of(
    st.none(),
    st.fixed_dictionaries({"kind": st.sampled_from(["location", "agency"]), "ref": IDS}),
    st.fixed_dictionaries({"kind": st.just("person"), "ref": HEX64}),
)
BAD_HOLDERS = st.one_of(
    st.fixed_dictionaries({"kind": st.sampled_from(["person", "thing"]), "ref": IDS}),
    st.fixed_dictionaries({"kind": st.just("agency"), "ref": BAD_IDS}),
)


def _tampered(valid: st.SearchStrategy[dict[str, Any]],
              bad: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid records, and valid records with one field given a value the format refuses."""
    def spoil(record: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
        return st.sampled_from(sorted(bad)).flatmap(
            lambda name: bad[name].map(lambda value: {**record, name: value}))
    return st.one_of(valid, valid.flatmap(spoil))


EVENTS = _tampered(st.fixed_dictionaries({
    "type": st.just("custody-event"), "v": st.just(1), "agency": IDS, "asset": IDS,
    "seq": SEQS, "prev": HEX64, "action": st.sampled_from(sorted(bounds.ACTIONS)),
    "time": st.just(TIME), "from": HOLDERS, "to": HOLDERS,
    "observations": st.lists(HEX64, max_size=3).map(
        lambda h: h * (bounds.MAX_OBSERVATIONS_PER_EVENT // 3 if len(h) == 3 else 1)),
    "authorised_by": st.lists(HEX64, max_size=bounds.MAX_AUTHORISERS),
    "reader": st.none() | IDS,
}), {
    "v": st.just(2), "agency": BAD_IDS, "reader": BAD_IDS, "seq": BAD_SEQS, "time": BAD_TIMES,
    "prev": st.just("AB" * 32), "action": st.just("steal"), "from": BAD_HOLDERS,
    "to": BAD_HOLDERS, "colour": st.just("red"),
    "observations": st.just(["00" * 32] * (bounds.MAX_OBSERVATIONS_PER_EVENT + 1)),
    "authorised_by": st.just(["00" * 32] * (bounds.MAX_AUTHORISERS + 1)),
})
OBSERVATIONS = _tampered(st.fixed_dictionaries({
    "type": st.just("observation"), "v": st.just(1), "device": IDS, "seq": SEQS,
    "time": st.just(TIME), "kind": st.sampled_from(sorted(bounds.OBSERVATION_KINDS)),
    "epc": st.integers(1, bounds.MAX_EPC_WORDS).flatmap(
        lambda words: st.text("0123456789ABCDEF", min_size=4 * words, max_size=4 * words)),
    "antenna": st.integers(bounds.MIN_ANTENNA, bounds.MAX_ANTENNA),
    "rssi": st.none() | st.integers(bounds.MIN_RSSI_DBM, bounds.MAX_RSSI_DBM),
    "zone": st.none() | IDS, "session": st.none() | IDS,
    "uri": st.none() | st.sampled_from([
        "urn:epc:id:giai:0614141.5678", "urn:epc:" + "x" * (bounds.MAX_URI_CHARS - 8)]),
    "direction": st.sampled_from([None, *sorted(bounds.DIRECTIONS)]),
}), {
    "device": BAD_IDS, "zone": BAD_IDS, "seq": BAD_SEQS, "time": BAD_TIMES,
    "kind": st.just("leave"), "epc": st.sampled_from(["", "303", "3034abcd", "30" * 64]),
    "antenna": st.sampled_from([-1, bounds.MAX_ANTENNA + 1, 1000]),
    "rssi": st.sampled_from([bounds.MIN_RSSI_DBM - 1, bounds.MAX_RSSI_DBM + 1, -1000]),
    "uri": st.sampled_from(["urn:x:1", "urn:epc:" + "x" * (bounds.MAX_URI_CHARS - 7)]),
    "direction": st.just("up"), "v": st.just(2),
})


def _line(record: dict[str, Any]) -> bytes:
    """The record's canonical bytes, or where it has none (an integer past 2^53-1) the bytes
    a careless encoder would write for it."""
    try:
        return canonical_bytes(record)
    except LedgerError:
        return json.dumps(record, sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False).encode()


def _envelope_line(payload: bytes) -> bytes:
    sig = base64.urlsafe_b64encode(KEY.sign(SIGNING_PREFIX + payload)).rstrip(b"=")
    return (b'{"alg":"Ed25519","kid":"' + key_id(KEY.public_key()).encode() + b'","payload":'
            + payload + b',"sig":"' + sig + b'","v":1}')


def _verdict(read: Any, *args: Any) -> Any:
    try:
        return read(*args)
    except LedgerError:
        return LedgerError


@settings(max_examples=400, deadline=None)
@given(EVENTS)
def test_event_scan_equals_the_full_parse(record: dict[str, Any]) -> None:
    line = _line(record)
    expected = _verdict(lambda: CustodyEvent.from_record(parse_record(line)))
    assert _verdict(read_event, line, "leaf 0") == expected


@settings(max_examples=400, deadline=None)
@given(OBSERVATIONS)
def test_observation_scan_equals_the_full_parse(record: dict[str, Any]) -> None:
    payload = _line(record)
    line = _envelope_line(payload)

    def full() -> tuple[Envelope, Observation, bytes]:
        parsed = Envelope.from_bytes(line)
        return parsed, Observation.from_record(parsed.payload), parsed.canonical_payload()

    expected = _verdict(full)
    got = _verdict(read_observation, line, "observation 0")
    if expected is LedgerError:
        assert got is LedgerError
        return
    assert got is not LedgerError
    assert (got[0].kid, got[0].sig, got[1], got[2]) == (
        expected[0].kid, expected[0].sig, expected[1], expected[2])
    assert got[2] == payload


def test_the_scanners_id_alphabet_is_the_formats_less_what_json_escapes() -> None:
    plain = {chr(c) for c in range(128) if re.fullmatch(_PLAIN_ID_CHAR, chr(c))}
    ids = {chr(c) for c in range(128) if bounds.is_identifier(chr(c))}
    assert ids - plain == {'"', "\\"} and plain <= ids
