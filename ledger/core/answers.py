"""The API's signature on what it tells a reader: decisions and end-to-end acks.

A reader acts on its decisions and acks topics: an ack lets it delete outbox rows, a decision
lights the desk green. The broker's ACL keeps other clients off those topics; the signature
makes an answer the API's whatever the broker lets through (a misconfigured ACL, a broker
account that leaked), and the reader checks it against a public key it pins.

Wire form: one header line, then the body exactly as it was before signing existed::

    {"kid":"<key id, 32 hex>","sig":"<Ed25519, 86 base64url>"}\\n<body>

The signature covers `SIGNING_PREFIX`, the topic, a newline and the body's bytes as sent: no
canonical form to agree on, and bound to the one reader's topic, so an answer to one reader
cannot be replayed to another, nor a decision passed off as an ack. The key is the reader's
agency's answers key (`api.agency_keys.answers_key`), so a reader pins one key per agency.
"""

from __future__ import annotations

import json
import re
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger.core import hashing
from ledger.core.envelope import _b64decode, _b64encode, key_id
from ledger.core.errors import LedgerError, SchemaError

ANSWER_SIGNATURE: Final = "answer-signature"
SIGNING_PREFIX: Final = hashing.DOMAIN_PREFIX + ANSWER_SIGNATURE.encode("ascii") + b"\x00"
"""What an answer's signature covers starts with this, then `topic \\n body`."""

MAX_HEADER_BYTES: Final = 160
"""The header line is 137 bytes; anything longer before the first newline is not one."""

_HEADER = re.compile(rb'\{"kid":"([0-9a-f]{32})","sig":"([A-Za-z0-9_-]{86})"\}')


class AnswerSignatureError(LedgerError):
    """An answer that is unsigned, signed by another key, or does not match its signature."""


def _message(topic: str, body: bytes) -> bytes:
    return SIGNING_PREFIX + topic.encode("utf-8") + b"\n" + body


def sign_answer(key: Ed25519PrivateKey, topic: str, body: bytes) -> bytes:
    """`body` for `topic` with its signature header: the payload to publish."""
    header = json.dumps({"kid": key_id(key.public_key()),
                         "sig": _b64encode(key.sign(_message(topic, body)))},
                        separators=(",", ":"))
    return header.encode("ascii") + b"\n" + body


def split_answer(payload: bytes) -> tuple[str, bytes, bytes] | None:
    """(kid, signature, body) of a signed answer; None if it has no header line."""
    header, newline, _ = payload[: MAX_HEADER_BYTES + 1].partition(b"\n")
    found = _HEADER.fullmatch(header) if newline else None
    if found is None:
        return None
    try:
        signature = _b64decode(found[2].decode("ascii"))
    except SchemaError:
        return None
    return found[1].decode("ascii"), signature, payload[len(header) + 1:]


def answer_body(payload: bytes) -> bytes:
    """The body of `payload`, signed or not, unchecked: for a reader that pins no key, and
    for parsers that come after the check."""
    parts = split_answer(payload)
    return payload if parts is None else parts[2]


def open_answer(public_key: Ed25519PublicKey, topic: str, payload: bytes) -> bytes:
    """The body of `payload` if `public_key` signed it for `topic`; `AnswerSignatureError`
    saying which check failed otherwise."""
    parts = split_answer(payload)
    if parts is None:
        raise AnswerSignatureError("answer is not signed")
    kid, signature, body = parts
    if kid != key_id(public_key):
        raise AnswerSignatureError(f"answer signed by key {kid}, not the pinned API key")
    try:
        public_key.verify(signature, _message(topic, body))
    except InvalidSignature:
        raise AnswerSignatureError("answer signature does not verify") from None
    return body
