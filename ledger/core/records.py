"""Record types: what a reader saw (`Observation`), a change of custody (`CustodyEvent`), and
a change of the registry the custody rules read (`RegistryRecord`).

All serialise to canonical JSON records carrying `"type"` and `"v"`. `from_record` checks every
field, its type and its bounds, and refuses unknown fields, so a record that round-trips is one
the whole system agrees on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar, Final, Literal

from ledger.core import hashing
from ledger.core.bounds import (
    ACTIONS,
    DIRECTIONS,
    EPC_HEX_PATTERN,
    HASH_HEX_PATTERN,
    HOLDER_KINDS,
    MAX_ANTENNA,
    MAX_AUTHORISERS,
    MAX_EPC_HEX_CHARS,
    MAX_EPC_WORDS,
    MAX_ID_CHARS,
    MAX_LOAN_DAYS,
    MAX_OBSERVATIONS_PER_EVENT,
    MAX_REVOCATION_REASON_CHARS,
    MAX_RSSI_DBM,
    MAX_SEQ,
    MAX_URI_CHARS,
    MIN_ANTENNA,
    MIN_RSSI_DBM,
    OBSERVATION_KINDS,
    PERSON_HOLDER,
    READER_ROLES,
    TIME_PATTERN,
    URI_PREFIX,
    is_identifier,
)
from ledger.core.encoding import (
    MAX_SAFE_INTEGER,
    SCHEMA_VERSION,
    canonical_bytes,
    schema_checked_bytes,
)
from ledger.core.envelope import KEY_ID_HEX_CHARS
from ledger.core.errors import NonCanonicalNumber, SchemaError

__all__ = [  # the types, and the bounds (defined in `bounds`) their users check against
    "ACTIONS", "GENESIS_PREV", "HOLDER_KINDS", "MAX_AUTHORISERS", "MAX_EPC_HEX_CHARS",
    "MAX_ID_CHARS", "MAX_OBSERVATIONS_PER_EVENT", "OBSERVATION_KINDS", "REGISTRY_KINDS",
    "CustodyEvent", "Holder", "Observation", "RegistryChains", "RegistryRecord", "check_reason",
    "event_hash",
    "format_time",
    "parse_time", "registry_hash",
]

GENESIS_PREV: Final = "00" * hashing.HASH_SIZE

_TIME = re.compile(re.sub(r"\[0-9\]\{\d\}", r"(\g<0>)", TIME_PATTERN))
"""TIME_PATTERN with each field captured, for `parse_time`."""
_HEX64 = re.compile(HASH_HEX_PATTERN)
_EPC_HEX = re.compile(EPC_HEX_PATTERN)


def format_time(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds: the one spelling of a time in records."""
    if moment.tzinfo is None:
        raise SchemaError("times must be timezone-aware")
    text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    return text[:-3] + "Z"


def parse_time(text: str) -> datetime:
    """The inverse of `format_time`; refuses every other spelling."""
    match = _TIME.fullmatch(text)
    if not match:
        raise SchemaError(f"time {text[:40]!r} is not YYYY-MM-DDTHH:MM:SS.mmmZ")
    year, month, day, hour, minute, second, milli = map(int, match.groups())
    try:
        return datetime(year, month, day, hour, minute, second, milli * 1000, tzinfo=UTC)
    except ValueError:
        raise SchemaError(f"time {text!r} is not a real date") from None


_checked_time = lru_cache(maxsize=64)(parse_time)
"""`parse_time` remembering recent answers: events made together share their time."""


