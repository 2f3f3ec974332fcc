"""ThingMagic Mercury codec: spec vectors, CRC against the reference, tag-record parsing by
metadata flags, and the edge cases seen in real traffic."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reader_agent.protocol import EncodeError, FrameStream, MalformedFrame, ReaderReply
from reader_agent.protocol import thingmagic as tm
from reader_agent.protocol.framing import gen2_crc16
from reader_agent.reads import TagRead

from tests.reader_agent.codec_oracle import gen2_crc_reference, load_vectors, tm_crc_reference

VECTORS = load_vectors("thingmagic")


@pytest.mark.parametrize("vector", VECTORS["responses"], ids=lambda v: v["name"])
def test_response_vectors_decode_and_parse(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    result = tm.decode(frame)
    assert result.frame == frame and result.consumed == len(frame)
    message = tm.parse(frame, 12.5)
    if vector["kind"] == "tag":
        assert isinstance(message, TagRead)
        assert message.epc_hex == vector["epc"]
        assert (message.rssi_dbm, message.antenna) == (vector["rssi_dbm"], vector["antenna"])
        assert (message.frequency_khz, message.pc) == (vector["frequency_khz"], vector["pc"])
        assert message.monotonic == 12.5
    else:
        assert isinstance(message, ReaderReply)
        assert (message.kind, message.command, message.code) == (
            vector["kind"], vector["command"], vector["code"])


@pytest.mark.parametrize("vector", VECTORS["commands"], ids=lambda v: v["name"])
def test_command_vectors_decode_and_encode(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert tm.decode_command(frame).frame == frame
    if "encoder" in vector:
        args = vector.get("args", [])
        assert isinstance(args, list)
        assert getattr(tm, str(vector["encoder"]))(*args) == frame


def test_worked_example_is_reproduced_by_the_encoder() -> None:
    frame = bytes.fromhex(VECTORS["responses"][0]["hex"])
    made = tm.encode_tag_record(bytes.fromhex("000000000000000000001545"), rssi_dbm=-60,
                                antenna=1, frequency_khz=923_200, timestamp_ms=295)
    assert made == frame


def test_capture_replay() -> None:
    text = VECTORS["capture"]["text"]
    stream = FrameStream(tm.decode)
    frames = stream.feed(bytes.fromhex("".join(text.split())))
    frames += stream.flush_stale()
    assert len(frames) == VECTORS["capture"]["frames"]
    assert stream.counters.garbage_bytes > 0


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=300))
def test_fast_crc_equals_reference(message: bytes) -> None:
    assert tm.tm_crc(message) == tm_crc_reference(message)


def test_gen2_crc_equals_reference_and_spec_value() -> None:
    assert gen2_crc16(bytes.fromhex("3000000000000000000000001545")) == 0xE94A
    for _ in range(200):
        data = os.urandom(14)
        assert gen2_crc16(data) == gen2_crc_reference(data)


@pytest.mark.parametrize("flags", [0x0000, 0x0002, 0x0006, 0x000E, 0x01FF, 0x1FFF])
def test_tag_records_parse_by_flags(flags: int) -> None:
    epc = bytes.fromhex("3074257BF7194E4000001A85")
    read = tm.parse(tm.encode_tag_record(epc, rssi_dbm=-42, antenna=3, metadata=flags), 1.0)
    assert isinstance(read, TagRead)
    assert read.epc == epc
    assert read.rssi_dbm == (-42 if flags & 0x0002 else None)
    assert read.antenna == (3 if flags & 0x0004 else 1)
    assert read.frequency_khz == (915_250 if flags & 0x0008 else None)


def test_embedded_data_is_skipped_by_its_bit_length() -> None:
    epc = bytes.fromhex("E2801160600002054CC2096F")
    frame = tm.encode_tag_record(epc, metadata=0x0080)
    data = bytearray(frame[5:-2])
    # Replace the empty embedded data (00 00) with 12 bits (2 bytes) of data.
    at = data.index(b"\x00\x00", 6)
    data[at : at + 2] = b"\x00\x0c\xab\xcd"
    read = tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, bytes(data)))
    assert isinstance(read, TagRead) and read.epc == epc


def test_zero_length_epc_with_xi_bit_set() -> None:
    tag = b"\x02\x18" + gen2_crc16(b"\x02\x18").to_bytes(2, "big")
    data = b"\x10\x00\x1b\x00\x00\x01" + (len(tag) * 8).to_bytes(2, "big") + tag
    read = tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, data))
    assert isinstance(read, TagRead) and read.epc == b"" and read.pc == 0x0218


def test_xpc_words_are_not_part_of_the_epc() -> None:
    epc = bytes.fromhex("11223344")
    tag = b"\x12\x00" + b"\x80\x00" + b"\x00\x01" + epc  # XI set, XPC_W1 with XEB, XPC_W2
    tag += gen2_crc16(tag).to_bytes(2, "big")
    data = b"\x10\x00\x1b\x00\x00\x01" + (len(tag) * 8).to_bytes(2, "big") + tag
    read = tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, data))
    assert isinstance(read, TagRead) and read.epc == epc


@pytest.mark.parametrize("bits", [0x0081, 0x0010, 0x0200, 0xFFF8])
def test_epc_length_that_contradicts_the_frame_is_malformed(bits: int) -> None:
    tag = bytes(16)
    data = b"\x10\x00\x1b\x00\x00\x01" + bits.to_bytes(2, "big") + tag
    with pytest.raises(MalformedFrame):
        tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, data))


def test_unknown_metadata_flag_is_malformed() -> None:
    data = b"\x10\x00\x1b\x20\x00\x01" + b"\x00" * 10
    with pytest.raises(MalformedFrame):
        tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, data))


def test_stream_status_and_summary_frames() -> None:
    throttle = tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0x0504))
    assert isinstance(throttle, ReaderReply) and throttle.kind == "keepalive" and not throttle.ok
    summary = tm.parse(tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, bytes(7)))
    assert isinstance(summary, ReaderReply) and summary.kind == "summary"
    refused = tm.parse(tm.encode_response(tm.OP_SET_REGION, 0x010B))
    assert isinstance(refused, ReaderReply) and refused.kind == "error" and refused.code == 0x010B


def test_encoders_refuse_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        tm.cmd_set_region("ATLANTIS")
    with pytest.raises(EncodeError):
        tm.cmd_set_read_power(tm.MAX_POWER_CDBM + 1)
    with pytest.raises(EncodeError):
        tm.cmd_set_antennas([])
    with pytest.raises(EncodeError):
        tm.cmd_set_antennas([0])
    with pytest.raises(EncodeError):
        tm.encode_command(0x22, bytes(tm.MAX_COMMAND_DATA + 1))
    with pytest.raises(EncodeError):
        tm.encode_tag_record(bytes(64))
    assert tm.cmd_set_antennas([1, 2]) == tm.encode_command(0x91, b"\x02\x01\x01\x02\x02")
