"""`verify_message` is total: any bytes on any topic give a verdict, never an exception."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from api.ingest.checks import (
    ClockPolicy,
    InboundMessage,
    ReaderKey,
    Rejected,
    Verified,
    verify_message,
)
from api.ingest.topics import (
    MAX_EVENTS_TOPIC_CHARS,
    MAX_TOPIC_SEGMENT_CHARS,
    ReaderTopic,
    parse_events_topic,
)
from ledger.core.envelope import Envelope, key_id, raw_public_key, sign_envelope
from ledger.core.records import Observation, format_time

KEY = Ed25519PrivateKey.generate()
READER = ReaderKey("rdr-1", "north", "north-store", raw_public_key(KEY.public_key()).hex(), True)
READERS = {key_id(KEY.public_key()): READER}
TOPIC = "kitledger/v1/north/north-store/rdr-1/events"
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CLOCK = ClockPolicy(NOW, timedelta(minutes=2), timedelta(days=7))
OBSERVATION = Observation("rdr-1", 7, format_time(NOW), "read", "E2801160600002054BD1A1B1", 1)
VALID = sign_envelope(OBSERVATION.to_record(), KEY).to_bytes()


def test_the_valid_message_verifies() -> None:
    verdict = verify_message(InboundMessage(TOPIC, VALID), READERS, CLOCK)
    assert isinstance(verdict, Verified) and verdict.observation.seq == 7


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=800), st.text(max_size=80))
def test_arbitrary_bytes_are_rejected_not_raised(payload: bytes, topic: str) -> None:
    for candidate in (topic, TOPIC):
        verdict = verify_message(InboundMessage(candidate, payload), READERS, CLOCK)
        assert isinstance(verdict, Rejected)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_any_single_byte_change_is_rejected(position: int, flip: int) -> None:
    tampered = bytearray(VALID)
    tampered[position] ^= flip
    verdict = verify_message(InboundMessage(TOPIC, bytes(tampered)), READERS, CLOCK)
    assert isinstance(verdict, Rejected)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(VALID)))
def test_truncation_and_trailing_garbage_are_rejected(cut: int) -> None:
    for payload in (VALID[:cut], VALID + VALID[:cut] + b" "):
        if payload == VALID:
            continue
        verdict = verify_message(InboundMessage(TOPIC, payload), READERS, CLOCK)
        assert isinstance(verdict, Rejected)


def test_the_verdict_carries_the_observation_time_as_checked() -> None:
    verdict = verify_message(InboundMessage(TOPIC, VALID), READERS, CLOCK)
    assert isinstance(verdict, Verified) and verdict.observed_at == NOW


def test_the_longest_events_topic_parses_and_one_character_more_does_not() -> None:
    ids = ["a" * MAX_TOPIC_SEGMENT_CHARS, "b" * MAX_TOPIC_SEGMENT_CHARS,
           "c" * MAX_TOPIC_SEGMENT_CHARS]
    longest = ReaderTopic(*ids).topic("events")
    assert len(longest) == MAX_EVENTS_TOPIC_CHARS
    for _ in range(2):  # the second answer is the remembered one
        assert parse_events_topic(longest) == ReaderTopic(*ids)
    assert parse_events_topic(ReaderTopic(ids[0] + "a", *ids[1:]).topic("events")) is None
    assert parse_events_topic(longest + "x") is None


@pytest.mark.parametrize("topic", [
    "kitledger/v1/north/north-store/rdr-1/decisions", "kitledger/v1/north/+/rdr-1/events",
    "kitledger/v1/north//rdr-1/events", "kitledger/v2/north/north-store/rdr-1/events",
    "kitledger/v1/north/north-store/rdr-1/events/x", "",
])
def test_what_is_not_an_events_topic_is_refused_every_time(topic: str) -> None:
    for _ in range(2):
        assert parse_events_topic(topic) is None


@pytest.mark.parametrize("last", sorted(set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                            "0123456789-_") - set("AQgw")))
def test_a_signature_spelt_with_unused_bits_set_is_malformed(last: str) -> None:
    envelope = Envelope.from_bytes(VALID)
    sig = envelope.to_record()["sig"]
    respelt = VALID.replace(sig.encode(), (sig[:-1] + last).encode())
    verdict = verify_message(InboundMessage(TOPIC, respelt), READERS, CLOCK)
    assert isinstance(verdict, Rejected) and verdict.reason.value == "malformed"
