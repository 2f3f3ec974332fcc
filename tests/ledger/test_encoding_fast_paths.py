"""The ingest hot path's encoding shortcuts give the reference encoder's bytes and errors:
`CustodyEvent.to_bytes` (encoded once, after its schema check) and `parse_record`'s fast
parse (the strict parse for anything that is not canonical)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.encoding import MAX_SAFE_INTEGER, canonical_bytes, parse_record
from ledger.core.errors import (
    DuplicateKey,
    EncodingError,
    NonCanonicalEncoding,
    NonCanonicalNumber,
    RecordTooDeep,
    SchemaError,
)
from ledger.core.records import CustodyEvent, Holder

_HEX64 = st.text("0123456789abcdef", min_size=64, max_size=64)
_IDENT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                 max_size=128)
_HOLDER = st.one_of(
    st.builds(Holder, kind=st.sampled_from(["location", "agency"]), ref=_IDENT),
    st.builds(Holder, kind=st.just("person"), ref=_HEX64),
)
_EVENTS = st.builds(
    CustodyEvent, agency=_IDENT, asset=_IDENT, seq=st.integers(0, MAX_SAFE_INTEGER),
    prev=_HEX64, action=st.sampled_from(["register", "check_out", "check_in", "transfer"]),
    time=st.just("2026-03-01T12:30:15.123Z"), holder_from=st.none() | _HOLDER,
    holder_to=st.none() | _HOLDER,
    observations=st.lists(_HEX64, max_size=64).map(tuple),
    authorised_by=st.lists(_HEX64, max_size=8).map(tuple), reader=st.none() | _IDENT,
)


@settings(max_examples=300, deadline=None)
@given(_EVENTS)
def test_event_bytes_are_the_reference_encoding(event: CustodyEvent) -> None:
    record = event.to_record()
    assert event.to_bytes() == canonical_bytes(record) == rfc8785.dumps(record)
    assert parse_record(event.to_bytes()) == record


def test_event_refusals_keep_their_errors() -> None:
    event = CustodyEvent(agency="north", asset="A-1", seq=0, prev="00" * 32, action="register",
                         time="2026-03-01T12:30:15.123Z", holder_from=None,
                         holder_to=Holder("location", "store"))
    event.to_bytes()
    with pytest.raises(NonCanonicalNumber):
        CustodyEvent(**{**_fields(event), "seq": MAX_SAFE_INTEGER + 1}).to_bytes()
    with pytest.raises(SchemaError):  # the schema check runs before the number check
        CustodyEvent(**{**_fields(event), "seq": None}).to_bytes()  # type: ignore[arg-type]
    with pytest.raises(SchemaError):
        CustodyEvent(**{**_fields(event), "agency": "nörth"}).to_bytes()


def _fields(event: CustodyEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in (
        "agency", "asset", "seq", "prev", "action", "time", "holder_from", "holder_to",
        "observations", "authorised_by", "reader")}


@pytest.mark.parametrize(("data", "error"), [
    (b'{"a":1,"a":1}', DuplicateKey),
    (b'{"a":{"b":2,"b":2}}', DuplicateKey),
    (b'{"a":1.5}', NonCanonicalNumber),
    (b'{"a":NaN}', NonCanonicalNumber),
    (b'{"a":9007199254740992}', NonCanonicalNumber),
    (b'{"b":1,"a":2}', NonCanonicalEncoding),
    (b'{"a": 1}', NonCanonicalEncoding),
    (b'{"a":"\\ud800"}', EncodingError),
    (b"[1]", SchemaError),
    (b'{"a":' * 20 + b"1" + b"}" * 20, RecordTooDeep),
    (b'{"a":1', EncodingError),
])
def test_parse_refusals_keep_their_errors(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_record(data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(), _JSON, max_size=6))
def test_parse_accepts_canonical_and_refuses_respaced(record: dict[str, Any]) -> None:
    try:
        data = canonical_bytes(record)
    except EncodingError:  # lone surrogates have no canonical form
        return
    assert parse_record(data) == record
    spaced = json.dumps(record, indent=1, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if spaced != data:
        with pytest.raises(EncodingError):
            parse_record(spaced)
