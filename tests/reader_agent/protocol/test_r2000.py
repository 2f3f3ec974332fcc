"""Impinj R2000 (0xA0) codec: spec vectors, the three 0x89 reply shapes, FreqAnt decoding,
and encoder bounds."""

from __future__ import annotations

import pytest
from reader_agent.protocol import EncodeError, FrameStream, MalformedFrame, ReaderReply, r2000
from reader_agent.reads import TagRead

from tests.reader_agent.codec_oracle import load_vectors

VECTORS = load_vectors("r2000")


@pytest.mark.parametrize("vector", VECTORS["responses"], ids=lambda v: v["name"])
def test_response_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert r2000.decode(frame).frame == frame
    message = r2000.parse(frame)
    assert isinstance(message, ReaderReply)
    assert (message.kind, message.command, message.code) == (
        vector["kind"], vector["command"], vector["code"])


@pytest.mark.parametrize("vector", VECTORS["commands"], ids=lambda v: v["name"])
def test_command_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert r2000.decode_command(frame).frame == frame
    if "encoder" in vector:
        args = vector.get("args", [])
        assert isinstance(args, list)
        assert getattr(r2000, str(vector["encoder"]))(*args) == frame


@pytest.mark.parametrize(("antenna", "index", "khz"), [(1, 0, 865_000), (4, 2, 866_000),
                                                       (2, 7, 902_000), (3, 59, 928_000)])
def test_tag_frame_freq_ant_and_rssi(antenna: int, index: int, khz: int) -> None:
    epc = bytes.fromhex("3474257BF40000000000162E")
    read = r2000.parse(r2000.encode_tag(epc, antenna=antenna, rssi=-61, freq_index=index), 2.0)
    assert isinstance(read, TagRead)
    assert (read.epc, read.antenna, read.frequency_khz, read.rssi_dbm) == (epc, antenna, khz, -61)
    assert read.pc == 0x3000


def test_summary_and_error_shapes_never_collide_with_tags() -> None:
    summary = r2000.parse(r2000.encode_summary(3, 120, 4567))
    assert isinstance(summary, ReaderReply) and summary.kind == "summary"
    assert summary.data[0] == 2  # 0-based antenna id
    missing = r2000.parse(r2000.encode_code(r2000.CMD_REALTIME_INVENTORY,
                                            r2000.CODE_ANTENNA_MISSING))
    assert isinstance(missing, ReaderReply) and missing.kind == "error" and not missing.ok


def test_tag_frame_too_short_for_pc_and_rssi_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        r2000.parse(r2000.encode_frame(1, r2000.CMD_REALTIME_INVENTORY, b"\x00\x30"))
    with pytest.raises(MalformedFrame):
        r2000.parse(r2000.encode_frame(1, r2000.CMD_REALTIME_INVENTORY, bytes(68)))


def test_capture_replay() -> None:
    stream = FrameStream(r2000.decode)
    frames = stream.feed(bytes.fromhex("".join(VECTORS["capture"]["text"].split())))
    frames += stream.flush_stale()
    assert len(frames) == VECTORS["capture"]["frames"]


def test_encoders_refuse_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        r2000.cmd_set_work_antenna(5)
    with pytest.raises(EncodeError):
        r2000.cmd_set_output_power(34)
    with pytest.raises(EncodeError):
        r2000.cmd_set_region("MARS")
    with pytest.raises(EncodeError):
        r2000.cmd_realtime_inventory(0)
    with pytest.raises(EncodeError):
        r2000.encode_frame(1, 0x89, bytes(253))
    assert r2000.cmd_set_region("EU") == r2000.encode_frame(0xFF, 0x78, b"\x02\x00\x06")
