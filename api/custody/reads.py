"""What the custody rules are given and what they give back, as plain values.

Ingest verifies each read (signature, schema, clock) and hands the rules a `VerifiedRead`;
the rules answer the reader with an `Answer`. Neither knows how a read arrived or how an
answer travels: ingest turns answers into topics and payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ledger.core.records import Observation


@dataclass(frozen=True, slots=True)
class ReaderRef:
    """Who made a read: the registered reader, its agency and the site it stands at."""

    reader_id: str
    agency_id: str
    site_id: str


@dataclass(frozen=True, slots=True)
class VerifiedRead:
    """One observation whose signature, schema and time have been checked, as stored:
    `envelope_bytes` are the signed envelope, `envelope_hash` its domain hash."""

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
