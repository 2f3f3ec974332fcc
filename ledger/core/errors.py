"""The ledger's typed errors: one root, `LedgerError`, and a family per concern.

A verification failure says what was expected and what was found, so an auditor reading the
message can tell a tampered record from a malformed one.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by the `ledger` package."""


class EncodingError(LedgerError):
    """Bytes or values that are not a valid canonical record."""


class RecordTooLarge(EncodingError):
    """A record exceeds MAX_RECORD_BYTES."""


class RecordTooDeep(EncodingError):
    """A record nests deeper than MAX_DEPTH."""


class DuplicateKey(EncodingError):
    """A JSON object names the same key twice (RFC 8259 leaves this undefined; we refuse it)."""


class NonCanonicalNumber(EncodingError):
    """A number that is not an integer within the interoperable range, or is written oddly."""


class InvalidUtf8(EncodingError):
    """Bytes that are not valid UTF-8."""


class NonCanonicalEncoding(EncodingError):
    """Valid JSON whose bytes differ from its RFC 8785 canonical form."""


class SchemaError(EncodingError):
    """A record that parses but does not match its type's schema."""


class SignatureError(LedgerError):
    """An envelope whose signature does not verify."""


class KeyIdMismatch(SignatureError):
    """The envelope names a different key than the one it is being checked against."""


class BadSignature(SignatureError):
    """The Ed25519 signature does not verify over the canonical payload."""


class HashChainError(LedgerError):
    """A per-asset hash chain that is broken: a gap, a reorder, or a rewritten event."""


class ProofError(LedgerError):
    """A Merkle inclusion or consistency proof that does not verify."""
