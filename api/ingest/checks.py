"""The checks of one inbound message: size, envelope, signer, signature, schema, topic, clock.

Pure apart from the reader snapshot it is given: no database writes, so the expensive part of
ingest (Ed25519 verification) runs outside the write transaction and across workers. Every
refusal carries a `RejectReason`, which is what operators count and alert on.

Attribution. A refusal whose signature verified (a revoked reader, an observation too old, a
topic that does not match) still carries the signer and its sequence number (`Rejected.reader`,
`.seqs`): the number was spent by that reader, so it counts as accounted for in the device's
sequence (it is not missing, and the reader's end-to-end ack covers it; else the agent would
send it again forever). A refusal that cannot be attributed (unknown key, bad signature) moves
nothing. A reader's signed `LostRange` (`ledger.core.lost`) arrives the same way, as a
refusal of reason `lost_at_reader` attributed to a range: kept in quarantine as the record of
the loss, and closing those gaps (`api.ingest.sequence.close_lost`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final, Protocol

from api.ingest.topics import parse_events_topic
from api.models.ingest import MAX_DETAIL_CHARS
from api.models.registry import Reader, ReaderStatus
from ledger.core import hashing
from ledger.core.bounds import MAX_SEQ
from ledger.core.ed25519 import VerifyingKey
from ledger.core.encoding import MAX_RECORD_BYTES
from ledger.core.envelope import (
    Envelope,
)
from ledger.core.errors import EncodingError, RecordTooLarge, SchemaError, SignatureError
from ledger.core.lost import LostRange
from ledger.core.records import Observation

MAX_MESSAGE_BYTES: Final = 4096
"""An observation envelope is about 450 bytes and at most about 1.2 KiB with every id at its
128-character bound; 4 KiB refuses anything built to make us parse, well under the record
format's own MAX_RECORD_BYTES."""

assert MAX_MESSAGE_BYTES <= MAX_RECORD_BYTES

KEY_CACHE_SIZE: Final = 4096
"""Loaded public keys kept in memory: more than the readers of a national deployment's busiest
broker partition, bounded so a flood of registrations cannot grow it without limit."""


class RejectReason(StrEnum):
    OVERSIZE = "oversize"
    MALFORMED = "malformed"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    BAD_SIGNATURE = "bad_signature"
    SCHEMA = "schema"
    DEVICE_MISMATCH = "device_mismatch"
    CLOCK_SKEW = "clock_skew"
    SEQ_CONFLICT = "seq_conflict"
    LOST_AT_READER = "lost_at_reader"


@dataclass(frozen=True, slots=True)
class ReaderKey:
    """What ingest needs to know about a registered reader, keyed by its key id: who it is
    (an `api.custody.reads.ReaderRef`), its public key, and whether it may still sign."""

    reader_id: str
    agency_id: str
    site_id: str
    public_key_hex: str
    active: bool


def reader_key(reader: Reader) -> ReaderKey:
    """The verification view of a registered reader row."""
    return ReaderKey(
        reader_id=reader.id, agency_id=reader.agency_id, site_id=reader.site_id,
        public_key_hex=reader.public_key, active=reader.status == ReaderStatus.ACTIVE,
    )


class ReaderLookup(Protocol):
    """Registered readers by key id (a dict, or the pipeline's caching directory)."""

    def get(self, kid: str, /) -> ReaderKey | None: ...


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One MQTT message as received; `mid` is the broker's id used to acknowledge it."""

    topic: str
    payload: bytes
    mid: int = 0


@dataclass(frozen=True, slots=True)
class Verified:
    """A message that passed every check: the read the custody rules are given (an
    `api.custody.reads.VerifiedRead`), with the message it came in."""

    message: InboundMessage
    reader: ReaderKey
    observation: Observation
    observed_at: datetime
    envelope_bytes: bytes
    envelope_hash: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    """A refused message. `reader` and `seqs` (first, last) are set when its signature
    verified: the numbers it spent are accounted for (see "Attribution" above)."""

    message: InboundMessage
    reason: RejectReason
    detail: str
    device_id: str | None = None
    reader: ReaderKey | None = None
    seqs: tuple[int, int] | None = None


@dataclass(frozen=True, slots=True)
class ClockPolicy:
    """How far an observation's time may be from the server's clock."""

    now: datetime
    max_future: timedelta
    max_age: timedelta


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _public_key(public_key_hex: str) -> VerifyingKey:
    """A registered key loaded once for both Ed25519 libraries (loading costs more than a
    verification)."""
    return VerifyingKey(bytes.fromhex(public_key_hex))


def _reject(
    message: InboundMessage, reason: RejectReason, detail: str, device: str | None = None,
    reader: ReaderKey | None = None, seqs: tuple[int, int] | None = None,
) -> Rejected:
    return Rejected(message, reason, detail[:MAX_DETAIL_CHARS], device, reader, seqs)


