"""The evidence record kinds: `evidence-referenced` (case and exhibit) and `asset-disposed`
(why and to whom, the recipient by commitment). Each valid record round-trips through its
canonical bytes; each field outside the format is refused by name."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.core.encoding import parse_record
from ledger.core.errors import SchemaError
from ledger.core.records import (
    ASSET_DISPOSED,
    EVIDENCE_REFERENCED,
    GENESIS_PREV,
    RegistryRecord,
)

TIME = "2026-12-05T05:00:00.000Z"
HASH = "ab" * 32
DISPOSED = {"asset": "E-1", "event": HASH, "leaf": 41, "disposition": "returned_to_owner",
            "recipient": "cd" * 32}
REFERENCED = {"asset": "E-1", "case": "24-001234", "exhibit": "JD/1"}


def _make(kind: str, fields: dict[str, Any]) -> RegistryRecord:
    return RegistryRecord.make(kind, agency="met", seq=1, prev=GENESIS_PREV, time=TIME,
                               **fields)


@pytest.mark.parametrize(("kind", "fields"), [
    (EVIDENCE_REFERENCED, REFERENCED), (ASSET_DISPOSED, DISPOSED),
    (ASSET_DISPOSED, {**DISPOSED, "disposition": "destroyed", "recipient": None}),
    (ASSET_DISPOSED, {**DISPOSED, "disposition": "released"}),
])
def test_valid_evidence_records_round_trip(kind: str, fields: dict[str, Any]) -> None:
    record = _make(kind, fields)
    assert RegistryRecord.from_record(parse_record(record.to_bytes())) == record


@pytest.mark.parametrize(("kind", "field", "value", "says"), [
    (ASSET_DISPOSED, "disposition", "burned", "disposition"),
    (ASSET_DISPOSED, "disposition", None, "disposition"),
    (ASSET_DISPOSED, "recipient", "Jane Owner", "recipient"),  # a name, not a commitment
    (ASSET_DISPOSED, "recipient", "CD" * 32, "recipient"),
    (ASSET_DISPOSED, "event", None, "event"),
    (ASSET_DISPOSED, "leaf", -1, "leaf"),
    (EVIDENCE_REFERENCED, "case", "", "case"),
    (EVIDENCE_REFERENCED, "case", "24\n1", "case"),
    (EVIDENCE_REFERENCED, "exhibit", "x" * 201, "exhibit"),
    (EVIDENCE_REFERENCED, "exhibit", "\u00e9", "exhibit"),
    (EVIDENCE_REFERENCED, "asset", "", "asset"),
])
def test_fields_outside_the_format_are_refused(kind: str, field: str, value: object,
                                               says: str) -> None:
    fields = {**(DISPOSED if kind == ASSET_DISPOSED else REFERENCED), field: value}
    with pytest.raises(SchemaError, match=says):
        _make(kind, fields)
    valid = _make(kind, DISPOSED if kind == ASSET_DISPOSED else REFERENCED).to_record()
    with pytest.raises(SchemaError, match=says):
        RegistryRecord.from_record({**valid, field: value})


def test_an_evidence_record_with_an_unknown_field_is_refused() -> None:
    record = _make(EVIDENCE_REFERENCED, REFERENCED).to_record()
    with pytest.raises(SchemaError):
        RegistryRecord.from_record({**record, "name": "Jane Owner"})
