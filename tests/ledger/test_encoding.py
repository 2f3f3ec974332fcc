"""Canonical encoding: known answers, round trips, and every refusal with its typed error."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import hashing
from ledger.core.encoding import (
    MAX_DEPTH,
    MAX_RECORD_BYTES,
    MAX_SAFE_INTEGER,
    canonical_bytes,
    parse_record,
)
from ledger.core.errors import (
    DuplicateKey,
    EncodingError,
    InvalidUtf8,
    NonCanonicalEncoding,
    NonCanonicalNumber,
    RecordTooDeep,
    RecordTooLarge,
    SchemaError,
)
from tests.paths import VECTORS_DIR

VECTORS = json.loads((VECTORS_DIR / "core_records.json").read_text())


@pytest.mark.parametrize("case", VECTORS["canonical"], ids=lambda c: c["name"])
def test_canonical_known_answers(case: dict[str, Any]) -> None:
    assert canonical_bytes(case["input"]).decode() == case["canonical"]
    assert parse_record(case["canonical"].encode()) == case["input"]


@pytest.mark.parametrize("case", VECTORS["domain_hash"], ids=lambda c: c["domain"])
def test_domain_hash_known_answers(case: dict[str, Any]) -> None:
    data = bytes.fromhex(case["data_hex"])
    assert hashing.domain_hash(case["domain"], data).hex() == case["hash"]
    # Independent recomputation of the documented construction.
    expected = hashlib.sha256(b"kitledger/v1/" + case["domain"].encode() + b"\x00" + data)
    assert case["hash"] == expected.hexdigest()


def test_domains_separate_the_same_bytes() -> None:
    assert hashing.domain_hash("observation", b"x") != hashing.domain_hash("custody-event", b"x")
    with pytest.raises(ValueError, match="NUL"):
        hashing.domain_hash("a\x00b", b"")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_round_trip(record: dict[str, Any]) -> None:
    data = canonical_bytes(record)
    assert parse_record(data) == record
    assert canonical_bytes(parse_record(data)) == data


REFUSED = [
    ("duplicate key", b'{"a":1,"a":2}', DuplicateKey),
    ("float", b'{"a":1.5}', NonCanonicalNumber),
    ("exponent", b'{"a":1e3}', NonCanonicalNumber),
    ("NaN", b'{"a":NaN}', NonCanonicalNumber),
    ("Infinity", b'{"a":-Infinity}', NonCanonicalNumber),
    ("big int", b'{"a":9007199254740992}', NonCanonicalNumber),
    ("minus zero", b'{"a":-0}', NonCanonicalEncoding),
    ("whitespace", b'{ "a":1}', NonCanonicalEncoding),
    ("key order", b'{"b":1,"a":2}', NonCanonicalEncoding),
    ("escaped ascii", b'{"a":"\\u0041"}', NonCanonicalEncoding),
    ("bad utf-8", b'{"a":"\xff"}', InvalidUtf8),
    ("overlong utf-8", b'{"a":"\xc0\xaf"}', InvalidUtf8),
    ("lone surrogate", b'{"a":"\\ud800"}', InvalidUtf8),
    ("top-level array", b"[1]", SchemaError),
    ("top-level string", b'"a"', SchemaError),
    ("trailing garbage", b'{"a":1}x', EncodingError),
    ("trailing record", b'{"a":1}{"a":1}', EncodingError),
    ("truncated", b'{"a":', EncodingError),
    ("empty", b"", EncodingError),
    ("deep", b'{"a":' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b"}", RecordTooDeep),
    ("oversize bomb", b"[" * 70_000, RecordTooLarge),
    ("huge int string", b'{"a":' + b"9" * 5000 + b"}", EncodingError),
]


@pytest.mark.parametrize(("name", "data", "error"), REFUSED, ids=[r[0] for r in REFUSED])
def test_parse_refuses(name: str, data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_record(data)


def test_deep_but_small_input_is_refused_as_deep() -> None:
    # Whether the JSON parser's recursion guard or our depth check fires first, it is "deep".
    with pytest.raises(RecordTooDeep):
        parse_record(b'{"a":' + b"[" * 20_000 + b"]" * 20_000 + b"}")


def test_size_limit_is_exact() -> None:
    filler = "x" * (MAX_RECORD_BYTES - len(b'{"a":""}'))
    assert len(canonical_bytes({"a": filler})) == MAX_RECORD_BYTES
    with pytest.raises(RecordTooLarge):
        canonical_bytes({"a": filler + "x"})
    with pytest.raises(RecordTooLarge):
        parse_record(b" " * (MAX_RECORD_BYTES + 1))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ({"a": 0.5}, NonCanonicalNumber),
        ({"a": 2**53}, NonCanonicalNumber),
        ({1: "x"}, SchemaError),
        ({"a": object()}, SchemaError),
        ({"a": b"bytes"}, SchemaError),
        ({"a": "\udc80"}, InvalidUtf8),
        ([1, 2], SchemaError),
    ],
)
def test_encode_refuses(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        canonical_bytes(value)


def test_depth_limit_is_exact() -> None:
    record: dict[str, Any] = {}
    inner = record
    for _ in range(MAX_DEPTH - 2):
        inner["a"] = {}
        inner = inner["a"]
    inner["a"] = 1
    assert parse_record(canonical_bytes(record)) == record
    inner["a"] = [1]
    with pytest.raises(RecordTooDeep):
        canonical_bytes(record)


ascii_keyed = st.recursive(
    st.none() | st.booleans() | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(alphabet=st.characters(codec="utf-8")),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=6),
                      children, max_size=4),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(alphabet=st.characters(max_codepoint=127), max_size=6),
                       ascii_keyed, max_size=6))
def test_fast_path_is_byte_identical_to_rfc8785(record: dict[str, Any]) -> None:
    assert canonical_bytes(record) == rfc8785.dumps(record)


def test_non_ascii_keys_take_rfc8785_ordering() -> None:
    # By code point U+FB33 comes first; by UTF-16 code unit (RFC 8785) U+1F600 (D83D DE00) does.
    record = {"\U0001f600": 1, "\ufb33": 2, "a": 3}
    assert canonical_bytes(record) == rfc8785.dumps(record)
    assert canonical_bytes(record).index("\U0001f600".encode()) < canonical_bytes(record).index(
        "\ufb33".encode()
    )


@pytest.mark.parametrize("text", ["\u2028", "\x7f", "\x00", "\x1f", '"\\', "\U0001f600", "é"])
def test_string_escapes_match_rfc8785(text: str) -> None:
    assert canonical_bytes({"s": text}) == rfc8785.dumps({"s": text})
