"""Deframing properties shared by every reader family: frames whole, in halves, byte by byte,
with garbage between, corrupted, truncated, and hostile lengths; never a bad frame accepted."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from reader_agent.protocol import FrameStream, chafon, get_codec, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.protocol.framing import MAX_STREAM_BUFFER

from tests.reader_agent.codec_oracle import frame_is_valid, load_vectors

PROTOCOLS = ["thingmagic", "r200", "r2000", "chafon"]
HOSTILE_EPC = bytes.fromhex("FFBB7EA0FF7EBB00A0FFFF7E")  # every start/end byte value


def sample_frames(protocol: str) -> list[bytes]:
    """Spec vectors plus encoder output whose payloads contain start and end byte values."""
    frames = [bytes.fromhex(v["hex"]) for v in load_vectors(protocol)["responses"]]
    if protocol == "thingmagic":
        frames += [tm.encode_tag_record(HOSTILE_EPC, rssi_dbm=-1, antenna=2),
                   tm.encode_tag_record(b"\xff" * 62, metadata=0),
                   tm.encode_response(tm.OP_VERSION, 0, b"\xff" * 20)]
    elif protocol == "r200":
        frames += [r200.encode_notification(HOSTILE_EPC, rssi_dbm=-2),
                   r200.encode_response(r200.CMD_MODULE_INFO, b"\x7e\xbb" * 40)]
    elif protocol == "r2000":
        frames += [r2000.encode_tag(HOSTILE_EPC, antenna=4, rssi=-31),
                   r2000.encode_summary(2, 0xA0A0, 0xA0A0A0A0)]
    else:  # no start byte: payload bytes that read as plausible lengths are the hostile ones
        frames += [chafon.encode_inventory([(HOSTILE_EPC, 0x05), (b"\x06\x07" * 6, 0xFF)],
                                           antenna=4, status=chafon.STATUS_MORE),
                   chafon.encode_inventory_18([bytes(range(5, 17))])]
    return frames


def feed_all(protocol: str, chunks: list[bytes],
             fast: bool = True) -> tuple[list[bytes], FrameStream]:
    """Feed through the batch scanner (the drivers' path) or the step decoder (its oracle)."""
    codec = get_codec(protocol)
    stream = codec.stream() if fast else FrameStream(codec.decode)
    out: list[bytes] = []
    for chunk in chunks:
        out += stream.feed(chunk)
    return out, stream


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_frame_whole_in_halves_and_byte_by_byte(protocol: str) -> None:
    for frame in sample_frames(protocol):
        half = len(frame) // 2
        for chunks in ([frame], [frame[:half], frame[half:]], [bytes((b,)) for b in frame]):
            out, stream = feed_all(protocol, chunks)
            assert out == [frame]
            assert stream.pending == 0
            assert stream.counters.garbage_bytes == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_decode_reports_consumed_and_need_more(protocol: str) -> None:
    codec = get_codec(protocol)
    frame = sample_frames(protocol)[0]
    result = codec.decode(b"\x00\x01" + frame + frame[:3], 0)
    assert (result.consumed, result.frame, result.garbage) == (2 + len(frame), frame, 2)
    rest = codec.decode(frame[:3], 0)
    assert rest.need_more and rest.consumed == 0
    assert codec.decode(frame, 1).frame is None  # past the start byte the frame is gone


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_between_frames_is_skipped_and_counted(protocol: str) -> None:
    frames = sample_frames(protocol)
    rng = random.Random(7)
    line = bytearray()
    for frame in frames:
        line += bytes(rng.choice((0xFF, 0xBB, 0x7E, 0xA0, 0x00, 0x13)) for _ in range(5))
        line += frame
    out, stream = feed_all(protocol, [bytes(line)])
    flushed = stream.flush_stale()
    assert out + flushed == frames  # resync within one frame: none lost
    assert stream.counters.garbage_bytes == 5 * len(frames)
    assert stream.counters.resyncs > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_corrupted_frame_rejected_and_next_frame_kept(protocol: str) -> None:
    frames = sample_frames(protocol)
    for frame in frames:
        for i in range(1, len(frame)):
            bad = bytearray(frame)
            bad[i] ^= 0x01
            out, stream = feed_all(protocol, [bytes(bad) + frames[0] + frames[-1]])
            out += stream.flush_stale()
            assert out[-2:] == [frames[0], frames[-1]], (frame.hex(), i)
            assert all(frame_is_valid(protocol, f) for f in out)
            assert stream.counters.bad_checksum + stream.counters.garbage_bytes > 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_truncated_frame_then_real_frames(protocol: str) -> None:
    frames = sample_frames(protocol)
    for cut in (1, 2, 5, len(frames[0]) - 1):
        out, stream = feed_all(protocol, [frames[0][:cut], frames[1], frames[2]])
        out += stream.flush_stale()
        assert out[-2:] == [frames[1], frames[2]]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_hostile_length_fields_do_not_stall_forever(protocol: str) -> None:
    frame = sample_frames(protocol)[0]
    hostile = {"thingmagic": b"\xff\xf9", "r200": b"\xbb\x02\x22\xff\xff",
               "r2000": b"\xa0\x01", "chafon": b"\x04\x00\x03"}[protocol]
    # lengths beyond the named MAX / below min
    out, stream = feed_all(protocol, [hostile + frame])
    assert out == [frame]
    # A plausible but false length waits for bytes; the inter-byte timeout frees the line.
    waiting = {"thingmagic": b"\xff\xf0", "r200": b"\xbb\x02\x22\x01\xf0",
               "r2000": b"\xa0\xfe", "chafon": b"\xf0"}[protocol]
    out, stream = feed_all(protocol, [waiting + frame])
    assert out == []
    assert stream.flush_stale() == [frame]


def test_stream_buffer_is_bounded() -> None:
    stream = FrameStream(get_codec("r200").decode)
    # A header claiming a 519-byte frame followed by endless bytes without a start byte.
    for _ in range(20):
        stream.feed(b"\x00" * 8192)
    assert stream.pending == 0
    stream.feed(b"\xbb\x02\x22\x02\x00")
    for _ in range(20):
        stream.feed(b"\x01" * 8192)  # the candidate fails its check; no start byte follows
    assert stream.pending <= MAX_STREAM_BUFFER


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocol=st.sampled_from(PROTOCOLS), data=st.data())
def test_random_splits_and_garbage_never_lose_or_forge_frames(protocol: str,
                                                              data: st.DataObject) -> None:
    frames = sample_frames(protocol)
    picked = data.draw(st.lists(st.sampled_from(frames), min_size=1, max_size=6))
    # Garbage without the start byte cannot hide a frame, so every frame must come out.
    # Chafon has none: any garbage byte may open a candidate, which only its CRC refutes.
    start = {"thingmagic": 0xFF, "r200": 0xBB, "r2000": 0xA0, "chafon": -1}[protocol]
    clean_byte = st.integers(0, 255).filter(lambda b: b != start)
    line = bytearray()
    noise: list[int] = []  # offsets of garbage bytes
    for frame in picked:
        garbage = bytes(data.draw(st.lists(clean_byte, max_size=8)))
        noise += range(len(line), len(line) + len(garbage))
        line += garbage + frame
    # ... unless the noise and what follows form a CRC-valid frame (odds about 2^-16 each).
    assume(not any(frame_is_valid(protocol, bytes(line[i : i + line[i] + 1]))
                   for i in noise if protocol == "chafon"))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(line)), max_size=10)))
    chunks = [bytes(line[a:b]) for a, b in zip([0, *cuts], [*cuts, len(line)], strict=True)]
    out, stream = feed_all(protocol, chunks)
    if protocol == "chafon":  # a garbage byte claiming a long frame holds the line until the
        out += stream.flush_stale()  # inter-byte timeout when nothing follows
    assert out == picked


