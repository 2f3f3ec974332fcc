"""The signed checkpoint record (ledger.core.checkpoint): round trip, on-chain names, and every
malformed, oversized, forged and replayed variant refused."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.checkpoint import (
    MAX_AGENCY_ID_CHARS,
    MAX_TREE_SIZE,
    Checkpoint,
    chain_agency_id,
    chain_log_id,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.core.envelope import Envelope, key_id, sign_envelope
from ledger.core.errors import EncodingError, KeyIdMismatch, SchemaError, SignatureError

TIME = "2026-11-28T18:00:00.000Z"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def checkpoint(key: Ed25519PrivateKey, size: int = 42) -> Checkpoint:
    return Checkpoint(key_id(key.public_key()), size, bytes(range(32)), TIME)


def test_round_trip_through_wire_bytes(key: Ed25519PrivateKey) -> None:
    cp = checkpoint(key)
    wire = sign_checkpoint(cp, key).to_bytes()
    assert verify_checkpoint(Envelope.from_bytes(wire), key.public_key()) == cp
    assert cp.to_record() == {"log": cp.log_id, "root": bytes(range(32)).hex(), "size": 42,
                              "time": TIME, "type": "checkpoint", "v": 1}


def test_chain_names_are_stable_and_distinct(key: Ed25519PrivateKey) -> None:
    log = key_id(key.public_key())
    assert chain_log_id(log) == checkpoint(key).chain_log_id and len(chain_log_id(log)) == 32
    assert chain_agency_id("met-police") != chain_agency_id("met-polic3")
    assert chain_agency_id("a" * 32) != chain_log_id("a" * 32)  # domain-separated
    for bad in ("", "has space", "é", "x" * (MAX_AGENCY_ID_CHARS + 1)):
        with pytest.raises(SchemaError):
            chain_agency_id(bad)
    with pytest.raises(SchemaError):
        chain_log_id("A" * 32)


@pytest.mark.parametrize("change", [
    {"tree_size": -1}, {"tree_size": MAX_TREE_SIZE + 1}, {"tree_size": True},
    {"root": b"\x00" * 31}, {"root": b"\x00" * 33}, {"time": "2026-11-28T18:00:00Z"},
    {"time": "2026-02-30T18:00:00.000Z"}, {"log_id": "zz" * 16}, {"log_id": "ab"},
])
def test_invalid_values_refused(key: Ed25519PrivateKey, change: dict[str, Any]) -> None:
    with pytest.raises(SchemaError):
        replace(checkpoint(key), **change)


@pytest.mark.parametrize("tamper", [
    lambda r: r.pop("time"), lambda r: r.update(extra=1), lambda r: r.update(type="anchor"),
    lambda r: r.update(v=2), lambda r: r.update(root=r["root"].upper()),
    lambda r: r.update(root=r["root"] + "00"), lambda r: r.update(size="42"),
    lambda r: r.update(size=2**60), lambda r: r.update(log=7),
])
def test_malformed_records_refused(key: Ed25519PrivateKey, tamper: Any) -> None:
    record = checkpoint(key).to_record()
    tamper(record)
    with pytest.raises(EncodingError):
        Checkpoint.from_record(record)


def test_forged_and_replayed_signatures_refused(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.generate()
    envelope = sign_checkpoint(checkpoint(key), key)
    with pytest.raises(KeyIdMismatch):
        verify_checkpoint(envelope, other.public_key())
    # The size changed after signing: the signature no longer covers the payload.
    bumped = replace(envelope, payload={**envelope.payload, "size": 43})
    with pytest.raises(SignatureError):
        verify_checkpoint(bumped, key.public_key())
    # Another log's key signing a checkpoint that names this log (a replay across logs).
    with pytest.raises(SchemaError):
        sign_checkpoint(checkpoint(key), other)
    foreign = sign_envelope(checkpoint(key).to_record(), other)
    with pytest.raises(SchemaError, match="names log"):
        verify_checkpoint(foreign, other.public_key())


def test_trailing_garbage_and_oversized_wire_refused(key: Ed25519PrivateKey) -> None:
    wire = sign_checkpoint(checkpoint(key), key).to_bytes()
    with pytest.raises(EncodingError):
        Envelope.from_bytes(wire + b" ")
    with pytest.raises(EncodingError):
        Envelope.from_bytes(wire[:-1] + b',"pad":"' + b"x" * 70_000 + b'"}')
