"""Benchmark: tag reads per second through frame decoding and TagRead construction, one core.

    .venv/bin/python bench/reader_decode.py [--frames 1000000] [--runs 5]

For each reader family, builds a recorded byte stream with the simulator's encoders (tag
frames of 96-bit EPCs on four antennas, a garbage burst every 1,000 frames), then replays it
through `FrameStream.feed` in 4 KiB chunks (as serial reads arrive) and parses every frame
(Chafon: UHFReader288 answers of one tag each, status "more follow", so reads/s is also its
frames/s; its frames have no start byte, so the hunt tries every offset of the garbage).
LLRP is a TCP stream of RO_ACCESS_REPORTs, one tag each (a reader's default, N = 1), with
no garbage (TCP delivers bytes intact), split into messages and parsed by the fast report
parser.
Prints wall and CPU-time medians of several runs; reads/s is computed from CPU time (one
core, and honest on a shared machine) with its ratio to the issue's bar for decode + pipeline
(100,000 reads/s): decode alone must leave the pipeline most of that budget.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from reader_agent.protocol import chafon, get_codec, llrp, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.reads import TagRead

BAR_READS_PER_S = 100_000
CHUNK = 4096
DISTINCT_FRAMES = 2_000
GARBAGE_EVERY = 1_000


def tag_frame_encoder(protocol: str) -> Callable[[bytes, int, int], bytes]:
    if protocol == "thingmagic":
        return lambda epc, ant, rssi: tm.encode_tag_record(epc, rssi_dbm=rssi, antenna=ant)
    if protocol == "r200":
        return lambda epc, ant, rssi: r200.encode_notification(epc, rssi_dbm=rssi)
    if protocol == "chafon":
        return lambda epc, ant, rssi: chafon.encode_inventory(
            [(epc, rssi + 129)], antenna=ant, status=chafon.STATUS_MORE)
    return lambda epc, ant, rssi: r2000.encode_tag(epc, antenna=ant, rssi=rssi)


def recorded_stream(protocol: str, frames: int, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    if protocol == "llrp":
        pool = [llrp.encode_report(i, [(b"\x34" + rng.randbytes(11), rng.randint(1, 4),
                                        rng.randint(-80, -30), 1_700_000_000_000_000 + i)])
                for i in range(DISTINCT_FRAMES)]
        return b"".join(pool[rng.randrange(DISTINCT_FRAMES)] for _ in range(frames))
    encode = tag_frame_encoder(protocol)
    pool = [encode(b"\x34" + rng.randbytes(11), rng.randint(1, 4), rng.randint(-80, -30))
            for _ in range(DISTINCT_FRAMES)]
    out = bytearray()
    for i in range(frames):
        out += pool[rng.randrange(DISTINCT_FRAMES)]
        if i % GARBAGE_EVERY == GARBAGE_EVERY - 1:
            out += rng.randbytes(rng.randint(1, 16))
    return bytes(out)


def chunk_decoder(protocol: str) -> Callable[[bytes, float], int]:
    """Feeds one chunk through the family's stream and parser; says how many tag reads."""
    if protocol == "llrp":
        messages = llrp.MessageStream()
        return lambda chunk, now: sum(len(llrp.parse_report(frame, now))
                                      for frame in messages.feed(chunk))
    codec = get_codec(protocol)
    parse = codec.parse
    frames = codec.stream()

    def decode(chunk: bytes, now: float) -> int:
        reads = 0
        for frame in frames.feed(chunk):
            if isinstance(parse(frame, now), TagRead):
                reads += 1
        return reads

    # A garbage byte read as a long Chafon length holds the tail until the inter-byte timeout.
    decode.flush = lambda: sum(  # type: ignore[attr-defined]
        isinstance(parse(frame, 0.0), TagRead) for frame in frames.flush_stale())
    return decode


def flush(decode: Callable[[bytes, float], int]) -> int:
    """Reads held at the end of the stream (a serial family's stale tail), if any."""
    tail = getattr(decode, "flush", None)
    return int(tail()) if tail is not None else 0


def decode_run(protocol: str, stream: bytes) -> tuple[int, float, float]:
    decode = chunk_decoder(protocol)
    reads = 0
    start, cpu = time.perf_counter(), time.process_time()
    for offset in range(0, len(stream), CHUNK):
        reads += decode(stream[offset : offset + CHUNK], time.monotonic())
    reads += flush(decode)
    return reads, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--protocol", action="append",
                        choices=("thingmagic", "r200", "r2000", "chafon", "llrp"))
    options = parser.parse_args()
    protocols = options.protocol or ["thingmagic", "r200", "r2000", "chafon", "llrp"]
    print(f"reader decode benchmark: {options.frames:,} tag frames per run, "
          f"median of {options.runs} runs, one core")
    print(f"{'protocol':<12}{'MB':>7}{'reads':>11}{'wall s':>8}{'cpu s':>8}{'reads/s':>11}"
          f"{'us/read':>9}{'x bar':>7}")
    for protocol in protocols:
        stream = recorded_stream(protocol, options.frames)
        results = [decode_run(protocol, stream) for _ in range(options.runs)]
        reads = results[0][0]
        if any(r != reads for r, _, _ in results) or reads < options.frames * 0.99:
            raise SystemExit(f"{protocol}: decoded {reads} of {options.frames} frames")
        wall = statistics.median(t for _, t, _ in results)
        cpu = statistics.median(c for _, _, c in results)
        rate = reads / cpu  # CPU time: the machine is shared, and the bar is per core
        print(f"{protocol:<12}{len(stream) / 1e6:>7.1f}{reads:>11,}{wall:>8.3f}{cpu:>8.3f}"
              f"{rate:>11,.0f}{1e6 / rate:>9.2f}{rate / BAR_READS_PER_S:>7.2f}")


if __name__ == "__main__":
    main()
