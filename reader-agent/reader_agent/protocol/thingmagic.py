"""ThingMagic / JADAK Mercury embedded serial protocol (M6e Nano, M6e Micro, M7e, M5e).

Owns the frame layout both ways, the "ThingMagic CRC", the commands an edge agent sends and
the parsing of streamed 0x22 tag records by their metadata flags (docs/reader-protocols.md §1).
Encoders for reader->host frames (responses, tag records) exist for the simulator and tests.
"""

from __future__ import annotations

import binascii
import functools

from reader_agent.protocol.framing import (
    BANK_EPC as BANK_EPC,
)
from reader_agent.protocol.framing import (
    BANK_RESERVED as BANK_RESERVED,
)
from reader_agent.protocol.framing import (
    MAX_EPC_BYTES,
    Buffer,
    DecodeResult,
    EncodeError,
    FrameSpec,
    MalformedFrame,
    ReaderReply,
    gen2_crc16,
    hunt_frame,
    lock_payload,
)
from reader_agent.reads import TagRead

SOH = 0xFF
MAX_RESPONSE_DATA = 0xF8
"""MercuryAPI rejects a response header whose LEN exceeds 0xF8 while hunting (256-byte buffer)."""
MAX_COMMAND_DATA = 250
"""Host->reader LEN is 0..250 (MercuryAPI packet buffer of 256 bytes minus header and CRC)."""
MAX_FRAME_LEN = MAX_RESPONSE_DATA + 7

OP_VERSION = 0x03
OP_BOOT_FIRMWARE = 0x04
OP_GET_PROGRAM = 0x0C
OP_READ_TAG_MULTIPLE = 0x22
OP_WRITE_TAG_DATA = 0x24
OP_LOCK_TAG = 0x25
OP_MULTI_PROTOCOL = 0x2F
OP_GET_TEMPERATURE = 0x72
OP_SET_ANTENNA = 0x91
OP_SET_READ_POWER = 0x92
OP_SET_PROTOCOL = 0x93
OP_SET_REGION = 0x97
OP_SET_READER_PARAM = 0x9A

STATUS_OK = 0x0000
STATUS_INVALID_OPCODE = 0x0101
STATUS_NO_TAGS = 0x0400
STATUS_WRITE_FAILED = 0x0406
STATUS_MEMORY_LOCKED = 0x0424

MAX_WRITE_TIMEOUT_MS = 0xFFFF

REGIONS = {"NA": 0x0D, "EU": 0x02, "KR": 0x09, "IN": 0x04, "JP": 0x05, "CN": 0x06,
           "AU": 0x0B, "NZ": 0x0C, "OPEN": 0xFF}
"""Agent region names -> region byte. NA maps to NA2 (0x0D): the M6e Nano refuses NA (0x01)."""

MAX_POWER_CDBM = 3000
"""30.00 dBm: the M7e maximum; the Nano clamps lower itself and answers MSG_POWER_TOO_HIGH."""

# Sizes of fixed-size metadata fields by flag bit, in the ascending order they appear.
_META_SIZES = ((0x0001, 1), (0x0002, 1), (0x0004, 1), (0x0008, 3), (0x0010, 4), (0x0020, 2),
               (0x0040, 1), (0x0080, -1), (0x0100, 1), (0x0200, 1), (0x0400, 1), (0x0800, 1),
               (0x1000, 2))
_KNOWN_META = 0x1FFF
DEFAULT_METADATA = 0x01FF


def tm_crc(message: Buffer) -> int:
    """ThingMagic CRC of frame[1:-2]. Equal to CRC-16 (poly 0x1021, init 0x1D0F, augmented) of
    all but the last two bytes XOR those two bytes, which binascii computes in C."""
    if len(message) < 2:
        raise EncodeError("a ThingMagic frame body is at least LEN and OPCODE")
    return binascii.crc_hqx(message[:-2], 0x1D0F) ^ ((message[-2] << 8) | message[-1])


