"""The one Ed25519 check: libsodium's quick accept never disagrees with `cryptography`'s verdict.

By property over valid signatures, mutated ones and malformed ones (non-canonical S, random
bytes, wrong lengths, small-order and non-canonical public keys): whatever libsodium accepts
`cryptography` accepts, every valid signature is accepted by both, and `VerifyingKey` gives
the reference verdict with or without libsodium, with `verify_envelope`'s typed errors.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.exceptions import CryptoError
from nacl.signing import VerifyKey

from ledger.core.ed25519 import HAVE_LIBSODIUM, VerifyingKey
from ledger.core.envelope import Envelope, raw_public_key, sign_envelope, verify_envelope
from ledger.core.errors import BadSignature, KeyIdMismatch, LedgerError

ORDER = 2**252 + 27742317777372353535851937790883648493
"""L, the order of the Ed25519 base point: a canonical S is below it."""

ODD_KEYS = [bytes.fromhex(h) for h in (
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # order 2
    "0000000000000000000000000000000000000000000000000000000000000000",  # order 4
    "0000000000000000000000000000000000000000000000000000000000000080",  # order 4
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "0100000000000000000000000000000000000000000000000000000000000080",  # identity, x sign
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # y = p + 1
)]
IDENTITY_R_ZERO_S = ODD_KEYS[0] + bytes(32)
"""R the identity and S zero: [S]B = R + [k]A holds for every message under a small-order A."""

SEEDS = st.binary(min_size=32, max_size=32)
MESSAGES = st.binary(max_size=80)


def _reference(raw: bytes, message: bytes, signature: bytes) -> bool:
    key = VerifyingKey(raw, use_libsodium=False).reference
    try:
        key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


def _libsodium(raw: bytes, message: bytes, signature: bytes) -> bool:
    try:
        VerifyKey(raw).verify(message, signature)
    except (CryptoError, ValueError):
        return False
    return True


def _noncanonical_s(signature: bytes) -> bytes:
    s = int.from_bytes(signature[32:], "little") + ORDER
    return signature[:32] + s.to_bytes(32, "little") if s < 2**256 else signature


@st.composite
def cases(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
    """(raw public key, message, signature) across valid, mutated and malformed."""
    private = Ed25519PrivateKey.from_private_bytes(draw(SEEDS))
    raw = raw_public_key(private.public_key())
    message = draw(MESSAGES)
    signature = private.sign(message)
    kind = draw(st.sampled_from(["valid", "bit", "message", "s+l", "random", "length",
                                 "odd key", "odd key, neutral sig", "random key"]))
    if kind == "bit":
        bit = draw(st.integers(0, 511))
        signature = bytes(b ^ (1 << (bit % 8)) if i == bit // 8 else b
                          for i, b in enumerate(signature))
    elif kind == "message":
        message = message + b"\x00"
    elif kind == "s+l":
        signature = _noncanonical_s(signature)
    elif kind == "random":
        signature = draw(st.binary(min_size=64, max_size=64))
    elif kind == "length":
        signature = signature[:draw(st.sampled_from([0, 32, 63]))] or signature + b"\x00"
    elif kind.startswith("odd key"):
        raw = draw(st.sampled_from(ODD_KEYS))
        signature = IDENTITY_R_ZERO_S if kind.endswith("sig") else signature
    elif kind == "random key":
        raw = draw(st.binary(min_size=32, max_size=32))
    return raw, message, signature


@settings(max_examples=600, deadline=None)
@given(cases())
def test_libsodium_accepts_only_what_the_reference_accepts(
        case: tuple[bytes, bytes, bytes]) -> None:
    raw, message, signature = case
    reference = _reference(raw, message, signature)
    if _libsodium(raw, message, signature):
        assert reference
    assert VerifyingKey(raw).accepts(message, signature) is reference
    assert VerifyingKey(raw, use_libsodium=False).accepts(message, signature) is reference


@settings(max_examples=200, deadline=None)
@given(SEEDS, MESSAGES)
def test_both_libraries_accept_every_valid_signature(seed: bytes, message: bytes) -> None:
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw, signature = raw_public_key(private.public_key()), private.sign(message)
    assert _libsodium(raw, message, signature) and _reference(raw, message, signature)
    VerifyingKey(raw).verify(message, signature)


def test_a_small_order_key_is_judged_by_the_reference() -> None:
    # libsodium refuses every small-order key; OpenSSL accepts this neutral signature under
    # the identity key. The reference's verdict is the one that stands, whichever it is.
    raw = ODD_KEYS[0]
    assert not _libsodium(raw, b"any", IDENTITY_R_ZERO_S)
    assert VerifyingKey(raw).accepts(b"any", IDENTITY_R_ZERO_S) is _reference(
        raw, b"any", IDENTITY_R_ZERO_S)


@pytest.mark.parametrize("use_libsodium", [True, False])
def test_envelope_verdicts_and_errors_are_verify_envelopes(use_libsodium: bool) -> None:
    private, other = (Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32) for n in (1, 2))
    key = VerifyingKey(raw_public_key(private.public_key()), use_libsodium=use_libsodium)
    envelope = sign_envelope({"type": "t", "v": 1, "n": 1}, private)
    assert key.verify_envelope(envelope) == verify_envelope(envelope, key.reference)
    forged = Envelope(envelope.kid, {"type": "t", "v": 1, "n": 2}, envelope.sig)
    for wrong, error in ((forged, BadSignature), (sign_envelope({"a": 1}, other), KeyIdMismatch)):
        with pytest.raises(error) as ours:
            key.verify_envelope(wrong)
        with pytest.raises(error) as theirs:
            verify_envelope(wrong, key.reference)
        assert str(ours.value) == str(theirs.value)
    with pytest.raises(BadSignature) as raw_refusal:
        key.verify(forged.signed_message(), forged.sig)
    assert str(raw_refusal.value) == _refusal(forged, key)


def _refusal(envelope: Envelope, key: VerifyingKey) -> str:
    try:
        verify_envelope(envelope, key.reference)
    except LedgerError as exc:
        return str(exc)
    raise AssertionError("expected a refusal")


def test_a_key_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(LedgerError):
        VerifyingKey(bytes(31))


def test_the_module_works_without_pynacl() -> None:
    assert HAVE_LIBSODIUM
    script = """
import sys
sys.modules["nacl"] = None
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger.core.ed25519 import HAVE_LIBSODIUM, VerifyingKey
from ledger.core.envelope import raw_public_key
private = Ed25519PrivateKey.from_private_bytes(bytes(32))
key = VerifyingKey(raw_public_key(private.public_key()))
print(HAVE_LIBSODIUM, key.accepts(b"m", private.sign(b"m")), key.accepts(b"n", private.sign(b"m")))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "True", "False"]
