"""Signed checkpoints of a Merkle log: the (tree size, root) pairs the anchorer puts on chain.

A checkpoint is a canonical JSON record signed by the log's Ed25519 key in an `Envelope`::

    {"log":"<log key id>","root":"<64 hex>","size":N,"time":"...Z","type":"checkpoint","v":1}

It also fixes how a log and an agency are named on chain (32-byte domain hashes of their ids),
so an auditor can find a log's anchors from its key id alone. Pure: the time comes in as an
argument. Changing anything here changes every signed checkpoint and every on-chain log id.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.core import hashing, note
from ledger.core.encoding import MAX_SAFE_INTEGER, SCHEMA_VERSION
from ledger.core.envelope import Envelope, sign_envelope, verify_envelope
from ledger.core.errors import SchemaError
from ledger.core.records import parse_time

RECORD_TYPE: Final = "checkpoint"

#: Hash purposes of on-chain names (kept here, beside the only code that derives them).
CHAIN_LOG_ID: Final = "chain-log-id"
CHAIN_AGENCY_ID: Final = "chain-agency-id"

MAX_TREE_SIZE: Final = MAX_SAFE_INTEGER
"""Canonical JSON integers stop at 2**53 - 1 (and the contract stores a uint64): a bigger
size could not be signed and anchored with the same value, so it is refused up front."""

MAX_AGENCY_ID_CHARS: Final = 128
"""Agency ids are short registry names; a bound keeps hostile input out of the hash."""

_FIELDS: Final = frozenset({"log", "root", "size", "time", "type", "v"})
_KEY_ID = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AGENCY = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of log `log_id` at `tree_size` leaves, as seen at `time` (RFC 3339 UTC, ms)."""

    log_id: str
    tree_size: int
    root: bytes
    time: str

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.log_id):
            raise SchemaError("checkpoint log id must be a key id: 32 lowercase hex characters")
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int):
            raise SchemaError("checkpoint size must be an integer")
        if not 0 <= self.tree_size <= MAX_TREE_SIZE:
            raise SchemaError(f"checkpoint size {self.tree_size} outside 0..{MAX_TREE_SIZE}")
        if not isinstance(self.root, bytes) or len(self.root) != hashing.HASH_SIZE:
            raise SchemaError(f"checkpoint root must be {hashing.HASH_SIZE} bytes")
        parse_time(self.time)

    def to_record(self) -> dict[str, Any]:
        return {
            "log": self.log_id,
            "root": self.root.hex(),
            "size": self.tree_size,
            "time": self.time,
            "type": RECORD_TYPE,
            "v": SCHEMA_VERSION,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Checkpoint:
        """Strictly check a checkpoint record's shape and values."""
        if record.get("type") != RECORD_TYPE:
            raise SchemaError(f"record type {record.get('type')!r}, expected {RECORD_TYPE!r}")
        if record.get("v") != SCHEMA_VERSION:
            raise SchemaError(f"record version {record.get('v')!r}, expected {SCHEMA_VERSION}")
        if set(record) != _FIELDS:
            missing = sorted(_FIELDS - set(record))
            extra = sorted(set(record) - _FIELDS)
            raise SchemaError(f"checkpoint fields wrong: missing {missing}, unexpected {extra}")
        root = record["root"]
        if not isinstance(root, str) or not _HEX64.fullmatch(root):
            raise SchemaError("checkpoint root must be 64 lowercase hex characters")
        log_id, time = record["log"], record["time"]
        if not isinstance(log_id, str) or not isinstance(time, str):
            raise SchemaError("checkpoint log and time must be strings")
        return cls(log_id=log_id, tree_size=record["size"], root=bytes.fromhex(root), time=time)

    @property
    def chain_log_id(self) -> bytes:
        return chain_log_id(self.log_id)

    def note_extensions(self) -> tuple[str, ...]:
        """Extension lines of this checkpoint's C2SP note, after origin, size and root."""
        return ()

    def note_text(self) -> str:
        """The C2SP checkpoint note text the log signs and witnesses cosign:
        `kitledger/<log id>`, the size, the base64 root, then `note_extensions()`."""
        return note.CheckpointBody(note.log_origin(self.log_id), self.tree_size, self.root,
                                   self.note_extensions()).text()


def chain_log_id(log_id: str) -> bytes:
    """The 32-byte id under which log `log_id` (its key id) is registered on chain."""
    if not _KEY_ID.fullmatch(log_id):
        raise SchemaError("log id must be a key id: 32 lowercase hex characters")
    return hashing.domain_hash(CHAIN_LOG_ID, log_id.encode("ascii"))


def chain_agency_id(agency_id: str) -> bytes:
    """The 32-byte id under which agency `agency_id` holds its anchorer role on chain."""
    if len(agency_id) > MAX_AGENCY_ID_CHARS or not _AGENCY.fullmatch(agency_id):
        raise SchemaError(f"agency id must be 1..{MAX_AGENCY_ID_CHARS} printable ASCII characters")
    return hashing.domain_hash(CHAIN_AGENCY_ID, agency_id.encode("ascii"))


def sign_checkpoint(checkpoint: Checkpoint, log_key: Ed25519PrivateKey) -> Envelope:
    """Sign `checkpoint` with the log's key; the key must be the one the checkpoint names."""
    envelope = sign_envelope(checkpoint.to_record(), log_key)
    if envelope.kid != checkpoint.log_id:
        raise SchemaError(f"checkpoint names log {checkpoint.log_id}, key is {envelope.kid}")
    return envelope


def verify_checkpoint(envelope: Envelope, log_public_key: Ed25519PublicKey) -> Checkpoint:
    """The checkpoint in `envelope` if the log's key signed it and it names that log."""
    checkpoint = Checkpoint.from_record(verify_envelope(envelope, log_public_key))
    if checkpoint.log_id != envelope.kid:
        raise SchemaError(f"checkpoint names log {checkpoint.log_id}, signed by {envelope.kid}")
    return checkpoint
