"""What the custody rules are given and what they give back.

Ingest verifies each read (signature, schema, clock) and hands the rules a `VerifiedRead`;
the rules answer the reader with an `Answer`. Neither knows how a read arrived or how an
answer travels: ingest turns answers into topics and payloads. The reads are protocols, so
ingest's own verified values are given to the rules as they are, with no copy per read;
`StoredRead` is the rules' own, for a read ruled on after it was stored (held for a badge).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple, Protocol

from ledger.core.records import Observation


class ReaderRef(Protocol):
    """Who made a read: the registered reader, its agency and the site it stands at."""

    @property
    def reader_id(self) -> str: ...

    @property
    def agency_id(self) -> str: ...

    @property
    def site_id(self) -> str: ...


class VerifiedRead(Protocol):
    """One observation whose signature, schema and time have been checked: `envelope_bytes`
    are the signed envelope as stored, `envelope_hash` its domain hash."""

    @property
    def reader(self) -> ReaderRef: ...

    @property
    def observation(self) -> Observation: ...

    @property
    def observed_at(self) -> datetime: ...

    @property
    def envelope_bytes(self) -> bytes: ...

    @property
    def envelope_hash(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RegisteredReader:
    """A `ReaderRef` read from the registry."""

    reader_id: str
    agency_id: str
    site_id: str


@dataclass(frozen=True, slots=True)
class StoredRead:
    """A `VerifiedRead` parsed again from its stored envelope (it was verified on arrival)."""

    reader: ReaderRef
    observation: Observation
    observed_at: datetime
    envelope_bytes: bytes
    envelope_hash: bytes


class Answer(NamedTuple):
    """The rules' answer to the read `seq` of `reader`: `verdict` ("accept" or "refuse") and
    why, the asset it names and the custody action it took, if any. A tuple: one is made
    for nearly every read."""

    reader: ReaderRef
    seq: int
    verdict: str
    reason: str
    asset_id: str | None
    action: str | None
