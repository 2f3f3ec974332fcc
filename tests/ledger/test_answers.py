"""The API's signature on answers (`ledger.core.answers`): what verifies and what does not."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.answers import (
    MAX_HEADER_BYTES,
    AnswerSignatureError,
    answer_body,
    open_answer,
    sign_answer,
)

TOPIC = "kitledger/v1/north/store/desk-1/decisions"
BODY = b'{"action":"check_out","asset":"R-1","decision":"accept","reason":null,"seq":4}'
KEY = Ed25519PrivateKey.generate()


def test_a_signed_answer_opens_to_its_body_and_its_header_fits_the_limit() -> None:
    payload = sign_answer(KEY, TOPIC, BODY)
    assert open_answer(KEY.public_key(), TOPIC, payload) == BODY
    assert answer_body(payload) == BODY and answer_body(BODY) == BODY
    assert len(payload) - len(BODY) - 1 <= MAX_HEADER_BYTES


def _flip_last_body_byte(payload: bytes) -> bytes:
    return payload[:-2] + bytes([payload[-2] ^ 1]) + payload[-1:]


@pytest.mark.parametrize(("attack", "message"), [
    (lambda p: BODY, "not signed"),
    (lambda p: b"\n" + BODY, "not signed"),
    (lambda p: p.replace(b'"sig":"', b'"sig": "', 1), "not signed"),
    (lambda p: p[:MAX_HEADER_BYTES + 20].replace(b"\n", b" ") + b"\n" + BODY, "not signed"),
    (lambda p: sign_answer(Ed25519PrivateKey.generate(), TOPIC, BODY), "not the pinned"),
    (_flip_last_body_byte, "does not verify"),
    (lambda p: sign_answer(KEY, TOPIC.replace("desk-1", "desk-2"), BODY), "does not verify"),
    (lambda p: sign_answer(KEY, TOPIC.replace("decisions", "acks"), BODY), "does not verify"),
    (lambda p: p + b" ", "does not verify"),
])
def test_anything_but_the_pinned_key_over_this_topic_and_body_is_refused(
        attack: object, message: str) -> None:
    payload = attack(sign_answer(KEY, TOPIC, BODY))  # type: ignore[operator]
    with pytest.raises(AnswerSignatureError, match=message):
        open_answer(KEY.public_key(), TOPIC, payload)


def test_a_second_spelling_of_the_signature_is_not_one() -> None:
    """Base64url with the unused low bits set decodes to the same bytes: refused, so one
    answer has one wire form."""
    payload = sign_answer(KEY, TOPIC, BODY)
    at = payload.index(b'"}\n') - 1
    last = chr(payload[at])
    assert last in "AQgw"
    twin = "BRhx"["AQgw".index(last)]
    with pytest.raises(AnswerSignatureError, match="not signed"):
        open_answer(KEY.public_key(), TOPIC, payload[:at] + twin.encode() + payload[at + 1:])
