"""Magic RF R200 codec: spec vectors, the AA/DD variant, notifications of any EPC length,
error frames, and encoder bounds."""

from __future__ import annotations

import pytest
from reader_agent.protocol import EncodeError, FrameStream, MalformedFrame, ReaderReply, r200
from reader_agent.protocol.framing import hunt_frame
from reader_agent.reads import TagRead

from tests.reader_agent.codec_oracle import load_vectors

VECTORS = load_vectors("r200")


@pytest.mark.parametrize("vector", VECTORS["responses"], ids=lambda v: v["name"])
def test_response_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert r200.decode(frame).frame == frame
    message = r200.parse(frame, 3.0)
    if vector["kind"] == "tag":
        assert isinstance(message, TagRead)
        assert message.epc_hex == vector["epc"]
        assert (message.rssi_dbm, message.antenna, message.pc) == (
            vector["rssi_dbm"], vector["antenna"], vector["pc"])
    else:
        assert isinstance(message, ReaderReply)
        assert (message.kind, message.command, message.code) == (
            vector["kind"], vector["command"], vector["code"])


@pytest.mark.parametrize("vector", VECTORS["commands"], ids=lambda v: v["name"])
def test_command_vectors(vector: dict[str, object]) -> None:
    frame = bytes.fromhex(str(vector["hex"]))
    assert r200.decode_command(frame).frame == frame
    if "encoder" in vector:
        args = vector.get("args", [])
        assert isinstance(args, list)
        assert getattr(r200, str(vector["encoder"]))(*args) == frame


def test_published_erratum_is_rejected() -> None:
    frame = bytes.fromhex(VECTORS["invalid"][0]["hex"])
    result = r200.decode(frame)
    assert result.frame is None and result.rejected == frame


def test_notification_encoder_matches_manual_example() -> None:
    made = r200.encode_notification(bytes.fromhex("30751FEB705C5904E3D50D70"), rssi_dbm=-55,
                                    pc=0x3400, command=r200.CMD_SINGLE_POLL)
    assert made == bytes.fromhex(VECTORS["responses"][0]["hex"])


@pytest.mark.parametrize("size", [0, 2, 8, 12, 16, 62])
def test_epc_length_comes_from_pl_not_a_fixed_size(size: int) -> None:
    epc = bytes(range(0x70, 0x70 + size))
    read = r200.parse(r200.encode_notification(epc, rssi_dbm=-70))
    assert isinstance(read, TagRead) and read.epc == epc and read.rssi_dbm == -70


def test_trailer_byte_is_part_of_the_check() -> None:
    frame = bytearray(bytes.fromhex(VECTORS["responses"][0]["hex"]))
    frame[-1] = 0x7F
    assert r200.decode(bytes(frame)).frame is None


def test_aa_dd_variant() -> None:
    spec = r200.frame_spec(0xAA, 0xDD)
    frame = r200.encode_frame(r200.TYPE_NOTIFICATION, 0x22, b"\xc9" + bytes(16),
                              header=0xAA, trailer=0xDD)
    assert hunt_frame(spec, b"\x00" + frame).frame == frame
    assert r200.decode(frame).frame is None


def test_short_notification_is_malformed() -> None:
    with pytest.raises(MalformedFrame):
        r200.parse(r200.encode_frame(r200.TYPE_NOTIFICATION, 0x27, b"\xc9\x30"))
    with pytest.raises(MalformedFrame):
        r200.parse(r200.encode_frame(r200.TYPE_NOTIFICATION, 0x27, bytes(70)))


def test_capture_replay() -> None:
    stream = FrameStream(r200.decode)
    frames = stream.feed(bytes.fromhex("".join(VECTORS["capture"]["text"].split())))
    frames += stream.flush_stale()
    assert len(frames) == VECTORS["capture"]["frames"]


def test_encoders_refuse_out_of_range_values() -> None:
    with pytest.raises(EncodeError):
        r200.cmd_set_region("XX")
    with pytest.raises(EncodeError):
        r200.cmd_set_power(r200.MAX_POWER_CDBM + 1)
    with pytest.raises(EncodeError):
        r200.cmd_multi_poll(70_000)
    with pytest.raises(EncodeError):
        r200.encode_frame(0, 0x22, bytes(r200.MAX_PARAM_LEN + 1))
    assert r200.cmd_set_region("EU") == r200.encode_frame(0, 0x07, b"\x03")
