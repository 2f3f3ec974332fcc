"""Domain-separated SHA-256.

Every hash the ledger computes over its own records names its purpose, so a hash of one kind of
record can never be presented as a hash of another. The Merkle tree's 0x00/0x01 prefixes are the
RFC 9162 domain separation and live in `ledger.core.merkle`.
"""

from __future__ import annotations

import hashlib
from typing import Final

HASH_SIZE: Final = 32

DOMAIN_PREFIX: Final = b"kitledger/v1/"

#: Purposes in use. Adding one is fine; renaming one changes every hash of that purpose.
OBSERVATION: Final = "observation"
ENVELOPE_SIGNATURE: Final = "envelope-signature"
ENVELOPE: Final = "envelope"
CUSTODY_EVENT: Final = "custody-event"
REGISTRY_RECORD: Final = "registry-record"
COMMITMENT: Final = "commitment"
KEY_ID: Final = "key-id"
CHECKPOINT: Final = "checkpoint"


def sha256(data: bytes) -> bytes:
    """Plain SHA-256, for formats that fix their own prefixes (RFC 9162 Merkle hashing)."""
    return hashlib.sha256(data).digest()


def domain_hash(domain: str, data: bytes) -> bytes:
    """SHA-256 over `kitledger/v1/<domain>` NUL `data`.

    The NUL cannot occur in a domain name, so no (domain, data) pair collides with another.
    """
    if not domain or "\x00" in domain:
        raise ValueError("a hash domain must be non-empty and contain no NUL")
    return hashlib.sha256(DOMAIN_PREFIX + domain.encode("ascii") + b"\x00" + data).digest()