def _crc_ok(frame: bytes) -> bool:
    # tm_crc(frame[1:-2]) inlined: this runs once per frame on the hot path.
    crc = binascii.crc_hqx(frame[1:-4], 0x1D0F) ^ ((frame[-4] << 8) | frame[-3])
    return crc == (frame[-2] << 8) | frame[-1]


RESPONSE_SPEC = FrameSpec(SOH, 1, 1, 7, 7, MAX_FRAME_LEN, _crc_ok)
COMMAND_SPEC = FrameSpec(SOH, 1, 1, 5, 5, MAX_COMMAND_DATA + 5, _crc_ok)


def decode(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next reader->host frame (response or streamed record) in `buffer` from `offset`."""
    return hunt_frame(RESPONSE_SPEC, buffer, offset)


def decode_command(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next host->reader command frame (the simulator's receiver)."""
    return hunt_frame(COMMAND_SPEC, buffer, offset)


def encode_command(opcode: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_COMMAND_DATA:
        raise EncodeError(f"command data of {len(data)} bytes exceeds {MAX_COMMAND_DATA}")
    body = bytes((len(data), opcode)) + data
    crc = tm_crc(body)
    return b"\xff" + body + crc.to_bytes(2, "big")


def encode_response(opcode: int, status: int = STATUS_OK, data: bytes = b"") -> bytes:
    if len(data) > MAX_RESPONSE_DATA:
        raise EncodeError(f"response data of {len(data)} bytes exceeds {MAX_RESPONSE_DATA}")
    body = bytes((len(data), opcode)) + status.to_bytes(2, "big") + data
    return b"\xff" + body + tm_crc(body).to_bytes(2, "big")


def cmd_version() -> bytes:
    return encode_command(OP_VERSION)


def cmd_get_program() -> bytes:
    return encode_command(OP_GET_PROGRAM)


def cmd_boot_firmware() -> bytes:
    return encode_command(OP_BOOT_FIRMWARE)


def cmd_set_protocol_gen2() -> bytes:
    return encode_command(OP_SET_PROTOCOL, b"\x00\x05")


def cmd_set_region(region: str | int) -> bytes:
    code = REGIONS.get(region) if isinstance(region, str) else region
    if code is None or not 0 <= code <= 0xFF:
        raise EncodeError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    return encode_command(OP_SET_REGION, bytes((code,)))


def cmd_set_read_power(centi_dbm: int) -> bytes:
    if not 0 <= centi_dbm <= MAX_POWER_CDBM:
        raise EncodeError(f"read power {centi_dbm} cdBm outside 0..{MAX_POWER_CDBM}")
    return encode_command(OP_SET_READ_POWER, centi_dbm.to_bytes(2, "big", signed=True))


def cmd_set_antennas(antennas: list[int]) -> bytes:
    """Search list of monostatic ports (tx = rx), option 02 (MercuryAPI antenna search list)."""
    if not antennas or len(antennas) > 16 or any(not 1 <= a <= 0x0F for a in antennas):
        raise EncodeError(f"antennas {antennas!r} must be 1..16 ports numbered 1..15")
    pairs = b"".join(bytes((a, a)) for a in antennas)
    return encode_command(OP_SET_ANTENNA, b"\x02" + pairs)


def cmd_disable_read_filter() -> bytes:
    """Without this the module reports each tag once per session instead of on every read."""
    return encode_command(OP_SET_READER_PARAM, b"\x01\x0c\x00")


def cmd_write_tag_data(bank: int, word_address: int, data: bytes, *,
                       timeout_ms: int = 1000) -> bytes:
    """Write Tag Data (0x24) to whichever tag answers, no select filter (option 0): timeout
    (2), option (1), word address (4), memory bank (1), then the words to write."""
    if not data or len(data) % 2:
        raise EncodeError(f"tag data of {len(data)} bytes is not whole 16-bit words")
    if not 0 <= bank <= 3 or not 0 <= word_address <= 0xFFFFFFFF:
        raise EncodeError(f"bank {bank} or word address {word_address} out of range")
    if not 0 <= timeout_ms <= MAX_WRITE_TIMEOUT_MS:
        raise EncodeError(f"timeout {timeout_ms} ms outside 0..{MAX_WRITE_TIMEOUT_MS}")
    head = timeout_ms.to_bytes(2, "big") + b"\x00" + word_address.to_bytes(4, "big")
    return encode_command(OP_WRITE_TAG_DATA, head + bytes((bank,)) + data)


def cmd_lock_tag(mask: int, action: int, access_password: int, *,
                 timeout_ms: int = 1000) -> bytes:
    """Lock Tag (0x25) on whichever tag answers: timeout (2), option 0 (1: no select), the
    access password (4), then the Gen2 lock mask (2) and action (2)."""
    lock_payload(mask, action)  # validates both
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    if not 0 <= timeout_ms <= MAX_WRITE_TIMEOUT_MS:
        raise EncodeError(f"timeout {timeout_ms} ms outside 0..{MAX_WRITE_TIMEOUT_MS}")
    data = (timeout_ms.to_bytes(2, "big") + b"\x00" + access_password.to_bytes(4, "big")
            + mask.to_bytes(2, "big") + action.to_bytes(2, "big"))
    return encode_command(OP_LOCK_TAG, data)


def cmd_get_temperature() -> bytes:
    return encode_command(OP_GET_TEMPERATURE)


def parse_temperature(data: bytes) -> int:
    """The module's temperature in degrees Celsius: one signed byte."""
    if len(data) != 1:
        raise MalformedFrame(f"a temperature answer holds 1 byte, not {len(data)}")
    return int.from_bytes(data, "big", signed=True)


def cmd_start_continuous(metadata: int = DEFAULT_METADATA) -> bytes:
    """0x2F start with an embedded 0x22: configured antenna list, streaming, large population."""
    sub = bytes((OP_READ_TAG_MULTIPLE, 0x10, 0x00, 0x1B, 0x03, 0xE8)) + metadata.to_bytes(2, "big")
    # The embedded length counts the sub-command's bytes after its opcode.
    data = b"\x00\x00\x01\x22\x00\x00\x05" + bytes((len(sub) - 1,)) + sub
    return encode_command(OP_MULTI_PROTOCOL, data)


def cmd_stop_continuous() -> bytes:
    return encode_command(OP_MULTI_PROTOCOL, b"\x00\x00\x02")


def encode_tag_record(
    epc: bytes, *, rssi_dbm: int = -60, antenna: int = 1, frequency_khz: int = 915_250,
    timestamp_ms: int = 0, pc: int | None = None, metadata: int = DEFAULT_METADATA,
) -> bytes:
    """A streamed 0x22 tag record as the module sends it during continuous reading."""
    if metadata & ~_KNOWN_META or len(epc) > MAX_EPC_BYTES or len(epc) % 2:
        raise EncodeError("unsupported metadata flags or EPC length")
    pc = (len(epc) // 2) << 11 if pc is None else pc
    fields = {0x0001: b"\x01", 0x0002: rssi_dbm.to_bytes(1, "big", signed=True),
              0x0004: bytes(((antenna << 4) | antenna,)),
              0x0008: frequency_khz.to_bytes(3, "big"), 0x0010: timestamp_ms.to_bytes(4, "big"),
              0x0020: b"\x00\x00", 0x0040: b"\x05", 0x0080: b"\x00\x00", 0x0100: b"\x0f",
              0x0200: b"\x00", 0x0400: b"\x00", 0x0800: b"\x00", 0x1000: b"\x00\x00"}
    meta = b"".join(fields[bit] for bit, _ in _META_SIZES if metadata & bit)
    tag = pc.to_bytes(2, "big") + epc
    tag += gen2_crc16(tag).to_bytes(2, "big")
    data = (b"\x10\x00\x1b" + metadata.to_bytes(2, "big") + b"\x01" + meta
            + (len(tag) * 8).to_bytes(2, "big") + tag)
    return encode_response(OP_READ_TAG_MULTIPLE, STATUS_OK, data)


def parse(frame: bytes, monotonic: float = 0.0) -> TagRead | ReaderReply:
    """Turn a decoded reader->host frame into a TagRead or a ReaderReply."""
    opcode = frame[2]
    status = (frame[3] << 8) | frame[4]
    if opcode == OP_READ_TAG_MULTIPLE and status == STATUS_OK and frame[1] >= 11:
        return _parse_tag_record(frame, monotonic)
    data = frame[5:-2]
    if opcode != OP_READ_TAG_MULTIPLE:
        if opcode == OP_MULTI_PROTOCOL and status == STATUS_OK and data[:1] == b"\x02":
            return ReaderReply("event", opcode, True, status, data)  # continuous read ended
        return ReaderReply("response" if status == STATUS_OK else "error", opcode,
                           status == STATUS_OK, status, data)
    if not data:
        return ReaderReply("keepalive", opcode, status == STATUS_NO_TAGS, status, data)
    kind = "summary" if status == STATUS_OK else "error"
    return ReaderReply(kind, opcode, status == STATUS_OK, status, data)


@functools.lru_cache(maxsize=256)
def _layout(flags: int) -> tuple[int, int, int, int, bool, int]:
    """Offsets of RSSI, antenna and frequency within the metadata (-1: absent), the bytes
    before the variable-length embedded data, whether it is present, and the bytes after."""
    offsets = {0x0002: -1, 0x0004: -1, 0x0008: -1}
    before = after = 0
    variable = False
    for bit, size in _META_SIZES:
        if not flags & bit:
            continue
        if size < 0:
            variable = True
        elif variable:
            after += size
        else:
            if bit in offsets:
                offsets[bit] = before
            before += size
    return offsets[0x0002], offsets[0x0004], offsets[0x0008], before, variable, after


def _parse_tag_record(frame: bytes, monotonic: float) -> TagRead | ReaderReply:
    # Offsets are into the whole frame: data starts at 5 and the frame CRC takes the last 2.
    if frame[5] & 0x10:
        flags, rtype, meta = (frame[8] << 8) | frame[9], frame[10], 11
    else:
        flags, rtype, meta = 0, frame[8], 9
    if rtype != 0x01:
        kind = "event" if rtype == 0x02 else "summary"
        return ReaderReply(kind, OP_READ_TAG_MULTIPLE, True, 0, frame[5:-2])
    if flags & ~_KNOWN_META:
        raise MalformedFrame(f"metadata flags {flags:#06x} include fields of unknown size")
    rssi_at, antenna_at, frequency_at, before, variable, after = _layout(flags)
    end = len(frame) - 2
    pos = meta + before
    if variable:
        if pos + 2 > end:
            raise MalformedFrame("embedded data length runs past the frame")
        pos += 2 + (((frame[pos] << 8) | frame[pos + 1]) + 7) // 8 + after
    if pos + 6 > end:
        raise MalformedFrame("metadata runs past the EPC length field")
    bits = (frame[pos] << 8) | frame[pos + 1]
    tag_len = bits >> 3
    if bits & 7 or tag_len < 4 or end - pos - 2 != tag_len:
        raise MalformedFrame(f"EPC length {bits} bits does not match the "
                             f"{end - pos - 2} bytes left")
    pc = (frame[pos + 2] << 8) | frame[pos + 3]
    start, stop = pos + 4, end - 2
    # XPC words only if they fit before the tag CRC: zero-length EPCs with XI set exist.
    if pc & 0x0200 and stop - start >= 2:
        start += 2
        if frame[start - 2] & 0x80 and stop - start >= 2:
            start += 2
    if stop - start > MAX_EPC_BYTES:
        raise MalformedFrame(f"EPC of {stop - start} bytes exceeds {MAX_EPC_BYTES}")
    rssi = frame[meta + rssi_at] if rssi_at >= 0 else None
    if rssi is not None and rssi > 127:
        rssi -= 256
    antenna = frame[meta + antenna_at] & 0x0F if antenna_at >= 0 else 1
    frequency = None
    if frequency_at >= 0:
        at = meta + frequency_at
        frequency = (frame[at] << 16) | (frame[at + 1] << 8) | frame[at + 2]
    return TagRead(frame[start:stop], antenna or 1, rssi, monotonic, frequency, pc)
