"""The shared shape of every reader family's frame codec: decode results, the hunting deframer,
parsed replies and the byte stream that turns serial chunks into whole frames.

All four reader families send length-prefixed binary frames with no byte stuffing, so one
receiver state machine serves them all (docs/reader-protocols.md §0): hunt for the start byte, read
the header up to the length field, reject implausible lengths one byte at a time, wait for the
whole frame, verify the check, and on failure drop ONE byte (the candidate may contain the real
start byte) and hunt again. A family without a start byte (Chafon: the frame opens with its
length) makes every offset a candidate; the same loop then resyncs on the check alone. Nothing
here touches a serial port or a clock.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from ledger.core.bounds import MAX_EPC_BYTES as MAX_EPC_BYTES

Buffer = bytes | bytearray

MAX_STREAM_BUFFER = 64 * 1024
"""Bytes a FrameStream holds before it discards the oldest: far above the largest frame of any
family (519 bytes), so only a stuck candidate on a hostile or broken line can reach it."""


def gen2_crc16(pc_and_epc: bytes) -> int:
    """The tag's own StoredCRC, reported next to the EPC by every family: CRC-16/GENIBUS
    (poly 0x1021, init 0xFFFF, final XOR 0xFFFF) = binascii.crc_hqx (in C) XOR 0xFFFF."""
    return binascii.crc_hqx(pc_and_epc, 0xFFFF) ^ 0xFFFF


BANK_RESERVED = 0x00
"""Gen2 memory bank 0: kill password (words 0-1), then the access password (words 2-3)."""
BANK_EPC = 0x01
ACCESS_PASSWORD_WORD = 2

# Gen2 Lock: each memory area has a (lock, permalock) bit pair in a 10-bit mask and a 10-bit
# action, from the kill password (bits 9, 8) down to user memory (1, 0); the higher bit of a
# pair makes the area need the access password to write (to read too, for the passwords).
LOCK_USER = 1 << 1
LOCK_TID = 1 << 3
LOCK_EPC = 1 << 5
LOCK_ACCESS = 1 << 7
LOCK_KILL = 1 << 9
LOCK_EPC_AND_ACCESS = LOCK_EPC | LOCK_ACCESS
"""What `write-tag --lock` locks: the EPC bank against rewriting, and the access password
against being read or changed (a readable password locks nothing)."""


def lock_payload(mask: int, action: int) -> int:
    """The 20-bit Gen2 Lock payload: the mask, then the action (each 10 bits)."""
    if not 0 <= mask < 1 << 10 or not 0 <= action < 1 << 10 or action & ~mask:
        raise EncodeError(f"lock mask {mask:#x} / action {action:#x} are not 10-bit values "
                          "with the action inside the mask")
    return (mask << 10) | action


class ProtocolError(Exception):
    """Root of every error raised by the reader protocol codecs."""


class MalformedFrame(ProtocolError):
    """A checksum-valid frame whose content contradicts its own length fields."""


class EncodeError(ProtocolError):
    """A command parameter outside what the wire format or the reader accepts."""


class DecodeResult(NamedTuple):
    """One step of an incremental decode.

    `consumed` bytes (counted from the offset given to decode) must be dropped by the caller.
    Exactly one of three outcomes: `frame` holds a whole, checksum-valid frame; `rejected`
    holds a candidate whose check failed (only its first byte is consumed, so a real frame
    inside it is still found); or neither, meaning "need more bytes". `garbage` counts the
    consumed bytes that were not part of an accepted frame.
    """

    consumed: int
    frame: bytes | None = None
    garbage: int = 0
    rejected: bytes | None = None

    @property
    def need_more(self) -> bool:
        return self.frame is None and self.rejected is None


@dataclass(frozen=True, slots=True)
class FrameSpec:
    """Framing table of one direction of one reader family.

    The total frame length is the big-endian integer of `len_size` bytes at `len_offset`
    plus `len_add`; `header_len` bytes are needed to read it. `start` is None for a family whose
    frames have no start byte: every offset is then a candidate.
    """

    start: int | None
    len_offset: int
    len_size: int
    len_add: int
    min_total: int
    max_total: int
    is_valid: Callable[[bytes], bool]

    @property
    def header_len(self) -> int:
        return self.len_offset + self.len_size

    def total_len(self, buffer: Buffer, i: int) -> int:
        at = i + self.len_offset
        if self.len_size == 2:
            return ((buffer[at] << 8) | buffer[at + 1]) + self.len_add
        return buffer[at] + self.len_add


def hunt_frame(spec: FrameSpec, buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Find the next valid frame at or after `offset` (the receiver of docs/reader-protocols.md
    §0)."""
    end = len(buffer)
    pos = offset
    start = spec.start
    while True:
        i = buffer.find(start, pos) if start is not None else pos if pos < end else -1
        if i < 0:
            return DecodeResult(end - offset, None, end - offset)
        if end - i < spec.header_len:
            return DecodeResult(i - offset, None, i - offset)
        total = spec.total_len(buffer, i)
        if not spec.min_total <= total <= spec.max_total:
            pos = i + 1  # implausible length: this start byte was garbage
            continue
        if end - i < total:
            return DecodeResult(i - offset, None, i - offset)
        frame = bytes(buffer[i : i + total])
        if spec.is_valid(frame):
            return DecodeResult(i + total - offset, frame, i - offset)
        return DecodeResult(i + 1 - offset, None, i + 1 - offset, frame)


