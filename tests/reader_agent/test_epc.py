"""EPC <-> GS1 URI: TDS examples, invalid encodings kept raw, the encoder's refusals, and a
property check against the independent `epcpy` library."""

from __future__ import annotations

import json
from typing import Any

import pytest
from epcpy import hex_to_tag_encodable
from hypothesis import given, settings
from hypothesis import strategies as st
from reader_agent.epc import (
    MAX_EPC_BYTES,
    SCHEMES,
    EpcError,
    decode_epc,
    encode_pure_uri,
    epc_to_uri,
    raw_uri,
)

from tests.paths import VECTORS_DIR

VECTORS: dict[str, Any] = json.loads(
    (VECTORS_DIR / "reader_epc.json").read_text())


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["uri"])
def test_tds_examples_decode_and_encode(vector: dict[str, Any]) -> None:
    epc = bytes.fromhex(vector["hex"])
    identity = decode_epc(epc)
    assert (identity.uri, identity.scheme, identity.filter, identity.gs1) == (
        vector["uri"], vector["scheme"], vector["filter"], True)
    assert encode_pure_uri(vector["uri"], vector["filter"]) == epc
    assert hex_to_tag_encodable(vector["hex"]).epc_uri == vector["uri"]


@pytest.mark.parametrize("vector", VECTORS["raw"], ids=lambda v: v["name"])
def test_non_gs1_and_invalid_encodings_stay_raw(vector: dict[str, Any]) -> None:
    epc = bytes.fromhex(vector["hex"])
    identity = decode_epc(epc)
    assert not identity.gs1 and identity.scheme == "raw"
    assert identity.uri == f"urn:epc:raw:{len(epc) * 8}.x{vector['hex']}"
    assert encode_pure_uri(identity.uri) == epc  # raw URIs round-trip


def test_epc_to_uri_and_bounds() -> None:
    assert epc_to_uri(bytes.fromhex("3074257BF7194E4000001A85")).startswith("urn:epc:id:sgtin")
    assert raw_uri(b"") == "urn:epc:raw:0.x"
    with pytest.raises(EpcError):
        decode_epc(bytes(MAX_EPC_BYTES + 1))


@pytest.mark.parametrize("uri", [
    "urn:epc:id:sgtin:0614141.812345",              # missing serial
    "urn:epc:id:giai:0614141.5678.1",               # GIAI has no serial
    "urn:epc:id:sgtin:06141.8123456.6789",          # 5-digit company prefix
    "urn:epc:id:sgtin:0614141.81234.6789",          # reference digits wrong for prefix
    "urn:epc:id:sgtin:0614141.812345.06789",        # serial with a leading zero
    "urn:epc:id:sgtin:0614141.812345.274877906944",  # serial = 2^38
    "urn:epc:id:giai:0614141.05678",                # asset reference with a leading zero
    "urn:epc:id:giai:0614141.1234567890123456789",  # 19 digits > 18 for a 7-digit prefix
    "urn:epc:id:giai:0614141.999999999999999999",   # 18 digits but above 2^58
    "urn:epc:id:sgln:0614141.12345.0",              # scheme without a 96-bit decoder here
    "urn:epc:raw:96.xZZ",
    "urn:epc:raw:64.x3074257BF7194E4000001A85",     # length does not match
    "urn:epc:id:sgtin:" + "1" * 200,                # oversized
    "",
])
def test_encoder_refuses_invalid_uris(uri: str) -> None:
    with pytest.raises(EpcError):
        encode_pure_uri(uri)


def test_encoder_refuses_bad_filter() -> None:
    with pytest.raises(EpcError):
        encode_pure_uri("urn:epc:id:giai:0614141.5678", 8)


@st.composite
def pure_uris(draw: st.DrawFn) -> tuple[str, int]:
    scheme = SCHEMES[draw(st.sampled_from(sorted(SCHEMES)))]
    partition = draw(st.integers(0, 6))
    _, prefix_digits, ref_bits, ref_digits = scheme.partitions[partition]
    prefix = str(draw(st.integers(0, 10**prefix_digits - 1))).zfill(prefix_digits)
    if scheme.name == "giai":
        limit = min(10**ref_digits, 1 << ref_bits)
        reference = str(draw(st.integers(0, limit - 1)))
    else:
        reference = str(draw(st.integers(0, max(0, 10**ref_digits - 1)))).zfill(ref_digits)
        reference = reference if ref_digits else ""
    fields = [prefix, reference]
    if scheme.serial_bits:
        fields.append(str(draw(st.integers(0, (1 << 38) - 1))))
    return f"urn:epc:id:{scheme.name}:{'.'.join(fields)}", draw(st.integers(0, 7))


@settings(max_examples=150, deadline=None)
@given(pure_uris())
def test_round_trip_agrees_with_epcpy(case: tuple[str, int]) -> None:
    uri, filter_value = case
    epc = encode_pure_uri(uri, filter_value)
    assert len(epc) == 12
    identity = decode_epc(epc)
    assert (identity.uri, identity.filter) == (uri, filter_value)
    assert hex_to_tag_encodable(epc.hex().upper()).epc_uri == uri
