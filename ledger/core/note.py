"""C2SP signed notes, checkpoint notes and Ed25519 cosignatures (pure; no I/O, no clock).

Three C2SP formats, byte for byte:

- `signed-note`: a UTF-8 text ending in a newline, a blank line, then signature lines
  `— <key name> base64(key id || signature)`. A key is named by (name, key id), where the key
  id is `SHA-256(name || 0x0A || type || public key)[:4]`; verifier keys are written
  `name+hex(key id)+base64(type || public key)`. Type 0x01 is a plain Ed25519 signature over
  the note text: the log signs its checkpoints with it.
- `tlog-checkpoint`: the note text `origin\\nsize\\nbase64(root)\\n` and optional extension lines.
  A kitledger log's origin is `kitledger/<log key id>`.
- `tlog-cosignature` (Ed25519, type 0x04): a witness's timestamped signature over
  `cosignature/v1\\ntime <t>\\n` followed by the checkpoint's note text; the signature bytes are
  key id || big-endian u64 timestamp || Ed25519 signature.

Everything read here is bounded (MAX_NOTE_BYTES, MAX_SIGNATURES) and refused with a typed
error saying why. Which keys are trusted is the caller's business: this module only says
whether a given key signed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.core.envelope import raw_public_key
from ledger.core.errors import LedgerError

ED25519: Final = 0x01
"""Signature type of a plain Ed25519 note signature (the log's key on its checkpoints)."""

COSIGNATURE_V1: Final = 0x04
"""Signature type of a timestamped Ed25519 checkpoint cosignature (a witness's key)."""

MAX_NOTE_BYTES: Final = 16 * 1024
"""A checkpoint note is about 100 bytes plus about 110 per signature line: 16 KiB holds far more
than the 16 signatures the spec requires a verifier to accept, and nothing hostile."""

MAX_SIGNATURES: Final = 64
MAX_NAME_CHARS: Final = 256
MAX_TIMESTAMP: Final = 2**63 - 1
MAX_TREE_SIZE: Final = 2**64 - 1
HASH_SIZE: Final = 32

EM_DASH: Final = "\u2014"
ORIGIN_PREFIX: Final = "kitledger/"
_COSIGNATURE_HEADER: Final = "cosignature/v1\n"
_SIGNATURE_BYTES: Final = 64
_NAME = re.compile(r"[^\s+]+")
_HEX8 = re.compile(r"[0-9a-f]{8}")
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteError(LedgerError):
    """A signed note, checkpoint or cosignature that cannot be used."""


class MalformedNote(NoteError):
    """Not a well-formed note, signature line, verifier key or checkpoint body."""


class UnverifiedNote(NoteError):
    """No signature by a trusted key is on the note."""


class BadNoteSignature(NoteError):
    """A signature's name and key id match a trusted key, but the signature does not verify."""


def b64decode(text: str, what: str) -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded): anything else is MalformedNote."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MalformedNote(f"{what}: not standard base64") from None
    if b64encode(data) != text:  # stray padding bits: one value, one spelling
        raise MalformedNote(f"{what}: not canonical base64")
    return data


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def check_name(name: str) -> str:
    """A key name or origin: non-empty, no Unicode space, no '+', bounded, no control chars."""
    if not 0 < len(name) <= MAX_NAME_CHARS or not _NAME.fullmatch(name) or _CONTROL.search(name):
        raise MalformedNote(f"key name {name[:40]!r} is empty, too long or has a space or '+'")
    return name


