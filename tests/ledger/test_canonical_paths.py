"""Every fast path of the canonical JSON module equals the reference, by property.

The reference is independent of the code under test: RFC 8785 as the `rfc8785` library writes
it, the record limits (MAX_DEPTH, MAX_RECORD_BYTES), and for parsing a strict JSON parse whose
value must re-encode to the very bytes given. Inputs include integers at and beyond
+-(2^53-1), strings with escapes and non-ASCII text, deep nesting, and bytes that are almost
canonical (re-spaced, unsorted, duplicated keys, escaped where they need not be).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ledger.core.bundle import BundleError
from ledger.core.bundle_parse import parse_line
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

EDGE_INTEGERS = st.sampled_from([
    0, 1, -1, MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -MAX_SAFE_INTEGER - 1,
    MAX_SAFE_INTEGER + 2, 2**63, -(2**63), 10**15, 10**16, 999_999_999_999_999,
])
INTEGERS = st.one_of(EDGE_INTEGERS, st.integers(-(2**60), 2**60))
TEXT = st.one_of(
    st.text(max_size=12),
    st.text(st.sampled_from('"\\/\b\f\n\r\t\x00\x1f\x7f\u2028\u00e9\U0001f600a0'), max_size=8),
)
KEYS = st.one_of(st.text(max_size=6), st.sampled_from(["a", "b", "\ufb33", "\U0001f600", "é"]))
VALUES = st.recursive(
    st.none() | st.booleans() | INTEGERS | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=12,
)
RECORDS = st.dictionaries(KEYS, VALUES, max_size=5)


def _nested(depth: int, leaf: Any) -> dict[str, Any]:
    """A record `depth` containers deep (the record itself counts as one) around `leaf`."""
    value: Any = leaf
    for level in range(depth - 1):
        value = {"k": value} if level % 2 else [value]
    return {"a": value}


def _depth(value: Any, depth: int = 1) -> int:
    """Levels of containers in `value` whose depth MAX_DEPTH bounds: an empty container
    counts as the level it sits at, a non-empty one also as the level of its contents."""
    if isinstance(value, dict | list):
        items = value.values() if isinstance(value, dict) else value
        return max([depth + 1, *(_depth(v, depth + 1) for v in items)]) if items else depth
    return depth


def reference_bytes(record: dict[str, Any]) -> bytes | None:
    """RFC 8785 by the `rfc8785` library, within the record limits; None where refused."""
    try:
        data = rfc8785.dumps(record)
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return None
    if _depth(record) > MAX_DEPTH or len(data) > MAX_RECORD_BYTES:
        return None
    return data


def _refuse(_text: str) -> Any:
    raise ValueError("not an integer")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len({k for k, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def reference_parse(data: bytes) -> dict[str, Any] | None:
    """The record `data` is the canonical form of, or None."""
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_float=_refuse, parse_constant=_refuse)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict) or reference_bytes(value) != data:
        return None
    return value


@settings(max_examples=500, deadline=None)
@given(RECORDS)
@example({"a": MAX_SAFE_INTEGER, "b": -MAX_SAFE_INTEGER})
@example({"a": MAX_SAFE_INTEGER + 1})
@example({"a": -MAX_SAFE_INTEGER - 1})
@example(_nested(MAX_DEPTH - 1, 1))
@example(_nested(MAX_DEPTH, []))
@example(_nested(MAX_DEPTH, 1))
@example({"\U0001f600": 1, "\ufb33": 2})
def test_encoder_equals_rfc8785_within_the_limits(record: dict[str, Any]) -> None:
    expected = reference_bytes(record)
    try:
        got: bytes | None = canonical_bytes(record)
    except EncodingError:
        got = None
    assert got == expected


def _spellings(record: dict[str, Any]) -> list[bytes]:
    """The record's canonical bytes if any, and near-canonical spellings of it."""
    out = []
    expected = reference_bytes(record)
    if expected is not None:
        out.append(expected)
    spellings: tuple[dict[str, Any], ...] = (
        {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": False},
        {"sort_keys": True, "separators": (",", ":"), "ensure_ascii": True},
        {"sort_keys": False, "separators": (",", ":"), "ensure_ascii": False},
        {"sort_keys": True, "separators": (", ", ":"), "ensure_ascii": False},
    )
    for options in spellings:
        out.append(json.dumps(record, **options).encode("utf-8", "surrogatepass"))
    return out


@settings(max_examples=500, deadline=None)
@given(RECORDS)
@example({"a": MAX_SAFE_INTEGER + 2})
@example({"a": -(2**63), "b": "x"})
@example(_nested(MAX_DEPTH, 1))
@example({"a": "\x7f\u2028\\\"", "é": "\U0001f600"})
def test_parsers_accept_exactly_the_canonical_bytes(record: dict[str, Any]) -> None:
    for data in _spellings(record):
        _assert_parsers_agree(data)


@settings(max_examples=300, deadline=None)
@given(RECORDS, st.data())
def test_parsers_agree_on_mutated_bytes(record: dict[str, Any], data: st.DataObject) -> None:
    base = bytearray(_spellings(record)[0])
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(base)), st.sampled_from(
        b'0123456789{}[]",: \\ue-.'), st.booleans()), min_size=1, max_size=3))
    for position, byte, insert in edits:
        if insert or position == len(base):
            base.insert(position, byte)
        else:
            base[position] = byte
    _assert_parsers_agree(bytes(base))


