"""Chafon UHFReader18/288 codec: spec vectors, the CRC against a bit-by-bit oracle, both
inventory layouts, several tags per frame, multi-frame rounds, malformed counts, and framing
recovery with no start byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reader_agent.protocol import (
    EncodeError,
    FrameStream,
    MalformedFrame,
    ReaderReply,
    chafon,
    get_codec,
)
from reader_agent.reads import TagRead

from tests.reader_agent.codec_oracle import chafon_crc_reference, frame_is_valid, load_vectors

VECTORS = load_vectors("chafon")
RADIO = bytes.fromhex("340C2E0E2C0000000000162E")
LENGTHY = bytes.fromhex("0506070813FF0005FF140B00")  # bytes that read as plausible lengths


def test_crc_is_mcrf4xx_with_the_catalogue_check_value() -> None:
    assert chafon.crc16(b"123456789") == 0x6F91


@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_reference(data: bytes) -> None:
    assert chafon.crc16(data) == chafon_crc_reference(data)


@settings(max_examples=200)
@given(st.binary(min_size=5, max_size=255))
def test_frame_check_agrees_with_the_reference(body: bytes) -> None:
    body = bytes((len(body) + 1,)) + body[1:]  # Len counts what follows it, CRC included
    crc = chafon_crc_reference(body)
    frame = body + crc.to_bytes(2, "little")
    assert chafon.decode(frame).frame == frame
    bad = frame[:-1] + bytes((frame[-1] ^ 0x01,))
    assert chafon.decode(bad).frame is None
    assert frame_is_valid("chafon", frame) and not frame_is_valid("chafon", bad)


@pytest.mark.parametrize("vector", VECTORS["responses"], ids=lambda v: v["name"])
def test_response_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert chafon.decode(frame).frame == frame
    message = chafon.parse(frame)
    assert isinstance(message, ReaderReply)
    assert (message.kind, message.command, message.code) == (
        vector["kind"], vector["command"], vector["code"])


@pytest.mark.parametrize("vector", VECTORS["tags"], ids=lambda v: v["name"])
def test_tag_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert chafon.decode(frame).frame == frame
    messages = chafon.parse_all(frame, 3.5)
    reads = [m for m in messages if isinstance(m, TagRead)]
    assert [r.epc.hex().upper() for r in reads] == vector["epcs"]
    assert all(r.antenna == vector["antenna"] and r.monotonic == 3.5 for r in reads)
    assert all(r.rssi_dbm is None for r in reads)  # relative strength, never passed as dBm
    assert any(isinstance(m, ReaderReply) for m in messages) == vector["summary"]


@pytest.mark.parametrize("vector", VECTORS["commands"], ids=lambda v: v["name"])
def test_command_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert chafon.decode_command(frame).frame == frame
    args = vector.get("args", [])
    assert isinstance(args, list)
    assert getattr(chafon, str(vector["encoder"]))(*args) == frame


@pytest.mark.parametrize("vector", VECTORS["rejected"], ids=lambda v: v["name"])
def test_rejected_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    result = chafon.decode(frame)
    assert result.frame is None and result.rejected == frame and result.consumed == 1


def test_several_tags_in_one_frame_then_the_round_summary() -> None:
    tags = [(RADIO, 0x60), (LENGTHY, 0x21), (bytes.fromhex("E2801160"), 0x05)]
    frame = chafon.encode_inventory(tags, antenna=3, status=chafon.STATUS_DONE)
    messages = chafon.parse_all(frame, 1.0)
    assert [m.epc for m in messages if isinstance(m, TagRead)] == [t[0] for t in tags]
    assert all(m.antenna == 3 for m in messages if isinstance(m, TagRead))
    assert isinstance(messages[-1], ReaderReply) and messages[-1].kind == "summary"
    single = chafon.parse(frame)
    assert isinstance(single, ReaderReply) and single.kind == "inventory"


def test_uhfreader18_layout_is_told_apart_from_288() -> None:
    frame = chafon.encode_inventory_18([RADIO, LENGTHY], status=chafon.STATUS_SCAN_TIMEOUT)
    messages = chafon.parse_all(frame)
    assert [m.epc for m in messages if isinstance(m, TagRead)] == [RADIO, LENGTHY]
    assert isinstance(messages[-1], ReaderReply) and messages[-1].code == 2


def test_a_round_too_big_for_one_frame_spans_frames_marked_more() -> None:
    tags = [(bytes((i,)) * 12, i) for i in range(40)]
    frames = chafon.encode_round(tags, antenna=2)
    assert len(frames) > 1
    assert [f[3] for f in frames] == [chafon.STATUS_MORE] * (len(frames) - 1) + [1]
    stream = get_codec("chafon").stream()
    out = [m for f in stream.feed(b"".join(frames)) for m in chafon.parse_all(f)]
    assert [m.epc for m in out if isinstance(m, TagRead)] == [t[0] for t in tags]
    summaries = [m for m in out if isinstance(m, ReaderReply)]
    assert len(summaries) == 1 and out[-1] is summaries[0]  # only the last frame ends it
    assert chafon.encode_round([], antenna=1) == [chafon.encode_inventory([], antenna=1)]
    legacy = chafon.encode_round([(bytes(62), 0)] * 9, reader18=True)
    assert len(legacy) == 3 and all(len(f) <= chafon.MAX_FRAME_LEN for f in legacy)
    assert sum(isinstance(m, TagRead) for f in legacy for m in chafon.parse_all(f)) == 9


@pytest.mark.parametrize("data", [
    b"\x01\x02\x0c" + bytes(12),          # 288: two tags announced, one present
    b"\x01\x01\x0c" + bytes(12),          # 288: RSSI byte missing (and no 18 reading fits)
    b"\x03" + b"\x0c" + bytes(12),        # 18: three tags announced, one present
    b"\x01\x01\x40" + bytes(64) + b"\x10",  # an EPC of 64 bytes
    b"",
])
def test_inventory_data_that_contradicts_its_counts_is_malformed(data: bytes) -> None:
    frame = chafon.encode_response(0, chafon.CMD_INVENTORY, chafon.STATUS_DONE, data)
    assert chafon.decode(frame).frame == frame  # the CRC is fine: only the content lies
    with pytest.raises(MalformedFrame):
        chafon.parse_all(frame)


@pytest.mark.parametrize(("status", "kind"), [(chafon.STATUS_ANTENNA, "error"),
                                              (chafon.STATUS_OPERAND_LENGTH, "error"),
                                              (0x77, "error")])
def test_inventory_failures_and_unknown_statuses_are_errors(status: int, kind: str) -> None:
    reply = chafon.parse(chafon.encode_response(0, chafon.CMD_INVENTORY, status))
    assert isinstance(reply, ReaderReply) and (reply.kind, reply.ok) == (kind, False)


def test_garbage_that_looks_like_lengths_then_frames() -> None:
    """No start byte: a garbage byte of 5 claims a 6-byte frame made of itself and the real
    frame's head; only its check tells, and dropping one byte at a time finds the frame."""
    frame = chafon.encode_inventory([(LENGTHY, 9)], status=chafon.STATUS_MORE)
    done = chafon.encode_inventory([], antenna=1)
    stream = get_codec("chafon").stream()
    out = stream.feed(b"\x05" + frame + b"\x00\x03\x05" + done)
    assert out == [frame, done]
    assert stream.counters.garbage_bytes == 4
    assert stream.counters.bad_checksum >= 1  # the 6-byte candidate failed its CRC


