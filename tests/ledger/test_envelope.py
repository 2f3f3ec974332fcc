"""Signed envelopes: known answers from RFC 8032's test key, and every way a signature fails."""

from __future__ import annotations

import dataclasses
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.encoding import canonical_bytes
from ledger.core.envelope import (
    Envelope,
    envelope_hash,
    key_id,
    public_key_from_raw,
    raw_public_key,
    sign_envelope,
    verify_envelope,
)
from ledger.core.errors import BadSignature, EncodingError, KeyIdMismatch, SchemaError
from tests.paths import VECTORS_DIR

VECTORS = json.loads((VECTORS_DIR / "core_records.json").read_text())
ENV = VECTORS["envelope"]


def rfc8032_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(ENV["seed_hex"]))


def test_known_answer_signature() -> None:
    key = rfc8032_key()
    assert raw_public_key(key.public_key()).hex() == ENV["public_key_hex"]
    assert key_id(key.public_key()) == ENV["kid"]
    env = sign_envelope(ENV["observation"], key)
    assert env.to_bytes().decode() == ENV["wire"]


def test_wire_round_trip_and_verify() -> None:
    env = Envelope.from_bytes(ENV["wire"].encode())
    public = public_key_from_raw(bytes.fromhex(ENV["public_key_hex"]))
    assert verify_envelope(env, public) == ENV["observation"]
    assert env.to_bytes() == ENV["wire"].encode()
    assert envelope_hash(env) == envelope_hash(Envelope.from_bytes(env.to_bytes()))


def test_wrong_key_is_named() -> None:
    env = Envelope.from_bytes(ENV["wire"].encode())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(KeyIdMismatch, match=key_id(other)):
        verify_envelope(env, other)


def test_key_swap_with_forged_kid_fails_signature() -> None:
    """An attacker relabels the envelope with their own key id: the signature still fails."""
    attacker = Ed25519PrivateKey.generate()
    env = Envelope.from_bytes(ENV["wire"].encode())
    forged = Envelope(kid=key_id(attacker.public_key()), payload=env.payload, sig=env.sig)
    with pytest.raises(BadSignature):
        verify_envelope(forged, attacker.public_key())


@pytest.mark.parametrize("field", ["seq", "epc", "time", "rssi", "device"])
def test_any_payload_change_breaks_signature(field: str) -> None:
    env = Envelope.from_bytes(ENV["wire"].encode())
    payload = dict(env.payload)
    original = payload[field]
    payload[field] = original + 1 if isinstance(original, int) else original[:-1] + "0"
    assert payload[field] != original
    tampered = Envelope(kid=env.kid, payload=payload, sig=env.sig)
    with pytest.raises(BadSignature):
        verify_envelope(tampered, rfc8032_key().public_key())


def test_every_signature_bit_matters() -> None:
    env = Envelope.from_bytes(ENV["wire"].encode())
    public = rfc8032_key().public_key()
    for bit in range(0, 512, 37):
        sig = bytearray(env.sig)
        sig[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(BadSignature):
            verify_envelope(Envelope(kid=env.kid, payload=env.payload, sig=bytes(sig)), public)


def _wire(**changes: object) -> bytes:
    record = json.loads(ENV["wire"])
    record.update(changes)
    for key in [k for k, v in changes.items() if v is ...]:
        del record[key]
    return canonical_bytes(record)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("missing sig", _wire(sig=...)),
        ("extra field", _wire(note="hi")),
        ("wrong version", _wire(v=2)),
        ("wrong alg", _wire(alg="ES256")),
        ("short sig", _wire(sig="AAAA")),
        ("padded sig", _wire(sig=json.loads(ENV["wire"])["sig"] + "==")),
        ("non-canonical sig bits", _wire(sig=json.loads(ENV["wire"])["sig"][:-1] + "B")),
        ("kid upper-case", _wire(kid=ENV["kid"].upper())),
        ("kid short", _wire(kid="abcd")),
        ("payload array", _wire(payload=[1])),
        ("sig number", _wire(sig=5)),
    ],
)
def test_malformed_envelopes_refused(name: str, data: bytes) -> None:
    with pytest.raises(SchemaError):
        Envelope.from_bytes(data)


def test_non_canonical_wire_refused() -> None:
    pretty = json.dumps(json.loads(ENV["wire"]), indent=1).encode()
    with pytest.raises(EncodingError):
        Envelope.from_bytes(pretty)


def test_raw_public_key_length_checked() -> None:
    with pytest.raises(SchemaError, match="32 bytes"):
        public_key_from_raw(b"\x00" * 31)


def test_assembled_wire_equals_rfc8785_of_the_record() -> None:
    env = sign_envelope(VECTORS["envelope"]["observation"], rfc8032_key())
    assert env.to_bytes() == canonical_bytes(env.to_record())
    parsed = Envelope.from_bytes(env.to_bytes())
    assert parsed.canonical_payload() == canonical_bytes(parsed.payload)


def test_replace_never_reuses_the_signed_payload_bytes() -> None:
    """A payload swapped with dataclasses.replace is checked as it is, not as it was signed."""
    env = sign_envelope(VECTORS["envelope"]["observation"], rfc8032_key())
    tampered = dataclasses.replace(env, payload={**env.payload, "seq": 42})
    with pytest.raises(BadSignature):
        verify_envelope(tampered, rfc8032_key().public_key())
    wire = Envelope.from_bytes(env.to_bytes())
    with pytest.raises(BadSignature):
        verify_envelope(dataclasses.replace(wire, payload={**wire.payload, "seq": 1}),
                        rfc8032_key().public_key())