def key_id(name: str, sig_type: int, public_key: bytes) -> bytes:
    """`SHA-256(name || 0x0A || type || public key)[:4]`: the 4-byte id of a note key."""
    data = name.encode("utf-8") + b"\n" + bytes([sig_type]) + public_key
    return hashlib.sha256(data).digest()[:4]


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """A trusted Ed25519 key of a given signature type (0x01 note key or 0x04 cosigner)."""

    name: str
    sig_type: int
    public_key: bytes

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.sig_type not in (ED25519, COSIGNATURE_V1):
            raise MalformedNote(f"signature type {self.sig_type:#04x} is not supported here")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise MalformedNote("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.sig_type, self.public_key)

    def ed25519(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.public_key)

    def vkey(self) -> str:
        """`name+hex(key id)+base64(type || public key)`."""
        return (f"{self.name}+{self.key_id.hex()}+"
                f"{b64encode(bytes([self.sig_type]) + self.public_key)}")

    def matches(self, signature: NoteSignature) -> bool:
        return signature.name == self.name and signature.key_id == self.key_id


def parse_vkey(text: str) -> NoteVerifier:
    """A verifier key `name+hex(key id)+base64(type || key)`; the id must match the key."""
    if len(text) > MAX_NAME_CHARS + 64:
        raise MalformedNote("verifier key too long")
    parts = text.split("+", 2)  # the base64 key may itself contain '+'
    if len(parts) != 3:
        raise MalformedNote("a verifier key is name+keyid+key, three parts split by '+'")
    name, hex_id, encoded = parts
    if not _HEX8.fullmatch(hex_id):
        raise MalformedNote("verifier key id must be 8 lowercase hex characters")
    raw = b64decode(encoded, "verifier key")
    if len(raw) != 33:
        raise MalformedNote(f"verifier key material is {len(raw)} bytes, expected 1 + 32")
    verifier = NoteVerifier(check_name(name), raw[0], raw[1:])
    if verifier.key_id.hex() != hex_id:
        raise MalformedNote(f"verifier key id {hex_id} does not match its key "
                            f"({verifier.key_id.hex()})")
    return verifier


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the key id, and the signature bytes after the id."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """`— name base64(key id || signature)` followed by a newline."""
        return f"{EM_DASH} {self.name} {b64encode(self.key_id + self.signature)}\n"


def parse_signature_line(line: str) -> NoteSignature:
    """One signature line without its newline."""
    if not line.startswith(EM_DASH + " "):
        raise MalformedNote("a signature line starts with an em dash and a space")
    parts = line[2:].split(" ")
    if len(parts) != 2:
        raise MalformedNote("a signature line is '— name signature'")
    name, encoded = check_name(parts[0]), parts[1]
    raw = b64decode(encoded, f"signature by {name[:40]}")
    if len(raw) < 5:
        raise MalformedNote(f"signature by {name[:40]} is shorter than a key id")
    return NoteSignature(name, raw[:4], raw[4:])


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: its text (ending in a newline) and its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def to_bytes(self) -> bytes:
        return (self.text + "\n" + "".join(s.line() for s in self.signatures)).encode("utf-8")


def check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise MalformedNote("note text must end with a newline")
    if _CONTROL.search(text):
        raise MalformedNote("note contains a control character other than newline")


def parse_note(data: bytes) -> Note:
    """A signed note's bytes; the text is split from the signatures at the last blank line."""
    if len(data) > MAX_NOTE_BYTES:
        raise MalformedNote(f"note of {len(data)} bytes exceeds {MAX_NOTE_BYTES}")
    try:
        whole = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedNote("note is not valid UTF-8") from None
    check_text(whole)
    split = whole.rfind("\n\n")
    if split < 0:
        raise MalformedNote("note has no blank line before its signatures")
    text, lines = whole[:split + 1], whole[split + 2:].split("\n")[:-1]
    if not lines:
        raise MalformedNote("note has no signature lines")
    if len(lines) > MAX_SIGNATURES:
        raise MalformedNote(f"note has {len(lines)} signatures, at most {MAX_SIGNATURES} read")
    return Note(text, tuple(parse_signature_line(line) for line in lines))


def sign_note(text: str, name: str, private_key: Ed25519PrivateKey) -> NoteSignature:
    """A type 0x01 Ed25519 signature of `text` under key name `name`."""
    check_text(text)
    kid = key_id(check_name(name), ED25519, raw_public_key(private_key.public_key()))
    return NoteSignature(name, kid, private_key.sign(text.encode("utf-8")))


def verify_note(note: Note, verifiers: Iterable[NoteVerifier]) -> tuple[NoteVerifier, ...]:
    """The trusted type 0x01 keys that signed `note`. Signatures by unknown keys are ignored;
    one by a known key that fails makes the whole note bad (BadNoteSignature); no verified
    signature at all is UnverifiedNote."""
    known = [v for v in verifiers if v.sig_type == ED25519]
    signed: list[NoteVerifier] = []
    message = note.text.encode("utf-8")
    for signature in note.signatures:
        for verifier in known:
            if not verifier.matches(signature):
                continue
            try:
                verifier.ed25519().verify(signature.signature, message)
            except InvalidSignature:
                raise BadNoteSignature(f"signature by {verifier.name} does not verify") from None
            signed.append(verifier)
    if not signed:
        raise UnverifiedNote("no signature by a trusted key is on the note")
    return tuple(signed)


def cosignature_message(text: str, timestamp: int) -> bytes:
    """What a v1 Ed25519 cosignature signs: header line, time line, the checkpoint note text."""
    check_text(text)
    if isinstance(timestamp, bool) or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise MalformedNote(f"cosignature timestamp {timestamp} outside 0..2**63-1")
    return f"{_COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


def cosign(text: str, name: str, private_key: Ed25519PrivateKey, timestamp: int) -> NoteSignature:
    """A witness's timestamped cosignature (type 0x04) of checkpoint note text `text`."""
    kid = key_id(check_name(name), COSIGNATURE_V1, raw_public_key(private_key.public_key()))
    signature = private_key.sign(cosignature_message(text, timestamp))
    return NoteSignature(name, kid, timestamp.to_bytes(8, "big") + signature)


def verify_cosignature(text: str, signature: NoteSignature, verifier: NoteVerifier) -> int:
    """The timestamp of `signature` if `verifier` (type 0x04) cosigned `text` with it."""
    if verifier.sig_type != COSIGNATURE_V1 or not verifier.matches(signature):
        raise MalformedNote(f"cosignature by {signature.name[:40]} is not from this cosigner")
    if len(signature.signature) != 8 + _SIGNATURE_BYTES:
        raise BadNoteSignature(f"cosignature by {verifier.name} has the wrong length")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    try:
        verifier.ed25519().verify(signature.signature[8:], cosignature_message(text, timestamp))
    except (InvalidSignature, MalformedNote):
        raise BadNoteSignature(f"cosignature by {verifier.name} does not verify") from None
    return timestamp


@dataclass(frozen=True, slots=True)
class CheckpointBody:
    """The note text of a C2SP checkpoint: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or _CONTROL.search(self.origin) or "\n" in self.origin:
            raise MalformedNote("checkpoint origin must be one non-empty line")
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise MalformedNote(f"checkpoint size {self.size} outside 0..2**64-1")
        if len(self.root) != HASH_SIZE:
            raise MalformedNote(f"checkpoint root must be {HASH_SIZE} bytes")
        for line in self.extensions:
            if not line or "\n" in line or _CONTROL.search(line):
                raise MalformedNote("checkpoint extension lines must be non-empty single lines")

    def text(self) -> str:
        lines = [self.origin, str(self.size), b64encode(self.root), *self.extensions]
        return "\n".join(lines) + "\n"


def parse_checkpoint_text(text: str) -> CheckpointBody:
    """A checkpoint note's text (without signatures), strictly: no leading zeroes, 32-byte root."""
    check_text(text)
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise MalformedNote("a checkpoint has at least origin, size and root lines")
    origin, size, root, *extensions = lines
    if not _SIZE.fullmatch(size) or int(size) > MAX_TREE_SIZE:
        raise MalformedNote(f"checkpoint size {size[:24]!r} is not a decimal without leading 0")
    return CheckpointBody(origin, int(size), b64decode(root, "checkpoint root"), tuple(extensions))


def log_origin(log_id: str) -> str:
    """The checkpoint origin (and log key name) of the kitledger log whose key id is `log_id`."""
    return check_name(ORIGIN_PREFIX + log_id)