def test_a_long_false_length_waits_until_the_inter_byte_timeout() -> None:
    frame = chafon.encode_inventory([(RADIO, 1)])
    stream = FrameStream(chafon.decode, chafon.RESPONSE_SPEC)
    assert stream.feed(b"\xfe" + frame) == []  # 0xFE claims 255 more bytes
    assert stream.flush_stale() == [frame]


def test_command_frames_are_shorter_than_responses() -> None:
    command = chafon.cmd_get_reader_info()
    assert len(command) == 5
    assert chafon.decode_command(command).frame == command
    assert chafon.decode(command).frame is None  # below a response's minimum


def test_encoders_refuse_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        chafon.cmd_inventory(5)
    with pytest.raises(EncodeError):
        chafon.cmd_inventory(1, session=4)
    with pytest.raises(EncodeError):
        chafon.cmd_inventory(1, scan_time=0)
    with pytest.raises(EncodeError):
        chafon.encode_command(0, 1, bytes(252))
    with pytest.raises(EncodeError):
        chafon.encode_inventory([(bytes(63), 1)])
    with pytest.raises(EncodeError):
        chafon.encode_inventory([(RADIO, 256)])
    with pytest.raises(EncodeError):
        chafon.encode_inventory([(RADIO, 1)] * 20)  # 20 tags do not fit one frame


def test_capture_replay() -> None:
    stream = FrameStream(chafon.decode)
    frames = stream.feed(bytes.fromhex("".join(VECTORS["capture"]["text"].split())))
    frames += stream.flush_stale()
    assert len(frames) == VECTORS["capture"]["frames"]
    assert stream.counters.bad_checksum >= 1
