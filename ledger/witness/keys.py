"""Keys a witness holds or trusts: its own cosigning key file, and the logs' verifier keys.

The private key file is one line, `PRIVATE+KEY+<name>+<hex key id>+base64(0x04 || seed)`, the
layout Go's note package uses for signer keys, with the cosignature type byte: the name and key
id travel with the key, so the vkey printed by `keygen` can be re-derived from the file alone.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from ledger.core import note
from ledger.core.envelope import raw_public_key

PRIVATE_PREFIX: Final = "PRIVATE+KEY+"
MAX_KEY_FILE_BYTES: Final = 1024


class KeyFileError(Exception):
    """A key file or verifier key argument that cannot be used."""


@dataclass(frozen=True, slots=True)
class CosigningKey:
    """The witness's cosigning key and its C2SP name."""

    name: str
    private_key: Ed25519PrivateKey

    @property
    def verifier(self) -> note.NoteVerifier:
        return note.NoteVerifier(self.name, note.COSIGNATURE_V1,
                                 raw_public_key(self.private_key.public_key()))


def _seed(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def write_key_file(path: Path, name: str) -> CosigningKey:
    """Create `path` (mode 0600, never overwriting) holding a fresh key named `name`."""
    key = CosigningKey(note.check_name(name), Ed25519PrivateKey.generate())
    line = (f"{PRIVATE_PREFIX}{name}+{key.verifier.key_id.hex()}+"
            f"{note.b64encode(bytes([note.COSIGNATURE_V1]) + _seed(key.private_key))}\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(line)
    return key


def read_key_file(path: Path) -> CosigningKey:
    """The key in `path`; refused if others can read it, or if it is malformed."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(f"{path}: readable by others (mode {info.st_mode & 0o777:o}); "
                               "chmod 600 it")
        with path.open("rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(f"{path}: {exc.strerror}") from None
    try:
        text = data.decode("ascii").strip()
        if len(data) > MAX_KEY_FILE_BYTES or not text.startswith(PRIVATE_PREFIX):
            raise ValueError
        name, hex_id, encoded = text[len(PRIVATE_PREFIX):].split("+", 2)
        raw = note.b64decode(encoded, "key")
        if len(raw) != 33 or raw[0] != note.COSIGNATURE_V1:
            raise ValueError
        key = CosigningKey(note.check_name(name), Ed25519PrivateKey.from_private_bytes(raw[1:]))
    except (ValueError, note.NoteError):
        raise KeyFileError(f"{path}: not a witness key file ({PRIVATE_PREFIX}name+id+key)") \
            from None
    if key.verifier.key_id.hex() != hex_id:
        raise KeyFileError(f"{path}: key id {hex_id} does not match the key")
    return key


def parse_log_argument(text: str) -> tuple[str, note.NoteVerifier]:
    """`ORIGIN=VKEY` of `--log`: a log's origin and its Ed25519 (type 0x01) verifier key."""
    origin, sep, vkey = text.partition("=")
    if not sep:
        raise KeyFileError(f"--log {text[:60]!r}: expected ORIGIN=VKEY")
    try:
        verifier = note.parse_vkey(vkey)
        note.check_name(origin)
    except note.NoteError as exc:
        raise KeyFileError(f"--log {origin[:60]}: {exc}") from None
    if verifier.sig_type != note.ED25519:
        raise KeyFileError(f"--log {origin[:60]}: a log key has signature type 0x01")
    return origin, verifier