def _field(record: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = record.get(name)
    # bool is an int in Python; it is never a valid count or index here.
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        raise SchemaError(f"field {name!r} must be {_describe(kind)}, found {value!r:.60}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _describe(kind: type | tuple[type, ...]) -> str:
    return " or ".join("null" if k is type(None) else k.__name__ for k in _as_tuple(kind))


def _ident(record: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = _field(record, name, (str, type(None)) if optional else str)
    if value is None:
        return None
    _check_ident(name, value)
    return str(value)


def _check_ident(name: str, value: object) -> None:
    if not is_identifier(value):
        raise SchemaError(f"field {name!r} must be 1-{MAX_ID_CHARS} printable ASCII characters")


def _check_fields(record: Mapping[str, Any], expected_type: str, names: frozenset[str]) -> None:
    if record.get("type") != expected_type:
        raise SchemaError(f"record type {record.get('type')!r}, expected {expected_type!r}")
    if record.get("v") != SCHEMA_VERSION:
        raise SchemaError(f"record version {record.get('v')!r}, expected {SCHEMA_VERSION}")
    extra = set(record) - names
    if extra:
        raise SchemaError(f"unexpected fields {sorted(extra)} in {expected_type}")


@dataclass(frozen=True, slots=True)
class Observation:
    """One signed sighting by a reader: the unit the agent sends and the API verifies.

    `seq` is the device's sequence number (never reused); `epc` the tag's EPC in upper-case hex;
    `uri` its GS1 pure-identity URI where it has one; `session` the badge session open at a
    desk when the tag was read; `direction` the portal direction ("in"/"out") where known.
    """

    device: str
    seq: int
    time: str
    kind: str
    epc: str
    antenna: int
    rssi: int | None = None
    zone: str | None = None
    session: str | None = None
    uri: str | None = None
    direction: Literal["in", "out"] | None = None

    TYPE: ClassVar[str] = "observation"
    _FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"type", "v", "device", "seq", "time", "kind", "epc", "antenna", "rssi", "zone",
         "session", "uri", "direction"}
    )

    def to_record(self) -> dict[str, Any]:
        record = {
            "type": self.TYPE, "v": SCHEMA_VERSION, "device": self.device, "seq": self.seq,
            "time": self.time, "kind": self.kind, "epc": self.epc, "antenna": self.antenna,
            "rssi": self.rssi, "zone": self.zone, "session": self.session, "uri": self.uri,
            "direction": self.direction,
        }
        Observation.from_record(record)  # refuse to sign what we would refuse to accept
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Observation:
        return cls.from_record_timed(record)[0]

    @classmethod
    def from_record_timed(cls, record: Mapping[str, Any]) -> tuple[Observation, datetime]:
        """`from_record`, with the observation's `time` as the datetime it was checked as
        (ingest compares it with its clock: parsing it twice cost a few µs a read)."""
        _check_fields(record, cls.TYPE, cls._FIELDS)
        seq = _field(record, "seq", int)
        if seq < 0:
            raise SchemaError("field 'seq' must be >= 0")
        time = _field(record, "time", str)
        moment = parse_time(time)
        kind = _field(record, "kind", str)
        if kind not in OBSERVATION_KINDS:
            raise SchemaError(f"observation kind {kind!r:.40} not in {sorted(OBSERVATION_KINDS)}")
        epc = _field(record, "epc", str)
        if len(epc) > MAX_EPC_HEX_CHARS or not _EPC_HEX.fullmatch(epc):
            raise SchemaError("field 'epc' must be upper-case hex, whole 16-bit words, "
                              f"<= {16 * MAX_EPC_WORDS} bits")
        antenna = _field(record, "antenna", int)
        if not MIN_ANTENNA <= antenna <= MAX_ANTENNA:
            raise SchemaError(f"field 'antenna' must be {MIN_ANTENNA}-{MAX_ANTENNA}")
        rssi = _field(record, "rssi", (int, type(None)))
        if rssi is not None and not MIN_RSSI_DBM <= rssi <= MAX_RSSI_DBM:
            raise SchemaError(f"field 'rssi' must be {MIN_RSSI_DBM}..{MAX_RSSI_DBM} dBm")
        direction = _field(record, "direction", (str, type(None)))
        if direction is not None and direction not in DIRECTIONS:
            raise SchemaError("field 'direction' must be 'in', 'out' or null")
        uri = _field(record, "uri", (str, type(None)))
        if uri is not None and (len(uri) > MAX_URI_CHARS or not uri.startswith(URI_PREFIX)):
            raise SchemaError(f"field 'uri' must be an {URI_PREFIX} URI")
        return cls(
            device=str(_ident(record, "device")), seq=seq, time=time, kind=kind, epc=epc,
            antenna=antenna, rssi=rssi, zone=_ident(record, "zone", optional=True),
            session=_ident(record, "session", optional=True), uri=uri, direction=direction,
        ), moment


@dataclass(frozen=True, slots=True)
class Holder:
    """Who or what holds an asset: a location (store), a person (by commitment) or an agency."""

    kind: str
    ref: str

    def to_record(self) -> dict[str, str]:
        return {"kind": self.kind, "ref": self.ref}

    @classmethod
    def from_record(cls, record: Any, name: str) -> Holder:
        if not isinstance(record, dict) or set(record) != {"kind", "ref"}:
            raise SchemaError(f"field {name!r} must be an object with 'kind' and 'ref'")
        holder = cls(kind=record["kind"], ref=record["ref"])
        holder.check(name)
        return holder

    def check(self, name: str) -> None:
        """Refuse a holder the record format does not allow, as the record's field `name`."""
        if type(self.kind) is not str or self.kind not in HOLDER_KINDS:
            raise SchemaError(f"{name}.kind {self.kind!r:.40} not in {sorted(HOLDER_KINDS)}")
        _check_ident("ref", self.ref)
        if self.kind == PERSON_HOLDER and not _HEX64.fullmatch(self.ref):
            # People appear in the log only as salted commitments (see commitments.py).
            raise SchemaError(f"{name}.ref of a person must be a 64-hex commitment")


@dataclass(frozen=True, slots=True)
class CustodyEvent:
    """A change of custody of one asset, linked into that asset's hash chain.

    `seq` is the event's position in the asset's chain and `prev` the hash of the event before
    it (`GENESIS_PREV` for the first). `observations` are the hashes of the signed envelopes
    that justify the change; `authorised_by` the commitments of the people who authorised it.
    `manual` is the reason given when an officer entered the change by hand at the desk
    `reader` names (a tag that would not read, a reader down): such an event cites no reads,
    its first authoriser is the officer and any second one the co-signing supervisor. The
    field is written only when set, so the bytes of every reader-made event are unchanged.
    """

    agency: str
    asset: str
    seq: int
    prev: str
    action: str
    time: str
    holder_from: Holder | None
    holder_to: Holder | None
    observations: tuple[str, ...] = ()
    authorised_by: tuple[str, ...] = ()
    reader: str | None = None
    manual: str | None = None

    TYPE: ClassVar[str] = "custody-event"
    _FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"type", "v", "agency", "asset", "seq", "prev", "action", "time", "from", "to",
         "observations", "authorised_by", "reader", "manual"}
    )

    def to_record(self) -> dict[str, Any]:
        record = {
            "type": self.TYPE, "v": SCHEMA_VERSION, "agency": self.agency, "asset": self.asset,
            "seq": self.seq, "prev": self.prev, "action": self.action, "time": self.time,
            "from": self.holder_from.to_record() if self.holder_from else None,
            "to": self.holder_to.to_record() if self.holder_to else None,
            "observations": list(self.observations),
            "authorised_by": list(self.authorised_by), "reader": self.reader,
        }
        if self.manual is not None:
            record["manual"] = self.manual
        self.check()
        return record

    def check(self) -> None:
        """Refuse an event the record format does not allow: every check `from_record` makes
        of a record's values, made on this event's own (`to_record` writes no other)."""
        if type(self.seq) is not int or self.seq < 0:
            raise SchemaError("field 'seq' must be an int >= 0")
        if type(self.prev) is not str or not _HEX64.fullmatch(self.prev):
            raise SchemaError("field 'prev' must be 64 lower-case hex characters")
        if type(self.action) is not str or self.action not in ACTIONS:
            raise SchemaError(f"action {self.action!r:.40} not in {sorted(ACTIONS)}")
        if type(self.time) is not str:
            raise SchemaError("field 'time' must be str")
        _checked_time(self.time)
        for name, items, limit in (("observations", self.observations, MAX_OBSERVATIONS_PER_EVENT),
                                   ("authorised_by", self.authorised_by, MAX_AUTHORISERS)):
            if len(items) > limit or not all(
                type(i) is str and _HEX64.fullmatch(i) for i in items
            ):
                raise SchemaError(f"field {name!r} must list at most {limit} 64-hex hashes")
        for name, holder in (("from", self.holder_from), ("to", self.holder_to)):
            if holder is not None:
                holder.check(name)
        _check_ident("agency", self.agency)
        _check_ident("asset", self.asset)
        if self.reader is not None:
            _check_ident("reader", self.reader)
        if self.manual is not None:
            check_reason("manual", self.manual)
            if self.observations or self.reader is None or not self.authorised_by:
                raise SchemaError("a manual event cites no observations and names its desk "
                                  "(reader) and the officer who entered it (authorised_by)")

    def to_bytes(self) -> bytes:
        """Canonical bytes: the Merkle leaf data and the input to `event_hash`.

        `to_record` has checked every field: the record holds only ASCII strings (ids,
        hex, times, names from fixed sets and a manual entry's printable reason), null, lists
        of hex strings, holder objects
        and two non-negative integers, `v` and `seq`. Once `seq` is within the interoperable
        range, that is all `canonical_bytes` would check, so it is not walked again.
        """
        record = self.to_record()
        if self.seq > MAX_SAFE_INTEGER:
            raise NonCanonicalNumber(
                f"integer {self.seq} is outside the interoperable range ±(2^53-1)")
        return schema_checked_bytes(record)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CustodyEvent:
        _check_fields(record, cls.TYPE, cls._FIELDS)
        holders = {
            name: None if record.get(name) is None else Holder.from_record(record[name], name)
            for name in ("from", "to")
        }
        event = cls(
            agency=_field(record, "agency", str), asset=_field(record, "asset", str),
            seq=_field(record, "seq", int), prev=_field(record, "prev", str),
            action=_field(record, "action", str), time=_field(record, "time", str),
            holder_from=holders["from"], holder_to=holders["to"],
            observations=tuple(_field(record, "observations", list)),
            authorised_by=tuple(_field(record, "authorised_by", list)),
            reader=_field(record, "reader", (str, type(None))),
            manual=_field(record, "manual", str) if "manual" in record else None,
        )
        event.check()
        return event