class ScanResult(NamedTuple):
    """Every frame in a buffer at once (the fast path of FrameStream)."""

    frames: list[bytes]
    consumed: int
    garbage: int
    resyncs: int
    bad_checksums: int


def scan_frames(spec: FrameSpec, buffer: Buffer) -> ScanResult:
    """All frames in `buffer`, with exactly the outcome and counts of calling `hunt_frame`
    until it needs more, minus one Python call and one result tuple per frame: this loop
    is the agent's hottest code (tests check it against `hunt_frame`)."""
    frames: list[bytes] = []
    append = frames.append
    # One copy of the chunk to bytes makes every frame slice a single copy.
    buffer = bytes(buffer)
    start, at, two, add = spec.start, spec.len_offset, spec.len_size == 2, spec.len_add
    header, low, high, valid = at + spec.len_size, spec.min_total, spec.max_total, spec.is_valid
    end = len(buffer)
    pos = mark = garbage = resyncs = bad = 0
    while True:
        # No start byte (Chafon): every offset is a candidate.
        i = buffer.find(start, pos) if start is not None else pos if pos < end else -1
        if i < 0 or end - i < header:
            stop = end if i < 0 else i
            if stop > mark:
                garbage += stop - mark
                resyncs += 1
            return ScanResult(frames, stop, garbage, resyncs, bad)
        total = ((buffer[i + at] << 8) | buffer[i + at + 1]) + add if two else buffer[i + at] + add
        if total < low or total > high:
            pos = i + 1
            continue
        if end - i < total:
            if i > mark:
                garbage += i - mark
                resyncs += 1
            return ScanResult(frames, i, garbage, resyncs, bad)
        frame = buffer[i : i + total]
        if valid(frame):
            if i > mark:
                garbage += i - mark
                resyncs += 1
            append(frame)
            pos = mark = i + total
        else:
            garbage += i + 1 - mark
            resyncs += 1
            bad += 1
            pos = mark = i + 1


@dataclass(frozen=True, slots=True)
class ReaderReply:
    """A parsed frame that is not a tag read.

    `kind` is one of "response" (answer to a command), "error" (the reader refused or failed a
    command), "keepalive" (streaming, nothing read this cycle), "summary" (end of an inventory
    round) or "event" (anything else the reader volunteers, e.g. a boot message). `command` is
    the opcode or command byte the frame answers, `code` the family's status or error code.
    """

    kind: str
    command: int
    ok: bool
    code: int = 0
    data: bytes = b""


@dataclass(slots=True)
class FrameCounters:
    """What a FrameStream saw on the line (exported by drivers as health metrics)."""

    frames_ok: int = 0
    bad_checksum: int = 0
    garbage_bytes: int = 0
    resyncs: int = 0
    overflow_bytes: int = 0


class FrameStream:
    """Buffers serial chunks and returns whole frames, counting everything it discards."""

    def __init__(self, decode: Callable[[Buffer, int], DecodeResult],
                 spec: FrameSpec | None = None) -> None:
        self._decode = decode
        self._spec = spec  # when given, whole chunks are scanned by scan_frames
        self._buffer = bytearray()
        self.counters = FrameCounters()

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet form a frame."""
        return len(self._buffer)

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add received bytes; return every frame now complete, in order."""
        buf = self._buffer
        buf += chunk
        counters = self.counters
        if self._spec is not None:
            found = scan_frames(self._spec, buf)
            counters.frames_ok += len(found.frames)
            counters.garbage_bytes += found.garbage
            counters.resyncs += found.resyncs
            counters.bad_checksum += found.bad_checksums
            del buf[: found.consumed]
            self._bound()
            return found.frames
        frames: list[bytes] = []
        pos = 0
        while True:
            result = self._decode(buf, pos)
            pos += result.consumed
            if result.garbage:
                counters.garbage_bytes += result.garbage
                counters.resyncs += 1
            if result.frame is not None:
                counters.frames_ok += 1
                frames.append(result.frame)
            elif result.rejected is not None:
                counters.bad_checksum += 1
            else:
                break
        del buf[:pos]
        self._bound()
        return frames

    def _bound(self) -> None:
        excess = len(self._buffer) - MAX_STREAM_BUFFER
        if excess > 0:
            self.counters.overflow_bytes += excess
            del self._buffer[:excess]

    def flush_stale(self) -> list[bytes]:
        """Inter-byte timeout: the buffered candidate will never complete, so drop its first
        byte and rescan the rest (a real frame may start inside it)."""
        frames: list[bytes] = []
        if self._buffer:
            self.counters.resyncs += 1
        # Nothing is in transit after a timeout, so every buffered candidate is dead: keep
        # dropping one byte and rescanning until the buffer is empty.
        while self._buffer:
            del self._buffer[0]
            self.counters.garbage_bytes += 1
            frames += self.feed(b"")
        return frames

    def clear(self) -> int:
        """Forget buffered bytes (the port was closed mid-frame); returns how many, counted
        as garbage."""
        dropped = len(self._buffer)
        self._buffer.clear()
        self.counters.garbage_bytes += dropped
        return dropped