@settings(max_examples=80, deadline=None)
@given(protocol=st.sampled_from(PROTOCOLS), noise=st.binary(max_size=600))
def test_random_bytes_never_yield_an_invalid_frame(protocol: str, noise: bytes) -> None:
    out, stream = feed_all(protocol, [noise])
    out += stream.flush_stale()
    assert all(frame_is_valid(protocol, f) for f in out)
    assert stream.pending == 0


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocol=st.sampled_from(PROTOCOLS), data=st.data())
def test_batch_scanner_matches_step_decoder(protocol: str, data: st.DataObject) -> None:
    """The fast path (scan_frames) must agree with hunt_frame on frames AND counters, for
    lines mixing frames, corrupted frames, start bytes and random noise."""
    frames = sample_frames(protocol)
    line = bytearray()
    for _ in range(data.draw(st.integers(1, 8))):
        frame = bytearray(data.draw(st.sampled_from(frames)))
        if data.draw(st.booleans()):
            frame[data.draw(st.integers(0, len(frame) - 1))] ^= data.draw(st.integers(1, 255))
        line += data.draw(st.binary(max_size=12)) + frame
    cuts = sorted(data.draw(st.lists(st.integers(0, len(line)), max_size=6)))
    chunks = [bytes(line[a:b]) for a, b in zip([0, *cuts], [*cuts, len(line)], strict=True)]
    fast_out, fast = feed_all(protocol, chunks, fast=True)
    slow_out, slow = feed_all(protocol, chunks, fast=False)
    assert fast_out == slow_out
    assert fast.counters == slow.counters
    assert fast.pending == slow.pending
    assert fast.flush_stale() == slow.flush_stale()
    assert all(frame_is_valid(protocol, f) for f in fast_out)
