"""The signer's fast record building is the record format's own, by property: every record it
builds equals `Observation(...).to_record()`, what it refuses the format refuses, its times are
`format_time(datetime.fromtimestamp(...))` exactly, and its envelopes verify."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from reader_agent.epc import EpcError, epc_to_uri
from reader_agent.pipeline import PipelineObservation
from reader_agent.signer import InvalidObservation, ObservationSigner

from ledger.core.envelope import Envelope, verify_envelope
from ledger.core.errors import LedgerError
from ledger.core.records import Observation, format_time

KEY = Ed25519PrivateKey.generate()
IDS = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x1F, max_codepoint=0x80),
                                   min_size=0, max_size=130))
OBSERVATIONS = st.builds(
    PipelineObservation,
    kind=st.sampled_from(["arrive", "depart", "badge", "read", "leave"]),
    epc=st.binary(min_size=0, max_size=64),
    antenna=st.integers(-2, 260),
    rssi=st.one_of(st.none(), st.integers(-140, 140)),
    zone=IDS,
    monotonic=st.floats(0, 1e6),
    session=IDS,
    direction=st.sampled_from([None, "in", "out", "up"]),
)

VALID_IDS = st.one_of(st.none(), st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E),
                                         min_size=1, max_size=128))
VALID = st.builds(
    PipelineObservation, kind=st.sampled_from(["arrive", "depart", "badge", "read"]),
    epc=st.integers(1, 31).flatmap(lambda words: st.binary(min_size=2 * words,
                                                           max_size=2 * words)),
    antenna=st.integers(0, 255), rssi=st.one_of(st.none(), st.integers(-128, 127)),
    zone=VALID_IDS,
    monotonic=st.floats(0, 1e6), session=VALID_IDS,
    direction=st.sampled_from([None, "in", "out"]),
)


def reference(item: PipelineObservation, seq: int, wall: float) -> dict[str, Any]:
    """What the agent signed before the fast path: the record format's own round trip."""
    return Observation(
        device="desk-1", seq=seq, time=format_time(datetime.fromtimestamp(wall, UTC)),
        kind=item.kind, epc=item.epc.hex().upper(), antenna=item.antenna, rssi=item.rssi,
        zone=item.zone, session=item.session, uri=epc_to_uri(item.epc) if item.epc else None,
        direction=item.direction,
    ).to_record()


@settings(max_examples=300, deadline=None)
@given(item=OBSERVATIONS, seq=st.integers(0, 2**40), wall=st.floats(1e9, 4e9))
def test_fast_record_equals_the_record_formats_own(item: PipelineObservation, seq: int,
                                                   wall: float) -> None:
    signer = ObservationSigner("desk-1", KEY)
    try:
        expected: dict[str, Any] | None = reference(item, seq, wall)
    except (LedgerError, ValueError):
        expected = None
    try:
        built: dict[str, Any] | None = signer.record(item, seq, wall)
    except (InvalidObservation, EpcError):
        built = None
    assert built == expected


@settings(max_examples=200, deadline=None)
@given(item=VALID, seq=st.integers(0, 2**53 - 1), wall=st.floats(1e9, 4e9))
def test_every_valid_observation_is_built_exactly_as_the_format_builds_it(
        item: PipelineObservation, seq: int, wall: float) -> None:
    assert ObservationSigner("desk-1", KEY).record(item, seq, wall) == reference(item, seq, wall)


@settings(max_examples=300, deadline=None)
@given(wall=st.one_of(st.floats(0, 4e9), st.integers(0, 4 * 10**9).map(lambda s: s + 0.9999995)))
def test_time_text_matches_datetime_rounding(wall: float) -> None:
    signer = ObservationSigner("desk-1", KEY)
    assert signer.utc_text(wall) == format_time(datetime.fromtimestamp(wall, UTC))


def test_signed_rows_verify_and_stay_contiguous_past_invalid_ones() -> None:
    good = PipelineObservation("arrive", bytes.fromhex("3034") + bytes(10), 1, -40, "desk", 5.0)
    bad = [PipelineObservation("arrive", good.epc, 1, -200, "desk", 5.0),
           PipelineObservation("arrive", b"\x30", 1, -40, "desk", 5.0),
           PipelineObservation("arrive", good.epc, 300, -40, "desk", 5.0),
           PipelineObservation("arrive", good.epc, 1, -40, "desk zone", 5.0)]
    signer = ObservationSigner("desk-1", KEY, wall_offset=lambda: 1.7e9)
    rows = signer.sign([good, *bad, good], 41)
    assert [seq for seq, _ in rows] == [41, 42]
    assert signer.invalid == len(bad)
    for seq, data in rows:
        payload = verify_envelope(Envelope.from_bytes(data), KEY.public_key())
        assert payload["seq"] == seq and payload["time"] == "2023-11-14T22:13:25.000Z"
        assert payload["uri"] == epc_to_uri(good.epc)


@pytest.mark.parametrize("device", ["", "a" * 129, "desk 1", "desk\n1"])
def test_a_device_id_the_format_refuses_is_refused_at_start(device: str) -> None:
    with pytest.raises(LedgerError):
        ObservationSigner(device, KEY)