def _spent(payload: Mapping[str, Any], reader: ReaderKey) -> tuple[int, int] | None:
    """The number a signed payload of `reader`'s own spent, if it names one."""
    seq = payload.get("seq")
    if (payload.get("device") != reader.reader_id or not isinstance(seq, int)
            or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ):
        return None
    return (seq, seq)


def _lost(
    message: InboundMessage, reader: ReaderKey, payload: Mapping[str, Any], address: Any,
) -> Rejected:
    """A reader's signed word that numbers are lost: kept as a refusal attributed to them."""
    try:
        lost = LostRange.from_record(payload)
    except SchemaError as exc:
        return _reject(message, RejectReason.SCHEMA, str(exc), reader.reader_id)
    if lost.device != reader.reader_id or (address.agency, address.site, address.reader) != (
            reader.agency_id, reader.site_id, reader.reader_id):
        return _reject(message, RejectReason.DEVICE_MISMATCH,
                       f"lost statement signed by {reader.reader_id} names another reader",
                       reader.reader_id)
    return _reject(
        message, RejectReason.LOST_AT_READER,
        f"reader {reader.reader_id} no longer holds seqs {lost.first}..{lost.last}: "
        f"{lost.reason}", reader.reader_id, reader, (lost.first, lost.last))


def verify_messages(
    messages: Sequence[InboundMessage], readers: ReaderLookup, clock: ClockPolicy
) -> list[Verified | Rejected]:
    """`verify_message` on each of a batch's `messages`, in order."""
    return [verify_message(message, readers, clock) for message in messages]


def verify_message(
    message: InboundMessage, readers: ReaderLookup, clock: ClockPolicy
) -> Verified | Rejected:
    """Verify `message` against the registered `readers` (by key id); never raises on input."""
    if len(message.payload) > MAX_MESSAGE_BYTES:
        return _reject(
            message, RejectReason.OVERSIZE,
            f"message is {len(message.payload)} bytes, limit is {MAX_MESSAGE_BYTES}",
        )
    address = parse_events_topic(message.topic)
    if address is None:
        return _reject(message, RejectReason.BAD_TOPIC, "not a kitledger/v1 events topic")
    try:
        envelope = Envelope.from_bytes(message.payload)
    except RecordTooLarge as exc:
        return _reject(message, RejectReason.OVERSIZE, str(exc))
    except EncodingError as exc:
        return _reject(message, RejectReason.MALFORMED, f"{type(exc).__name__}: {exc}")
    reader = readers.get(envelope.kid)
    if reader is None:
        return _reject(message, RejectReason.UNKNOWN_DEVICE, f"no reader has key {envelope.kid}")
    try:
        payload = _public_key(reader.public_key_hex).verify_envelope(envelope)
    except SignatureError as exc:
        if not reader.active:
            return _reject(message, RejectReason.REVOKED_DEVICE,
                           f"reader {reader.reader_id} is revoked", reader.reader_id)
        return _reject(message, RejectReason.BAD_SIGNATURE, str(exc), reader.reader_id)
    # Signed by `reader`: from here on every refusal is attributed (module docstring).
    if payload.get("type") == LostRange.TYPE and reader.active:
        return _lost(message, reader, payload, address)
    spent = _spent(payload, reader)
    if not reader.active:
        return _reject(
            message, RejectReason.REVOKED_DEVICE, f"reader {reader.reader_id} is revoked",
            reader.reader_id, reader, spent,
        )
    try:
        observation, observed_at = Observation.from_record_timed(payload)
    except SchemaError as exc:
        return _reject(message, RejectReason.SCHEMA, str(exc), reader.reader_id, reader, spent)
    if observation.device != reader.reader_id:
        return _reject(
            message, RejectReason.DEVICE_MISMATCH,
            f"signed by reader {reader.reader_id}, payload names {observation.device}",
            reader.reader_id,
        )
    if (address.agency, address.site, address.reader) != (
        reader.agency_id, reader.site_id, reader.reader_id
    ):
        return _reject(
            message, RejectReason.BAD_TOPIC,
            f"reader {reader.reader_id} publishes under {reader.agency_id}/{reader.site_id}",
            reader.reader_id, reader, spent,
        )
    if observed_at > clock.now + clock.max_future:
        return _reject(
            message, RejectReason.CLOCK_SKEW,
            f"observation time {observation.time} is ahead of the server clock",
            reader.reader_id, reader, spent,
        )
    if observed_at < clock.now - clock.max_age:
        return _reject(
            message, RejectReason.CLOCK_SKEW,
            f"observation time {observation.time} is older than the accepted age",
            reader.reader_id, reader, spent,
        )
    return Verified(
        message=message, reader=reader, observation=observation, observed_at=observed_at,
        envelope_bytes=message.payload,
        # `from_bytes` accepted only canonical bytes, so they are the envelope's `to_bytes()`.
        envelope_hash=hashing.domain_hash(hashing.ENVELOPE, message.payload),
    )
