"""The API's end-to-end acknowledgements, as this agent reads them.

Payload (JSON on `kitledger/v1/{agency}/{site}/{reader}/acks`, sent by the API after each
committed batch holding this reader's observations, and by its periodic scan)::

    {"v": 1, "through": 41, "missing": [[44, 47], [52, 52]]}

`through`: every number up to and including it is stored at the API (or refused there after
its signature verified, or closed as lost at this reader); -1 when nothing is. `missing`:
ranges above `through` the API has waited a while for, asked for again. An outbox row may be
deleted only once `through` covers it (`reader_agent.delivery`).

An ack is checked before anything is done with it: JSON object, at most MAX_ACK_BYTES, known
fields only, `through` an integer below the next number this agent will hand out (an ack for
numbers never sent is not the API's: it would delete rows not yet delivered), at most
MAX_MISSING_RANGES ranges, each ordered, inside 0..next_seq-1 and above `through`. Anything
else raises `AckError`: counted, logged once per cause, and ignored.

The API signs each ack (`ledger.core.answers`: a header line before this JSON); the publisher
checks that signature against the pinned key (`[mqtt] api_key`) before the ack gets here, and
this parser reads the JSON after the header. The fields `kid` and `sig` inside the JSON stay
accepted and ignored (reserved before the header existed).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ledger.core.answers import answer_body
from ledger.core.bounds import MAX_SEQ
from reader_agent.errors import AgentError

MAX_ACK_BYTES: Final = 4096
"""An ack is a few dozen bytes, with MAX_MISSING_RANGES ranges at most about 700."""

MAX_MISSING_RANGES: Final = 32
"""Ranges one ack may ask for (the API sends at most 16: `api.ingest.acks.MAX_MISSING_RANGES`)."""

ACK_VERSION: Final = 1

_FIELDS: Final = frozenset({"v", "through", "missing", "kid", "sig"})
"""`kid` and `sig` are reserved for the API's signature (issue 18), ignored until then."""


class AckError(AgentError):
    """An acks payload that is not a valid acknowledgement."""


@dataclass(frozen=True, slots=True)
class Ack:
    through: int
    missing: tuple[tuple[int, int], ...] = ()


def _seq(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -1 <= value <= MAX_SEQ:
        raise AckError(f"ack field {name!r} must be a sequence number")
    return value


def parse_ack(payload: bytes, next_seq: int) -> Ack:
    """Check one acks message against `next_seq`, the next number this agent hands out."""
    if len(payload) > MAX_ACK_BYTES:
        raise AckError(f"ack is {len(payload)} bytes, limit {MAX_ACK_BYTES}")
    try:
        record = json.loads(answer_body(payload).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise AckError("ack is not UTF-8 JSON") from None
    if not isinstance(record, dict):
        raise AckError("ack must be a JSON object")
    unknown = set(record) - _FIELDS
    if unknown:
        raise AckError(f"ack has unknown fields {sorted(unknown)[:5]}")
    if record.get("v") != ACK_VERSION:
        raise AckError(f"ack version must be {ACK_VERSION}")
    through = _seq(record.get("through"), "through")
    if through >= next_seq:
        raise AckError(f"ack through {through} is beyond anything sent (next is {next_seq})")
    ranges = record.get("missing", [])
    if not isinstance(ranges, list) or len(ranges) > MAX_MISSING_RANGES:
        raise AckError(f"ack field 'missing' must be a list of at most {MAX_MISSING_RANGES}")
    missing: list[tuple[int, int]] = []
    for item in ranges:
        if not isinstance(item, list) or len(item) != 2:
            raise AckError("a missing range must be [first, last]")
        first, last = _seq(item[0], "missing"), _seq(item[1], "missing")
        if not through < first <= last < next_seq:
            raise AckError(f"missing range [{first}, {last}] is outside {through + 1}.."
                           f"{next_seq - 1}")
        missing.append((first, last))
    return Ack(through, tuple(missing))
