"""The agencies' log-signing keys, answers keys and anchoring accounts: generated at run time,
kept as files.

Each agency's Merkle log is named by the key id of the Ed25519 key that signs its checkpoints;
each agency anchors with its own Ethereum account (the CustodyAnchor contract accepts a log's
checkpoints only from an anchorer of the agency it is registered to). Both secrets live as
files in `Settings.log_key_dir`, mode 0600 in a 0700 directory, never in the database: whoever
can read the database (an operator, a backup, a SQL injection) must not be able to sign
checkpoints or anchor in the agency's name. Sealing them in the database with the settings
secret would put key and lock in the same hands whenever the settings travel with the
database, which they usually do. Secrets never appear in logs or errors; only paths and key ids
do.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from api.errors import ApiServiceError
from ledger.core.envelope import key_id

MAX_KEY_FILE_BYTES: Final = 256
"""A key file holds 64 hex digits and a newline; anything bigger is not ours."""

_SAFE_AGENCY = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class LogKeyError(ApiServiceError):
    """A key file that is missing, unreadable, too open, or not a key."""


def _file(directory: Path, kind: str, agency_id: str) -> Path:
    # Agency ids are registry ids; refuse anything that could escape the directory.
    if not _SAFE_AGENCY.fullmatch(agency_id) or agency_id in {".", ".."}:
        raise LogKeyError(f"agency id {agency_id[:40]!r} cannot name a key file")
    return directory / f"{agency_id}.{kind}.key"


def _read_secret(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise LogKeyError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
        with path.open("rb") as handle:
            text = handle.read(MAX_KEY_FILE_BYTES + 1).decode("ascii", "replace").strip()
    except OSError as exc:
        raise LogKeyError(f"cannot read {path}: {type(exc).__name__}") from None
    if len(text) > MAX_KEY_FILE_BYTES or not _HEX64.fullmatch(text):
        raise LogKeyError(f"{path} does not hold a 32-byte hex key")
    return bytes.fromhex(text)


def _write_secret(path: Path, secret: bytes) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # O_EXCL: two processes racing to create an agency's key cannot overwrite each other's.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def _load_or_create(path: Path, make: bytes) -> bytes:
    if not path.exists():
        try:
            _write_secret(path, make)
        except FileExistsError:
            pass  # another process made it first: use theirs
        except OSError as exc:
            raise LogKeyError(f"cannot create {path}: {type(exc).__name__}") from None
    return _read_secret(path)


def log_key(directory: Path, agency_id: str) -> Ed25519PrivateKey:
    """Agency `agency_id`'s log-signing key, created on first use."""
    fresh = Ed25519PrivateKey.generate().private_bytes_raw()
    return Ed25519PrivateKey.from_private_bytes(
        _load_or_create(_file(directory, "log", agency_id), fresh))


def existing_log_key(directory: Path, agency_id: str) -> Ed25519PrivateKey:
    """Agency `agency_id`'s log-signing key, which must exist already (never created here)."""
    path = _file(directory, "log", agency_id)
    if not path.exists():
        raise LogKeyError(f"{path} does not exist")
    return Ed25519PrivateKey.from_private_bytes(_read_secret(path))


def log_key_id(key: Ed25519PrivateKey) -> str:
    """The log id: the key id of the log key's public half."""
    return key_id(key.public_key())


def answers_key(directory: Path, agency_id: str) -> Ed25519PrivateKey:
    """Agency `agency_id`'s answers key, created on first use: it signs the decisions and acks
    sent to the agency's readers (`ledger.core.answers`), which pin its public half. A key of
    its own, not the log key: the log key signs checkpoints only, and every ingest worker
    holds this one."""
    fresh = Ed25519PrivateKey.generate().private_bytes_raw()
    return Ed25519PrivateKey.from_private_bytes(
        _load_or_create(_file(directory, "answers", agency_id), fresh))


def anchoring_secret(directory: Path, agency_id: str) -> bytes:
    """Agency `agency_id`'s Ethereum account secret (32 bytes), created on first use."""
    return _load_or_create(_file(directory, "anchorer", agency_id), os.urandom(32))