def event_hash(event: CustodyEvent) -> bytes:
    """The hash the next event of the same asset commits to."""
    return hashing.domain_hash(hashing.CUSTODY_EVENT, event.to_bytes())


# -- The registry in the log ---------------------------------------------------------------------
# What the custody rules read about readers, asset classes, assets and shares is logged as it
# changes, so an auditor checks an observation's reader, an event's class policy and an asset's
# tag against the log, not against a list the operator hands over. Each record belongs to one
# subject (the agency's registry itself, a reader, a class, an asset) and is chained to that
# subject's previous record like custody events are to their asset's, so the head map's entry
# for the subject (`ledger.core.heads.registry_key`) proves none of its records is left out.

REGISTRY_OPENED: Final = "registry-opened"
READER_REGISTERED: Final = "reader-registered"
READER_REVOKED: Final = "reader-revoked"
CLASS_POLICY: Final = "class-policy"
ASSET_REGISTERED: Final = "asset-registered"
SHARE_GRANTED: Final = "share-granted"
SHARE_ENDED: Final = "share-ended"
EVENT_CORRECTED: Final = "event-corrected"
ASSET_RETIRED: Final = "asset-retired"
PERSON_RETIRED: Final = "person-retired"
MAINTENANCE_SCHEDULE: Final = "maintenance-schedule"
MAINTENANCE_DONE: Final = "maintenance-done"
OUT_OF_SERVICE: Final = "out-of-service"
BACK_IN_SERVICE: Final = "back-in-service"
MAINTENANCE_RESULTS: Final = frozenset({"pass", "fail"})
EVIDENCE_REFERENCED: Final = "evidence-referenced"
ASSET_DISPOSED: Final = "asset-disposed"
DISPOSITIONS: Final = frozenset({"returned_to_owner", "destroyed", "released"})
INVENTORY_TAKEN: Final = "inventory-taken"
SITE_CUSTODIAN: Final = "site-custodian"
INVENTORY_MODES: Final = frozenset({"full", "sampled"})