@pytest.mark.parametrize("data", [
    b'{"a":9007199254740993}', b'{"a":-9007199254740993}', b'{"a":9007199254740992}',
    b'{"a":[' + b"1," * 3 + b'12345678901234567890]}',
    b'{"a":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}",
    b'{"a":' + b"[" * (MAX_DEPTH - 1) + b"1" + b"]" * (MAX_DEPTH - 1) + b"}",
    b'{"a":"\\ud800"}', b'{"a":"\\u00e9"}', b'{"a":1,"a":1}', b'{"a":1.0}', b'{"a":NaN}',
    b'{"a":9007199254740991,"b":"12345678901234567890"}',
    b'{"a":[9007199254740993]}', b'{"a":[1,9007199254740993]}', b'{"a":[-9007199254740993]}',
    b'{"a":{"b":-9007199254740993}}', b'{"a":"E2801160600002054BD1","b":-1}',
    b'{"a":":12345678901234567","b":"[12345678901234567"}',
])
def test_parsers_agree_on_edge_bytes(data: bytes) -> None:
    _assert_parsers_agree(data)


def _assert_parsers_agree(data: bytes) -> None:
    expected = reference_parse(data)
    try:
        parsed: dict[str, Any] | None = parse_record(data)
    except EncodingError:
        parsed = None
    try:
        line: dict[str, Any] | None = parse_line(data, "line 2")
    except BundleError:
        line = None
    assert parsed == expected, data
    assert line == expected, data


def test_a_bundle_line_refuses_what_a_record_refuses() -> None:
    # Both integers beyond 2^53-1 and nesting beyond MAX_DEPTH were accepted as bundle lines
    # while parse_record refused them.
    unsafe = b'{"a":9007199254740993}'
    with pytest.raises(NonCanonicalNumber):
        parse_record(unsafe)
    with pytest.raises(BundleError, match="line 2: integer 9007199254740993 is outside"):
        parse_line(unsafe, "line 2")
    deep = json.dumps(_nested(MAX_DEPTH, 1), separators=(",", ":")).encode()
    with pytest.raises(RecordTooDeep):
        parse_record(deep)
    with pytest.raises(BundleError, match="deeper than"):
        parse_line(deep, "line 3")
    safe = b'{"a":9007199254740991}'
    assert parse_line(safe, "line 2") == parse_record(safe) == {"a": MAX_SAFE_INTEGER}


def _strict_error(data: bytes) -> type[Exception] | None:
    """The typed error the strict parse alone gives `data` (hooks on every pair and number,
    then a re-encoding), or None where it accepts."""
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in items}) != len(items):
            raise DuplicateKey("duplicate")
        return dict(items)

    def number(_text: str) -> Any:
        raise NonCanonicalNumber("not an integer")

    if len(data) > MAX_RECORD_BYTES:
        return RecordTooLarge
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return InvalidUtf8
    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_float=number,
                           parse_constant=number)
    except RecursionError:
        return RecordTooDeep
    except EncodingError as exc:
        return type(exc)
    except ValueError:
        return EncodingError
    if not isinstance(value, dict):
        return SchemaError
    try:
        return None if canonical_bytes(value) == data else NonCanonicalEncoding
    except EncodingError as exc:
        return type(exc)


@settings(max_examples=300, deadline=None)
@given(RECORDS, st.data())
def test_parse_refusals_keep_the_strict_parses_typed_error(
        record: dict[str, Any], data: st.DataObject) -> None:
    base = bytearray(_spellings(record)[0])
    for _ in range(data.draw(st.integers(1, 3))):
        position = data.draw(st.integers(0, len(base)))
        base[position:position] = data.draw(st.sampled_from(
            [b'"a":1,', b"1.5", b"NaN", b"9007199254740993", b"{", b"[", b'"\\u00e9"', b" "]))
    _assert_same_error(bytes(base))


@pytest.mark.parametrize("data", [
    b'{"a":{"b":1,"b":2},"c":1.5}', b'{"a":{"b":1,"b":2},"c":9007199254740993}',
    b'{"a":1.5,"a":2}', b'{"a":[' + b"[" * MAX_DEPTH + b"1.5" + b"]" * MAX_DEPTH + b"]}",
    b'{"\xc3\xa9":1,"\xc3\xa9":2.5}',
])
def test_parse_refusals_keep_their_typed_error_on_edge_bytes(data: bytes) -> None:
    _assert_same_error(data)


def _assert_same_error(data: bytes) -> None:
    try:
        parse_record(data)
        got: type[Exception] | None = None
    except EncodingError as exc:
        got = type(exc)
    assert got == _strict_error(data), data
