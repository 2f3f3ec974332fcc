"""Ed25519 signed envelopes: a record, the id of the key that signed it, and the signature.

Wire form (canonical JSON, as everything else)::

    {"alg":"Ed25519","kid":"<32 hex>","payload":{...record...},"sig":"<base64url>","v":1}

The signature covers the domain-separated canonical bytes of the payload, so the same record
signed for another purpose can never be replayed as an envelope, and re-serialising the
envelope cannot change what was signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.core import hashing
from ledger.core.encoding import MAX_RECORD_BYTES, SCHEMA_VERSION, canonical_bytes, parse_record
from ledger.core.errors import BadSignature, KeyIdMismatch, RecordTooLarge, SchemaError

ALGORITHM: Final = "Ed25519"
SIGNATURE_BYTES: Final = 64
KEY_ID_HEX_CHARS: Final = 32
_KEY_ID = re.compile(f"[0-9a-f]{{{KEY_ID_HEX_CHARS}}}")
_ENVELOPE_KEYS: Final = frozenset({"alg", "kid", "payload", "sig", "v"})


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of an Ed25519 public key."""
    return public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A key's id and fingerprint: the first 16 bytes of its domain-separated hash, in hex."""
    digest = hashing.domain_hash(hashing.KEY_ID, raw_public_key(public_key))
    return digest[:16].hex()


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    """Load a 32-byte raw Ed25519 public key, with a clear error on the wrong length."""
    if len(raw) != 32:
        raise SchemaError(f"an Ed25519 public key is 32 bytes, found {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


SIGNING_PREFIX: Final = (
    hashing.DOMAIN_PREFIX + hashing.ENVELOPE_SIGNATURE.encode("ascii") + b"\x00"
)
"""What an envelope's signature covers is this prefix followed by the canonical payload."""


def signing_message(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes an envelope's signature covers."""
    return SIGNING_PREFIX + canonical_bytes(payload)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


SIGNATURE_TEXT_CHARS: Final = 86
"""A signature's unpadded base64url: 86 characters carry 516 bits for its 512."""
_LAST_SIG_CHARS: Final = "AQgw"
"""The characters that may end a signature's base64url: the last character's 4 unused bits
must be zero (its value a multiple of 16)."""
SIGNATURE_TEXT_PATTERN: Final = (
    f"[A-Za-z0-9_-]{{{SIGNATURE_TEXT_CHARS - 1}}}[{_LAST_SIG_CHARS}]"
)
"""The one spelling of a signature in an envelope."""
_SIG_TEXT = re.compile(f"[A-Za-z0-9_-]{{{SIGNATURE_TEXT_CHARS}}}")


def _b64decode(text: str) -> bytes:
    if not _SIG_TEXT.fullmatch(text):
        raise SchemaError("sig must be 64 bytes in unpadded base64url (86 characters)")
    try:
        raw = base64.urlsafe_b64decode(text + "==")
    except binascii.Error:
        raise SchemaError("sig is not valid base64url") from None
    if text[-1] not in _LAST_SIG_CHARS:
        # Unused trailing bits set: a second spelling of the same signature.
        raise SchemaError("sig is not in canonical base64url form")
    return raw


@dataclass(frozen=True, slots=True)
class Envelope:
    """A signed record. `payload` is the record as a JSON object."""

    kid: str
    payload: dict[str, Any] = field(hash=False)
    sig: bytes
    # The payload's canonical bytes when known for certain (set only by `sign_envelope` and
    # `from_bytes`), so the hot path canonicalises each payload once. Not an __init__
    # argument: `dataclasses.replace(env, payload=...)` must never carry stale bytes along.
    _payload_bytes: bytes | None = field(default=None, init=False, compare=False, repr=False)

    def canonical_payload(self) -> bytes:
        cached = self._payload_bytes
        return cached if cached is not None else canonical_bytes(self.payload)

    def signed_message(self) -> bytes:
        """The exact bytes the signature covers (for verifiers other than `verify_envelope`)."""
        return SIGNING_PREFIX + self.canonical_payload()

    def _remember_payload_bytes(self, payload_bytes: bytes) -> Envelope:
        object.__setattr__(self, "_payload_bytes", payload_bytes)
        return self

    def to_record(self) -> dict[str, Any]:
        return {
            "alg": ALGORITHM,
            "kid": self.kid,
            "payload": self.payload,
            "sig": _b64encode(self.sig),
            "v": SCHEMA_VERSION,
        }

    def to_bytes(self) -> bytes:
        """The canonical wire bytes.

        Assembled around the canonical payload: the envelope's own keys are fixed ASCII names
        already in RFC 8785 order, and kid and sig are plain ASCII, so this equals
        `canonical_bytes(self.to_record())` (a test checks it) without encoding twice.
        """
        data = b"".join((
            b'{"alg":"', ALGORITHM.encode(), b'","kid":"', self.kid.encode("ascii"),
            b'","payload":', self.canonical_payload(), b',"sig":"',
            _b64encode(self.sig).encode("ascii"), b'","v":', str(SCHEMA_VERSION).encode(), b"}",
        ))
        if len(data) > MAX_RECORD_BYTES:
            raise RecordTooLarge(f"envelope is {len(data)} bytes, limit is {MAX_RECORD_BYTES}")
        return data

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Envelope:
        """Check an envelope's shape (not its signature: see `verify_envelope`)."""
        keys = set(record)
        if keys != _ENVELOPE_KEYS:
            missing = sorted(_ENVELOPE_KEYS - keys)
            extra = sorted(keys - _ENVELOPE_KEYS)
            raise SchemaError(f"envelope fields wrong: missing {missing}, unexpected {extra}")
        if record["v"] != SCHEMA_VERSION:
            raise SchemaError(f"envelope version {record['v']!r}, expected {SCHEMA_VERSION}")
        if record["alg"] != ALGORITHM:
            raise SchemaError(f"envelope algorithm {record['alg']!r}, expected {ALGORITHM!r}")
        kid = record["kid"]
        if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
            raise SchemaError("kid must be 32 lowercase hex characters")
        payload = record["payload"]
        if not isinstance(payload, dict):
            raise SchemaError("payload must be a JSON object")
        sig = record["sig"]
        if not isinstance(sig, str):
            raise SchemaError("sig must be a string")
        return cls(kid=kid, payload=payload, sig=_b64decode(sig))

    @classmethod
    def from_bytes(cls, data: bytes) -> Envelope:
        """Parse canonical wire bytes strictly."""
        envelope = cls.from_record(parse_record(data))
        # The payload is the canonical text between '"payload":' and ',"sig":' of canonical
        # input; slicing it out saves re-encoding it to check the signature.
        start = data.index(b',"payload":') + len(b',"payload":')
        end = data.rindex(b',"sig":"')
        return envelope._remember_payload_bytes(bytes(data[start:end]))


def sign_envelope(payload: Mapping[str, Any], private_key: Ed25519PrivateKey) -> Envelope:
    """Sign `payload` with `private_key`."""
    payload_bytes = canonical_bytes(payload)
    envelope = Envelope(
        kid=key_id(private_key.public_key()),
        payload=dict(payload),
        sig=private_key.sign(SIGNING_PREFIX + payload_bytes),
    )
    return envelope._remember_payload_bytes(payload_bytes)


def verify_envelope(envelope: Envelope, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """Return the payload if `envelope` was signed by `public_key`; raise otherwise."""
    expected = key_id(public_key)
    if envelope.kid != expected:
        raise KeyIdMismatch(f"envelope names key {envelope.kid}, expected {expected}")
    try:
        public_key.verify(envelope.sig, SIGNING_PREFIX + envelope.canonical_payload())
    except InvalidSignature:
        raise BadSignature(
            f"Ed25519 signature by key {expected} does not verify over the payload"
        ) from None
    return envelope.payload


def envelope_hash(envelope: Envelope) -> bytes:
    """The envelope's identity in custody events and bundles."""
    return hashing.domain_hash(hashing.ENVELOPE, envelope.to_bytes())
