"""Salted commitments for personal identifiers (badge EPCs, person ids).

Custody events name people only by `commit(purpose, value, salt)`. The salt and the value live
in the operator's database, never in the log or on chain: showing them to an entitled viewer
proves who the commitment names, and deleting them erases the person without changing a single
hash, so every proof still verifies.
"""

from __future__ import annotations

import hmac
from typing import Final

from ledger.core import hashing
from ledger.core.errors import SchemaError

MIN_SALT_BYTES: Final = 16
"""128 bits: a salt guessed by brute force over a small id space must still be infeasible."""

MAX_SALT_BYTES: Final = 64
MAX_VALUE_CHARS: Final = 256

PERSON: Final = "person"
BADGE: Final = "badge"


def commit(purpose: str, value: str, salt: bytes) -> str:
    """The 64-hex commitment to `value` for `purpose`, under a secret random `salt`."""
    if not MIN_SALT_BYTES <= len(salt) <= MAX_SALT_BYTES:
        raise SchemaError(f"salt must be {MIN_SALT_BYTES}-{MAX_SALT_BYTES} bytes, got {len(salt)}")
    if not value or len(value) > MAX_VALUE_CHARS:
        raise SchemaError(f"committed value must be 1-{MAX_VALUE_CHARS} characters")
    if not purpose.isascii() or not purpose or "\x00" in purpose:
        raise SchemaError("purpose must be a non-empty ASCII name")
    # Length-prefix the salt so (salt, value) pairs cannot be re-split into another pair.
    data = (
        purpose.encode("ascii") + b"\x00" + len(salt).to_bytes(1, "big") + salt
        + value.encode("utf-8")
    )
    return hashing.domain_hash(hashing.COMMITMENT, data).hex()


def opens(commitment: str, purpose: str, value: str, salt: bytes) -> bool:
    """Whether (value, salt) opens `commitment`; constant-time in the comparison."""
    return hmac.compare_digest(commit(purpose, value, salt), commitment)
