"""Ed25519 verification with libsodium's speed and `cryptography`'s verdict.

libsodium (PyNaCl) checks a valid signature in about half the time `cryptography` (OpenSSL)
takes, and it is the stricter of the two: it also refuses small-order keys and R points and
non-canonical encodings that OpenSSL lets through. So a signature libsodium accepts is one the
reference accepts too, and only a signature libsodium refuses is judged again, by
`cryptography`, whose verdict and typed error stand. PyNaCl comes with the server extra; without
it (an agent, a bare auditor's install) every check takes the reference path, with the same
verdicts. tests/ledger/test_ed25519.py checks the two libraries agree by property.
"""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature

from ledger.core.envelope import Envelope, key_id, public_key_from_raw, verify_envelope
from ledger.core.errors import BadSignature

try:
    from nacl.exceptions import CryptoError
    from nacl.signing import VerifyKey
except ImportError:  # no libsodium binding: the reference path only
    HAVE_LIBSODIUM = False
else:
    HAVE_LIBSODIUM = True


class VerifyingKey:
    """A raw 32-byte Ed25519 public key loaded once for both libraries, with its key id.

    Loading refuses a key of the wrong length (SchemaError). Keep one per registered key:
    loading costs more than a verification.
    """

    __slots__ = ("_fast", "kid", "reference")

    def __init__(self, raw: bytes, *, use_libsodium: bool = True) -> None:
        self.reference = public_key_from_raw(raw)
        self.kid = key_id(self.reference)
        self._fast = VerifyKey(bytes(raw)) if use_libsodium and HAVE_LIBSODIUM else None

    def _fast_accepts(self, message: bytes, signature: bytes) -> bool:
        if self._fast is None:
            return False
        try:
            self._fast.verify(message, signature)
        except (CryptoError, ValueError, TypeError):  # CryptoError covers BadSignatureError
            return False
        return True

    def accepts(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message` (the reference
        verdict)."""
        if self._fast_accepts(message, signature):
            return True
        try:
            self.reference.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def verify(self, message: bytes, signature: bytes) -> None:
        """Raise BadSignature unless `signature` is this key's signature of `message`; the
        message is `verify_envelope`'s, for the same refusal."""
        if not self.accepts(message, signature):
            raise BadSignature(
                f"Ed25519 signature by key {self.kid} does not verify over the payload")

    def verify_envelope(self, envelope: Envelope) -> dict[str, Any]:
        """`verify_envelope(envelope, self.reference)`: the payload if this key signed the
        envelope, else its KeyIdMismatch or BadSignature."""
        if envelope.kid == self.kid and self._fast_accepts(envelope.signed_message(),
                                                           envelope.sig):
            return envelope.payload
        return verify_envelope(envelope, self.reference)