_ID_FIELD: Final = "id"
_BOOL: Final = "bool"
_KID_HEX = re.compile(f"[0-9a-f]{{{KEY_ID_HEX_CHARS}}}")
_KEY_HEX = re.compile("[0-9a-f]{64}")

REGISTRY_KINDS: Final[dict[str, tuple[str, str, dict[str, str]]]] = {
    REGISTRY_OPENED: ("agency", "agency", {"backfilled": "count"}),
    READER_REGISTERED: ("reader", "reader", {"reader": _ID_FIELD, "site": _ID_FIELD,
                                             "role": "role", "kid": "kid",
                                             "public_key": "key"}),
    READER_REVOKED: ("reader", "reader", {"reader": _ID_FIELD, "reason": "reason"}),
    CLASS_POLICY: ("class", "class", {"class": _ID_FIELD, "dual_signoff": _BOOL,
                                      "required_qualification": "optional-text",
                                      "loan_days": "days", "disposal_final": _BOOL}),
    ASSET_REGISTERED: ("asset", "asset", {"asset": _ID_FIELD, "class": _ID_FIELD,
                                          "epc": "epc"}),
    SHARE_GRANTED: ("asset", "asset", {"asset": _ID_FIELD, "with": _ID_FIELD}),
    SHARE_ENDED: ("asset", "asset", {"asset": _ID_FIELD, "with": _ID_FIELD}),
    EVENT_CORRECTED: ("asset", "asset", {"asset": _ID_FIELD, "event": "hash", "leaf": "count",
                                         "reason": "reason"}),
    ASSET_RETIRED: ("asset", "asset", {"asset": _ID_FIELD, "reason": "reason"}),
    PERSON_RETIRED: ("person", "person", {"person": "hash", "reason": "reason"}),
    MAINTENANCE_SCHEDULE: ("class", "class", {"class": _ID_FIELD, "schedule": _ID_FIELD,
                                              "name": "reason", "interval_days": "days",
                                              "blocking": _BOOL}),
    MAINTENANCE_DONE: ("asset", "asset", {"asset": _ID_FIELD, "schedule": _ID_FIELD,
                                          "result": "result", "by": "hash",
                                          "next_due": "optional-time"}),
    OUT_OF_SERVICE: ("asset", "asset", {"asset": _ID_FIELD, "reason": "reason", "by": "hash"}),
    BACK_IN_SERVICE: ("asset", "asset", {"asset": _ID_FIELD, "reason": "reason", "by": "hash"}),
    EVIDENCE_REFERENCED: ("asset", "asset", {"asset": _ID_FIELD, "case": "reason",
                                             "exhibit": "reason"}),
    ASSET_DISPOSED: ("asset", "asset", {"asset": _ID_FIELD, "event": "hash", "leaf": "count",
                                        "disposition": "disposition",
                                        "recipient": "optional-hash"}),
    INVENTORY_TAKEN: ("agency", "agency", {
        "site": _ID_FIELD, "reader": _ID_FIELD, "by": "hash", "started": "time",
        "ended": "time", "mode": "inventory-mode", "population": "count",
        "population_hash": "hash", "sample": "count", "seed": "optional-hash",
        "confidence_bp": "count", "margin_bp": "count", "expected": "count", "found": "count",
        "missing": "count", "unexpected": "count", "unknown": "count", "lists": "hash",
        "share_low_bp": "count", "share_high_bp": "count"}),
    SITE_CUSTODIAN: ("agency", "agency", {"site": _ID_FIELD, "custodian": "optional-hash"}),
}
"""Each registry record kind: (its subject's kind, the field naming the subject, its own fields
with their value kinds). `registry-opened` starts the agency's registry in the log and counts
the records a backfill wrote right after it (rows that existed before the registry was
logged); the others mirror the API's registry rows.

Three kinds record what is never an edit. `event-corrected` declares the custody event at leaf
`leaf` with hash `event` (of the same asset, earlier in the same log) wrong, and why, as EPCIS
2.0's error declaration does: the event stays in the log and both are shown. `asset-retired`
ends an asset's custody (it was deleted): its events stay provable and none may follow.
`person-retired` does the same for a person, named only by their commitment.

Four kinds record maintenance (`ledger.verify.maintenance` holds check-outs to them). A
`maintenance-schedule` in a class's chain says its items need check `schedule` (a name, every
`interval_days`; a `blocking` one is a safety check an item may not be issued without). A
`maintenance-done` in an asset's chain records the work: `result` pass or fail, `by` whom (a
commitment) and, for a pass, `next_due`. `out-of-service` and `back-in-service` take an asset
out of issue and back, with why and by whom.

Two kinds carry evidence specifics. `evidence-referenced` gives an exhibit its case and
exhibit references (printable ASCII, as a reason is). `asset-disposed` says why the `dispose`
custody event at leaf `leaf` with hash `event` happened (`disposition`: returned to its owner,
destroyed or released) and to whom, by the commitment of the recipient's name (null when
nobody received it, as for a destruction).

Two kinds, in the agency's own chain, record stocktakes. `site-custodian` names who answers for
a site's store from now on (a commitment; null when nobody does); a change calls for a full
inventory. `inventory-taken` is one inventory of `site`: read by `reader` between `started` and
`ended`, carried `by` a person (a commitment), `full` or `sampled`. `population` items were
expected at the site (`population_hash` commits to their ids, `ledger.core.sampling.list_hash`);
a sampled one drew `sample` of them under `seed` for `confidence_bp` and `margin_bp` (a full one
has `sample` = `population`, no seed and both zero). `expected` items were looked for (the
sample), `found` read and `missing` not; `unexpected` of ours read there were expected
elsewhere, and `unknown` tags read are not in the registry. `lists` commits to those lists
(`ledger.core.sampling.reconciliation_hash`) and `share_low_bp`..`share_high_bp` is the share of
the population present (`ledger.core.sampling.share_interval`): `ledger.verify.inventories`
recomputes the figures."""

