"""A reader's signed word that some of its sequence numbers are gone: `LostRange`.

The API acknowledges a reader's observations end to end (`docs/mqtt.md`): it tells the agent
the highest number it holds without a hole (`through`) and asks for the holes (`missing`). An
agent that no longer holds a number asked for (its outbox quarantined the row as corrupt, the
outbox file was replaced, or the row was released after an earlier acknowledgement) must say
so, or the hole would be asked about forever and `through` would never move past it.

It says so with a `LostRange` record signed by the reader's own Ed25519 key, sent like an
observation envelope on its events topic. The API believes it for the same reason it believes
an observation: only the reader holds the key, and the reader is the one party that knows what
it no longer has. The API then closes those holes as "lost at reader": recorded (a quarantine
row with the signed statement), counted (a metric), visible (the closed gap), never silent.

    {"type": "lost", "v": 1, "device": "desk-1", "first": 10, "last": 12,
     "reason": "outbox quarantine", "time": "2025-01-01T10:00:00.000Z"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final

from ledger.core.bounds import MAX_SEQ, is_identifier
from ledger.core.encoding import SCHEMA_VERSION
from ledger.core.errors import SchemaError
from ledger.core.records import parse_time

MAX_LOST_REASON_CHARS: Final = 200
"""A short phrase ("outbox quarantine", "not in outbox"): enough to tell causes apart."""


@dataclass(frozen=True, slots=True)
class LostRange:
    """Sequence numbers `first`..`last` (inclusive) of `device` that the reader cannot send."""

    device: str
    first: int
    last: int
    reason: str
    time: str

    TYPE: ClassVar[str] = "lost"
    _FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"type", "v", "device", "first", "last", "reason", "time"})

    def to_record(self) -> dict[str, Any]:
        record = {"type": self.TYPE, "v": SCHEMA_VERSION, "device": self.device,
                  "first": self.first, "last": self.last, "reason": self.reason,
                  "time": self.time}
        LostRange.from_record(record)  # refuse to sign what the API would refuse
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> LostRange:
        if record.get("type") != cls.TYPE or record.get("v") != SCHEMA_VERSION:
            raise SchemaError(f"not a {cls.TYPE!r} record of version {SCHEMA_VERSION}")
        extra = set(record) - cls._FIELDS
        if extra:
            raise SchemaError(f"unexpected fields {sorted(extra)[:5]} in {cls.TYPE}")
        device = record.get("device")
        if not is_identifier(device):
            raise SchemaError("field 'device' must be an identifier")
        first, last = record.get("first"), record.get("last")
        for value in (first, last):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_SEQ:
                raise SchemaError("fields 'first' and 'last' must be sequence numbers")
        assert isinstance(first, int) and isinstance(last, int)
        if first > last:
            raise SchemaError("field 'first' is above 'last'")
        reason = record.get("reason")
        if not isinstance(reason, str) or not 0 < len(reason) <= MAX_LOST_REASON_CHARS:
            raise SchemaError(f"field 'reason' must be 1-{MAX_LOST_REASON_CHARS} characters")
        time = record.get("time")
        if not isinstance(time, str):
            raise SchemaError("field 'time' must be a time")
        parse_time(time)
        return cls(device=str(device), first=first, last=last, reason=reason, time=time)
