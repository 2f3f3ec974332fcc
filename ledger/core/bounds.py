"""The record format's field bounds and spellings, defined once.

Every part that builds, checks, scans or stores a field of an observation or a custody event
takes its bound from here: `ledger.core.records` (the reference check), `ledger.core.record_scan`
(its compiled patterns are built from these numbers), the reader agent's signer and frame
decoders, and the API's models. The `*_PATTERN` strings are anchored regular expressions that
Python's `re` and pydantic's schema patterns read alike. These bounds are part of the format:
changing one changes which records exist, so it comes with new test vectors.
"""

from __future__ import annotations

from typing import Final

from ledger.core.encoding import MAX_SAFE_INTEGER

MAX_ID_CHARS: Final = 128
"""Device, zone, session, site, agency and asset ids are short names or URIs; 128 bounds them."""

ID_CHARS: Final = r"\x21-\x7e"
"""The alphabet of an id, as the body of a regex character class: printable ASCII, no space."""

ID_PATTERN: Final = rf"^[{ID_CHARS}]+$"
"""An id's spelling (its length is bounded by MAX_ID_CHARS)."""

URI_PREFIX: Final = "urn:epc:"
"""Every EPC URI a record carries is a GS1 EPC URN."""

MAX_URI_CHARS: Final = 2 * MAX_ID_CHARS
"""A pure-identity or raw EPC URI: at most twice an id."""

EPC_WORD_BYTES: Final = 2
"""An EPC is read in whole 16-bit words."""

MAX_EPC_WORDS: Final = 31
"""The Gen2 PC word's length field counts at most 31 words of EPC: 496 bits."""

MAX_EPC_BYTES: Final = EPC_WORD_BYTES * MAX_EPC_WORDS
"""62 bytes: the largest EPC a tag can announce; a frame claiming more is corrupt."""

MAX_EPC_HEX_CHARS: Final = 2 * MAX_EPC_BYTES
"""An EPC in a record is upper-case hex: 124 characters at most."""

EPC_HEX_PATTERN: Final = rf"^(?:[0-9A-F]{{{2 * EPC_WORD_BYTES}}}){{1,{MAX_EPC_WORDS}}}$"
"""Upper-case hex in whole 16-bit words, one to MAX_EPC_WORDS of them."""

MIN_ANTENNA: Final = 0
MAX_ANTENNA: Final = 255
"""Antenna ports are one byte in every reader family's frames."""

MIN_RSSI_DBM: Final = -128
MAX_RSSI_DBM: Final = 127
"""RSSI is a signed byte of dBm in every reader family's frames."""

MAX_SEQ: Final = MAX_SAFE_INTEGER
"""Sequence numbers (a device's, an asset chain's) are canonical JSON integers."""

OBSERVATION_KINDS: Final = frozenset({"arrive", "depart", "badge", "read"})
DIRECTIONS: Final = frozenset({"in", "out"})
"""A portal crossing's direction; null where the reader cannot tell."""

ACTIONS: Final = frozenset(
    {"register", "check_out", "check_in", "transfer", "loan_out", "loan_return", "dispose"}
)
HOLDER_KINDS: Final = frozenset({"location", "person", "agency"})
PERSON_HOLDER: Final = "person"
"""The holder kind whose `ref` is a salted commitment, never a name."""

HASH_HEX_CHARS: Final = 64
"""A SHA-256 hash (a previous event, an envelope, a person's commitment) in lower-case hex."""

HASH_HEX_PATTERN: Final = rf"^[0-9a-f]{{{HASH_HEX_CHARS}}}$"

MAX_OBSERVATIONS_PER_EVENT: Final = 64
"""One badge session justifies a handful of reads; 64 bounds a custody event's size."""

MAX_AUTHORISERS: Final = 8
"""Dual sign-off needs two; eight leaves room for panels without unbounded lists."""

READER_ROLES: Final = frozenset({"issue_desk", "return_desk", "portal", "locker", "vehicle_bay",
                                 "door", "handheld"})
"""What a registered reader is for: the custody rules (`ledger.core.custody_rules`) say which
role each action needs (a `door`, at an evidence room, needs none: its badge reads are an
access log, not custody; a `handheld`, carried round a store for a stocktake, needs none
either: its reads are an inventory's). `api.models.registry.ReaderRole` spells the same set."""

MAX_REVOCATION_REASON_CHARS: Final = 200
"""A revocation's reason: printable ASCII, spaces allowed, as shown on a report."""

MAX_LOAN_DAYS: Final = 3650
"""An asset class's loan period: ten years at most, as the API's class policy allows."""

TIME_PATTERN: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
"""RFC 3339 UTC with milliseconds, the one spelling of a time, unanchored (it is matched whole
or inside a line); `records.parse_time` also refuses dates that do not exist."""


def is_identifier(value: object) -> bool:
    """Whether `value` is an id: a str of 1 to MAX_ID_CHARS printable ASCII characters
    without a space (the ID_CHARS alphabet)."""
    return (type(value) is str and 0 < len(value) <= MAX_ID_CHARS and value.isascii()
            and value.isprintable() and " " not in value)