_COMMON_FIELDS: Final = frozenset({"type", "v", "agency", "seq", "prev", "time"})


def check_reason(name: str, value: object) -> None:
    """Refuse `value` as the reason field `name` (a revocation, retirement, correction or
    manual entry): 1 to MAX_REVOCATION_REASON_CHARS printable ASCII characters, as shown on a
    report."""
    if (type(value) is not str or not 0 < len(value) <= MAX_REVOCATION_REASON_CHARS
            or not value.isascii() or not value.isprintable()):
        raise SchemaError(f"field {name!r} must be 1-{MAX_REVOCATION_REASON_CHARS} "
                          "printable ASCII characters")


def _check_value(name: str, kind: str, value: object) -> None:
    """Refuse `value` for the registry field `name` of value kind `kind`."""
    if kind == _ID_FIELD:
        _check_ident(name, value)
    elif kind == "optional-text":  # as the API stores it: any text up to an id's length
        if value is not None and (type(value) is not str or len(value) > MAX_ID_CHARS):
            raise SchemaError(f"field {name!r} must be null or at most {MAX_ID_CHARS} "
                              "characters")
    elif kind == _BOOL:
        if type(value) is not bool:
            raise SchemaError(f"field {name!r} must be true or false")
    elif kind == "count":
        if type(value) is not int or not 0 <= value <= MAX_SEQ:
            raise SchemaError(f"field {name!r} must be an integer in 0..{MAX_SEQ}")
    elif kind == "days":
        if value is not None and (type(value) is not int or not 1 <= value <= MAX_LOAN_DAYS):
            raise SchemaError(f"field {name!r} must be null or 1..{MAX_LOAN_DAYS} days")
    elif kind == "role":
        if type(value) is not str or value not in READER_ROLES:
            raise SchemaError(f"field {name!r} must be one of {sorted(READER_ROLES)}")
    elif kind == "kid":
        if type(value) is not str or not _KID_HEX.fullmatch(value):
            raise SchemaError(f"field {name!r} must be {KEY_ID_HEX_CHARS} lower-case hex")
    elif kind == "key":
        if type(value) is not str or not _KEY_HEX.fullmatch(value):
            raise SchemaError(f"field {name!r} must be a 32-byte key in lower-case hex")
    elif kind == "reason":
        check_reason(name, value)
    elif kind in ("hash", "optional-hash"):
        if not (kind == "optional-hash" and value is None) and (
                type(value) is not str or not _HEX64.fullmatch(value)):
            raise SchemaError(f"field {name!r} must be 64 lower-case hex characters"
                              + (" or null" if kind == "optional-hash" else ""))
    elif kind == "disposition":
        if type(value) is not str or value not in DISPOSITIONS:
            raise SchemaError(f"field {name!r} must be one of {sorted(DISPOSITIONS)}")
    elif kind == "result":
        if type(value) is not str or value not in MAINTENANCE_RESULTS:
            raise SchemaError(f"field {name!r} must be one of {sorted(MAINTENANCE_RESULTS)}")
    elif kind == "time":
        if type(value) is not str:
            raise SchemaError(f"field {name!r} must be a time")
        _checked_time(value)
    elif kind == "inventory-mode":
        if type(value) is not str or value not in INVENTORY_MODES:
            raise SchemaError(f"field {name!r} must be one of {sorted(INVENTORY_MODES)}")
    elif kind == "optional-time":
        if value is not None:
            if type(value) is not str:
                raise SchemaError(f"field {name!r} must be null or a time")
            _checked_time(value)
    elif kind == "epc":
        if type(value) is not str or len(value) > MAX_EPC_HEX_CHARS or not _EPC_HEX.fullmatch(
                value):
            raise SchemaError(f"field {name!r} must be an EPC in upper-case hex words")
    else:  # pragma: no cover - the table above names only these
        raise AssertionError(kind)


