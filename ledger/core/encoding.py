"""Canonical encoding of records: RFC 8785 JSON canonicalisation with named limits.

A record's bytes are what gets signed, hashed and put in the Merkle log, so there must be exactly
one byte string per record. We produce it with the maintained `rfc8785` package and accept on
the wire only bytes that already are canonical: anything else (duplicate keys, floats, oversize,
overdeep, bad UTF-8, other whitespace or key order) is refused with a typed error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

import rfc8785

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

SCHEMA_VERSION: Final = 1
"""Version carried as `"v"` in every record and envelope; bump it when a field's meaning changes."""

MAX_RECORD_BYTES: Final = 64 * 1024
"""A custody event with its justifying observations is a few kilobytes; 64 KiB leaves room for
large dual sign-off events while bounding what one MQTT message or bundle entry can make us
parse."""

MAX_DEPTH: Final = 16
"""Records are shallow (envelope > payload > holder); 16 levels refuses JSON bombs long before
Python's recursion limit is near."""

MAX_SAFE_INTEGER: Final = 2**53 - 1
"""RFC 8785 serialises numbers as IEEE 754 doubles: larger integers would not round-trip."""


def _check_value(value: Any, depth: int) -> bool:
    """Check every limit and type in one pass; return whether every object key is ASCII.

    Strings are not inspected here: a lone surrogate surfaces as a UnicodeEncodeError when the
    canonical text is encoded, which `canonical_bytes` turns into InvalidUtf8.
    """
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise NonCanonicalNumber(
                f"integer {value} is outside the interoperable range ±(2^53-1)"
            )
        return True
    if depth > MAX_DEPTH:
        raise RecordTooDeep(f"record nests deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        if value and depth == MAX_DEPTH:
            raise RecordTooDeep(f"record nests deeper than {MAX_DEPTH} levels")
        ascii_keys = True
        for key, item in value.items():
            if not isinstance(key, str):
                raise SchemaError(f"object keys must be strings, found {type(key).__name__}")
            if not key.isascii():
                ascii_keys = False
            if type(item) is not str and not _check_value(item, depth + 1):
                ascii_keys = False
        return ascii_keys
    if isinstance(value, list | tuple):
        if value and depth == MAX_DEPTH:
            raise RecordTooDeep(f"record nests deeper than {MAX_DEPTH} levels")
        ascii_keys = True
        for item in value:
            if type(item) is not str and not _check_value(item, depth + 1):
                ascii_keys = False
        return ascii_keys
    if isinstance(value, float):
        raise NonCanonicalNumber(f"records carry integers only, found float {value!r}")
    if isinstance(value, str):  # StrEnum and friends encode as their string value
        return True
    if isinstance(value, int):  # IntEnum: as its integer value
        return _check_value(int(value), depth)
    raise SchemaError(f"cannot encode a value of type {type(value).__name__}")


_STDLIB_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_bytes(record: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical bytes of `record`, after checking every limit."""
    if not isinstance(record, Mapping):
        raise SchemaError(f"a record is a JSON object, found {type(record).__name__}")
    if _check_value(record, 1):
        # Fast path, about 4x quicker than rfc8785's pure-Python encoder. After _check_value
        # a record holds only objects, arrays, strings, safe integers, booleans and null; for
        # those, with ASCII keys (where sorting by code point equals RFC 8785's UTF-16 order),
        # the stdlib's sorted, compact, non-ASCII-escaping output is byte for byte RFC 8785:
        # same escapes (\b \t \n \f \r, other controls as lower-case \u00xx), same integers.
        # tests/ledger/test_encoding.py checks this equivalence against rfc8785 by property.
        try:
            data = _STDLIB_CANONICAL.encode(record).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidUtf8(f"string is not valid Unicode text: {exc.reason}") from None
    else:
        try:
            data = rfc8785.dumps(record)
        except UnicodeEncodeError as exc:
            raise InvalidUtf8(f"string is not valid Unicode text: {exc.reason}") from None
        except rfc8785.CanonicalizationError as exc:
            raise EncodingError(f"cannot canonicalise record: {exc}") from None
    if len(data) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record is {len(data)} bytes, limit is {MAX_RECORD_BYTES}")
    return data


def schema_checked_bytes(record: Mapping[str, Any]) -> bytes:
    """`canonical_bytes(record)` for a record its schema has just checked to hold only ASCII
    keys and strings, null, booleans, integers within ±MAX_SAFE_INTEGER, and lists and
    objects of those, at most MAX_DEPTH deep: the same bytes, without walking the record a
    second time (for such records `canonical_bytes` takes the stdlib fast path). Only a
    caller whose own check guarantees all of that may use it (`CustodyEvent.to_bytes`);
    tests/ledger/test_encoding_fast_paths.py checks the equality on generated events."""
    data = _STDLIB_CANONICAL.encode(record).encode("ascii")
    if len(data) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record is {len(data)} bytes, limit is {MAX_RECORD_BYTES}")
    return data


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(f"key {key!r} appears more than once in one object")
        result[key] = value
    return result


def _refuse_float(text: str) -> Any:
    raise NonCanonicalNumber(f"records carry integers only, found {text!r}")


def _refuse_constant(text: str) -> Any:
    raise NonCanonicalNumber(f"{text} is not a JSON number")


_MARKS: Final = bytes.maketrans(b"0123456789{,-", b"0000000000[::")
"""Digits to "0", openers to "[", and what may stand before an integer's digits to ":"."""
_SAFE_DIGITS: Final = b"0" * len(str(MAX_SAFE_INTEGER))
_LONG_INTEGERS: Final = (b":" + _SAFE_DIGITS, b"[" + _SAFE_DIGITS)


def _may_break_limits(data: bytes) -> bool:
    """False when canonical JSON `data` can hold neither an integer beyond ±MAX_SAFE_INTEGER
    nor nesting as deep as MAX_DEPTH: one pass in C instead of walking the value.

    Nesting MAX_DEPTH deep takes MAX_DEPTH opening brackets. An integer beyond 2^53-1 has at
    least 16 digits, and in canonical JSON an integer's digits follow ":", ",", "[" or its
    "-"; a run of 16 digits after such a byte inside a string only costs the walk."""
    marks = data.translate(_MARKS)
    return (marks.count(b"[") >= MAX_DEPTH or _LONG_INTEGERS[0] in marks
            or _LONG_INTEGERS[1] in marks)


_FAST_DECODER: Final = json.JSONDecoder(parse_float=_refuse_float, parse_constant=_refuse_constant)
"""The C parser; a float or NaN raises from its hook (the strict parse then says which)."""


def _fast_parse(data: bytes) -> dict[str, Any] | None:
    """The record `data` holds if it is canonical, by the quick route; None when the strict
    parse must decide (it refuses, or accepts the same value).

    Canonical bytes never repeat a key within an object (a parsed object re-encodes with one
    entry per key) and never hold a float or NaN, so bytes whose value passes `canonical_bytes`'
    checks and re-encodes to themselves are exactly the bytes the strict parse accepts, with
    the same value. For ASCII bytes the value's only text is ASCII, so the stdlib encoder is
    `canonical_bytes`' own fast path and the checks are what `_check_value` checks: integers
    within ±MAX_SAFE_INTEGER and nesting within MAX_DEPTH. Those are walked only when the
    bytes could break them: fewer than MAX_DEPTH brackets cannot nest MAX_DEPTH deep, and
    without a run of 16 digits no integer exceeds 2^53-1.
    """
    try:
        if data.isascii():
            text = data.decode("ascii")
            value = _FAST_DECODER.decode(text)
            if type(value) is not dict or _STDLIB_CANONICAL.encode(value) != text:
                return None
            if _may_break_limits(data):
                _check_value(value, 1)
            return value
        value = _FAST_DECODER.decode(data.decode("utf-8"))
        if isinstance(value, dict) and canonical_bytes(value) == data:
            return value
    except (ValueError, RecursionError, EncodingError):  # the strict parse names the reason
        pass
    return None


def parse_record(data: bytes) -> dict[str, Any]:
    """Parse canonical record bytes strictly; the inverse of `canonical_bytes`."""
    if len(data) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record is {len(data)} bytes, limit is {MAX_RECORD_BYTES}")
    data = bytes(data)
    value = _fast_parse(data)
    if value is not None:
        return value
    try:
        text = data.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidUtf8(f"byte {exc.start} is not valid UTF-8") from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_refuse_duplicates,
            parse_float=_refuse_float,
            parse_constant=_refuse_constant,
        )
    except RecursionError:
        raise RecordTooDeep(f"record nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        if isinstance(exc, EncodingError):
            raise
        raise EncodingError(f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SchemaError(f"a record is a JSON object, found {type(value).__name__}")
    if canonical_bytes(value) != data:
        raise NonCanonicalEncoding("record bytes are valid JSON but not in RFC 8785 canonical form")
    return value
