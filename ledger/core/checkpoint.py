"""Signed checkpoints of a Merkle log: the (tree size, root) pairs the anchorer puts on chain.

A checkpoint is a canonical JSON record signed by the log's Ed25519 key in an `Envelope`::

    {"log":"<log key id>","root":"<64 hex>","size":N,"time":"...Z","type":"checkpoint","v":1}

Version 2 adds `"heads":"<64 hex>"`, the root of the log's head map at that size
(`ledger.core.heads`): every asset's latest event. A checkpoint without a head map is written
and read as version 1, byte for byte as before.

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
from ledger.core.bounds import HASH_HEX_CHARS, MAX_ID_CHARS, is_identifier
from ledger.core.encoding import MAX_SAFE_INTEGER, SCHEMA_VERSION
from ledger.core.envelope import KEY_ID_HEX_CHARS, Envelope, sign_envelope, verify_envelope
from ledger.core.errors import SchemaError
from ledger.core.records import parse_time

RECORD_TYPE: Final = "checkpoint"

#: Hash purposes of on-chain names (kept here, beside the only code that derives them).
CHAIN_LOG_ID: Final = "chain-log-id"
CHAIN_AGENCY_ID: Final = "chain-agency-id"

MAX_TREE_SIZE: Final = MAX_SAFE_INTEGER
"""Canonical JSON integers stop at 2**53 - 1 (and the contract stores a uint64): a bigger
size could not be signed and anchored with the same value, so it is refused up front."""

MAX_AGENCY_ID_CHARS: Final = MAX_ID_CHARS
"""Agency ids are record-format ids; a bound keeps hostile input out of the hash."""

HEADS_VERSION: Final = 2
"""The record version of a checkpoint that commits to a head map."""

_FIELDS: Final = frozenset({"log", "root", "size", "time", "type", "v"})
_FIELDS_WITH_HEADS: Final = _FIELDS | {"heads"}
_KEY_ID = re.compile(f"[0-9a-f]{{{KEY_ID_HEX_CHARS}}}")
_HEX64 = re.compile(f"[0-9a-f]{{{HASH_HEX_CHARS}}}")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The head of log `log_id` at `tree_size` leaves, as seen at `time` (RFC 3339 UTC, ms)."""

    log_id: str
    tree_size: int
    root: bytes
    time: str
    heads: bytes | None = None
    """The head map's root (`ledger.core.heads.heads_root`); None in a version 1 checkpoint."""

    def __post_init__(self) -> None:
        if not _KEY_ID.fullmatch(self.log_id):
            raise SchemaError("checkpoint log id must be a key id: 32 lowercase hex characters")
        if isinstance(self.tree_size, bool) or not isinstance(self.tree_size, int):
            raise SchemaError("checkpoint size must be an integer")
        if not 0 <= self.tree_size <= MAX_TREE_SIZE:
            raise SchemaError(f"checkpoint size {self.tree_size} outside 0..{MAX_TREE_SIZE}")
        if not isinstance(self.root, bytes) or len(self.root) != hashing.HASH_SIZE:
            raise SchemaError(f"checkpoint root must be {hashing.HASH_SIZE} bytes")
        if self.heads is not None and (
                not isinstance(self.heads, bytes) or len(self.heads) != hashing.HASH_SIZE):
            raise SchemaError(f"checkpoint heads root must be {hashing.HASH_SIZE} bytes")
        parse_time(self.time)

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "log": self.log_id,
            "root": self.root.hex(),
            "size": self.tree_size,
            "time": self.time,
            "type": RECORD_TYPE,
            "v": SCHEMA_VERSION,
        }
        if self.heads is not None:
            record["heads"], record["v"] = self.heads.hex(), HEADS_VERSION
        return record

    def note_extensions(self) -> tuple[str, ...]:
        """Extension lines of this checkpoint's C2SP note: the head map root, when it has one."""
        return () if self.heads is None else (f"heads {self.heads.hex()}",)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Checkpoint:
        """Strictly check a checkpoint record's shape and values."""
        if record.get("type") != RECORD_TYPE:
            raise SchemaError(f"record type {record.get('type')!r}, expected {RECORD_TYPE!r}")
        version = record.get("v")
        if type(version) is not int or version not in (SCHEMA_VERSION, HEADS_VERSION):
            raise SchemaError(f"record version {version!r:.20}, expected {SCHEMA_VERSION} or "
                              f"{HEADS_VERSION}")
        fields = _FIELDS if version == SCHEMA_VERSION else _FIELDS_WITH_HEADS
        if set(record) != fields:
            missing = sorted(fields - set(record))
            extra = sorted(set(record) - fields)
            raise SchemaError(f"checkpoint fields wrong: missing {missing}, unexpected {extra}")
        root, heads = record["root"], record.get("heads")
        if not isinstance(root, str) or not _HEX64.fullmatch(root):
            raise SchemaError("checkpoint root must be 64 lowercase hex characters")
        if version == HEADS_VERSION and (
                not isinstance(heads, str) or not _HEX64.fullmatch(heads)):
            raise SchemaError("checkpoint heads root must be 64 lowercase hex characters")
        log_id, time = record["log"], record["time"]
        if not isinstance(log_id, str) or not isinstance(time, str):
            raise SchemaError("checkpoint log and time must be strings")
        return cls(log_id=log_id, tree_size=record["size"], root=bytes.fromhex(root), time=time,
                   heads=None if heads is None else bytes.fromhex(heads))

    @property
    def chain_log_id(self) -> bytes:
        return chain_log_id(self.log_id)

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
    if not is_identifier(agency_id):
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