@dataclass(frozen=True, slots=True)
class RegistryRecord:
    """One change of the registry, as logged: `kind` (a key of `REGISTRY_KINDS`), the agency
    whose log holds it, its place `seq` in its subject's chain with `prev` the hash of the
    subject's record before it (`GENESIS_PREV` for the first), the API's time of the change,
    and the kind's own fields in `fields` (name -> value)."""

    kind: str
    agency: str
    seq: int
    prev: str
    time: str
    fields: tuple[tuple[str, Any], ...]

    @classmethod
    def make(cls, kind: str, *, agency: str, seq: int, prev: str, time: str,
             **fields: Any) -> RegistryRecord:
        record = cls(kind, agency, seq, prev, time, tuple(sorted(fields.items())))
        record.check()
        return record

    def get(self, name: str) -> Any:
        """The value of the kind's field `name` (KeyError if the kind has none)."""
        for key, value in self.fields:
            if key == name:
                return value
        raise KeyError(name)

    @property
    def subject(self) -> tuple[str, str]:
        """(subject kind, subject id): whose chain this record extends."""
        subject_kind, field_name, _names = REGISTRY_KINDS[self.kind]
        return subject_kind, self.agency if field_name == "agency" else str(self.get(field_name))

    def check(self) -> None:
        """Refuse a record the format does not allow (every check `from_record` makes)."""
        if type(self.kind) is not str or self.kind not in REGISTRY_KINDS:
            raise SchemaError(f"registry record kind {self.kind!r:.40} not in "
                              f"{sorted(REGISTRY_KINDS)}")
        _check_ident("agency", self.agency)
        if type(self.seq) is not int or not 0 <= self.seq <= MAX_SEQ:
            raise SchemaError(f"field 'seq' must be an integer in 0..{MAX_SEQ}")
        if type(self.prev) is not str or not _HEX64.fullmatch(self.prev):
            raise SchemaError("field 'prev' must be 64 lower-case hex characters")
        if type(self.time) is not str:
            raise SchemaError("field 'time' must be str")
        _checked_time(self.time)
        names = REGISTRY_KINDS[self.kind][2]
        given = [name for name, _value in self.fields]
        if sorted(given) != sorted(names) or len(set(given)) != len(given):
            raise SchemaError(f"a {self.kind} record has the fields {sorted(names)}, "
                              f"found {sorted(given)}")
        for name, value in self.fields:
            _check_value(name, names[name], value)

    def to_record(self) -> dict[str, Any]:
        self.check()
        return {"type": self.kind, "v": SCHEMA_VERSION, "agency": self.agency, "seq": self.seq,
                "prev": self.prev, "time": self.time, **dict(self.fields)}

    def to_bytes(self) -> bytes:
        """Canonical bytes: the Merkle leaf data and the input to `registry_hash` (by the
        general path: a qualification may be any text)."""
        return canonical_bytes(self.to_record())

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RegistryRecord:
        kind = record.get("type")
        if type(kind) is not str or kind not in REGISTRY_KINDS:
            raise SchemaError(f"record type {kind!r:.40} is not a registry record")
        _check_fields(record, kind, _COMMON_FIELDS | frozenset(REGISTRY_KINDS[kind][2]))
        missing = (_COMMON_FIELDS | frozenset(REGISTRY_KINDS[kind][2])) - set(record)
        if missing:
            raise SchemaError(f"missing fields {sorted(missing)} in {kind}")
        registry = cls(kind, _field(record, "agency", str), _field(record, "seq", int),
                       _field(record, "prev", str), _field(record, "time", str),
                       tuple(sorted((name, record[name]) for name in REGISTRY_KINDS[kind][2])))
        registry.check()
        return registry


def registry_hash(record: bytes) -> bytes:
    """The hash of a registry record's canonical bytes: what the subject's next record names
    as `prev`, and the head map's entry for the subject holds."""
    return hashing.domain_hash(hashing.REGISTRY_RECORD, record)


class RegistryChains:
    """The registry chains of one agency's log held in memory (the corpus, tests and benchmarks;
    the API keeps its heads in its database): `append` makes each subject's next record."""

    def __init__(self, agency: str) -> None:
        self.agency = agency
        self._heads: dict[tuple[str, str], tuple[int, str]] = {}

    def append(self, kind: str, time: str, **fields: Any) -> RegistryRecord:
        """The next record of kind `kind` for the subject `fields` name, chained to its last."""
        probe = RegistryRecord(kind, self.agency, 0, GENESIS_PREV, time,
                               tuple(sorted(fields.items())))
        seq, prev = self._heads.get(probe.subject, (0, GENESIS_PREV))
        record = RegistryRecord.make(kind, agency=self.agency, seq=seq, prev=prev, time=time,
                                     **fields)
        self._heads[probe.subject] = (seq + 1, registry_hash(record.to_bytes()).hex())
        return record
