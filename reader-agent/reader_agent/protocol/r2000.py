"""Impinj Indy R2000 "reader serial interface protocol" (header 0xA0; Invelion, Rodinbell and
many white-label fixed readers).

Owns the A0 frame (same layout both ways), its two's-complement checksum, the commands an agent
needs (reset, version, work antenna, output power, frequency region, real-time inventory 0x89)
and the three shapes of 0x89 replies (docs/reader-protocols.md §3). The reader runs one inventory
command at a time and ends it with a summary frame, so "continuous" reading is the driver
issuing the next 0x89 after each summary.
"""

from __future__ import annotations

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
)
from reader_agent.reads import TagRead

HEAD = 0xA0
MAX_LEN_FIELD = 0xFF
"""The Len byte is one byte, so no frame exceeds 257 bytes; listed for symmetry with others."""
MAX_FRAME_LEN = MAX_LEN_FIELD + 2
BROADCAST = 0xFF

CMD_RESET = 0x70
CMD_GET_VERSION = 0x72
CMD_SET_WORK_ANTENNA = 0x74
CMD_SET_OUTPUT_POWER = 0x76
CMD_SET_REGION = 0x78
CMD_GET_TEMPERATURE = 0x7B
CMD_WRITE = 0x82
CMD_LOCK = 0x83
CMD_REALTIME_INVENTORY = 0x89
INVENTORY_COMMANDS = frozenset({0x89, 0x8A, 0x8B})

CODE_SUCCESS = 0x10
CODE_NO_TAG = 0x36
CODE_ANTENNA_MISSING = 0x22
CODE_WRITE_ERROR = 0x33
CODE_LOCK_ERROR = 0x34
CODE_ACCESS_FAIL = 0x37
CODE_PASSWORD = 0x40

LOCK_AREAS = {"user": 1, "tid": 2, "epc": 3, "access": 4, "kill": 5}
"""The 0x83 command names one memory area per command, by these codes (not Gen2 bits)."""
LOCK_OPEN, LOCK_LOCK, LOCK_PERMA_OPEN, LOCK_PERMA_LOCK = 0, 1, 2, 3
MAX_WRITE_WORDS = (MAX_LEN_FIELD - 3 - 7) // 2
"""Words one 0x82 command carries: its Len byte bounds the frame."""

REGIONS = {"NA": (0x01, 7, 59), "EU": (0x02, 0, 6), "CN": (0x03, 43, 53)}
"""Agent region names -> (region, first, last frequency index) for command 0x78."""

MAX_POWER_DBM = 33
MAX_ANTENNAS = 4
SUMMARY_LEN = 0x0A
ERROR_LEN = 0x04


def check(frame_without_check: Buffer) -> int:
    return (-sum(frame_without_check)) & 0xFF


FRAME_SPEC = FrameSpec(HEAD, 1, 1, 2, 5, MAX_FRAME_LEN, lambda f: sum(f) & 0xFF == 0)


def decode(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next A0 frame (either direction) in `buffer` from `offset`."""
    return hunt_frame(FRAME_SPEC, buffer, offset)


decode_command = decode


def encode_frame(address: int, command: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_LEN_FIELD - 3:
        raise EncodeError(f"data of {len(data)} bytes exceeds {MAX_LEN_FIELD - 3}")
    frame = bytes((HEAD, len(data) + 3, address, command)) + data
    return frame + bytes((check(frame),))


def cmd_reset(address: int = BROADCAST) -> bytes:
    return encode_frame(address, CMD_RESET)


def cmd_get_version(address: int = BROADCAST) -> bytes:
    return encode_frame(address, CMD_GET_VERSION)


def cmd_set_work_antenna(antenna: int, address: int = BROADCAST) -> bytes:
    if not 1 <= antenna <= MAX_ANTENNAS:
        raise EncodeError(f"antenna {antenna} outside 1..{MAX_ANTENNAS}")
    return encode_frame(address, CMD_SET_WORK_ANTENNA, bytes((antenna - 1,)))


def cmd_set_output_power(dbm: int, address: int = BROADCAST) -> bytes:
    if not 0 <= dbm <= MAX_POWER_DBM:
        raise EncodeError(f"output power {dbm} dBm outside 0..{MAX_POWER_DBM}")
    return encode_frame(address, CMD_SET_OUTPUT_POWER, bytes((dbm,)))


def cmd_set_region(region: str, address: int = BROADCAST) -> bytes:
    if region not in REGIONS:
        raise EncodeError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    return encode_frame(address, CMD_SET_REGION, bytes(REGIONS[region]))


def cmd_realtime_inventory(repeat: int = 1, address: int = BROADCAST) -> bytes:
    if not 1 <= repeat <= 0xFF:
        raise EncodeError(f"repeat {repeat} outside 1..255")
    return encode_frame(address, CMD_REALTIME_INVENTORY, bytes((repeat,)))


def cmd_get_temperature(address: int = BROADCAST) -> bytes:
    return encode_frame(address, CMD_GET_TEMPERATURE)


def parse_temperature(data: bytes) -> int:
    """The reader's temperature in degrees Celsius: a sign byte (0 below zero, 1 above) and
    the magnitude."""
    if len(data) != 2 or data[0] > 1:
        raise MalformedFrame(f"a temperature answer is a sign and a value, not {data.hex()}")
    return data[1] if data[0] else -data[1]


def encode_temperature(celsius: int, address: int = 0x01) -> bytes:
    if not -0xFF <= celsius <= 0xFF:
        raise EncodeError(f"temperature {celsius} does not fit a sign and a byte")
    return encode_frame(address, CMD_GET_TEMPERATURE, bytes((celsius >= 0, abs(celsius))))


def cmd_write(bank: int, word_address: int, data: bytes, *, access_password: int = 0,
              address: int = BROADCAST) -> bytes:
    """Write (0x82) to whichever tag answers: access password (4), memory bank (1), start word
    (1), word count (1), then the words."""
    if not data or len(data) % 2 or len(data) // 2 > MAX_WRITE_WORDS:
        raise EncodeError(f"tag data of {len(data)} bytes is not 1..{MAX_WRITE_WORDS} words")
    if not 0 <= bank <= 3 or not 0 <= word_address <= 0xFF:
        raise EncodeError(f"bank {bank} or start word {word_address} out of range")
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    head = access_password.to_bytes(4, "big") + bytes((bank, word_address, len(data) // 2))
    return encode_frame(address, CMD_WRITE, head + data)


def cmd_lock(area: str, lock_type: int, access_password: int, *,
             address: int = BROADCAST) -> bytes:
    """Lock (0x83) one memory area of whichever tag answers: access password (4), the area's
    code (1) and the lock type (1: open, lock, permanently open, permanently locked)."""
    if area not in LOCK_AREAS or not LOCK_OPEN <= lock_type <= LOCK_PERMA_LOCK:
        raise EncodeError(f"lock area {area!r} or type {lock_type} unknown")
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    return encode_frame(address, CMD_LOCK,
                        access_password.to_bytes(4, "big") + bytes((LOCK_AREAS[area], lock_type)))


def encode_access_result(command: int, epc: bytes, code: int = CODE_SUCCESS, *,
                         antenna: int = 1, address: int = 0x01) -> bytes:
    """A write or lock answer naming the tag it reached: tag count (2), data length (1),
    PC, EPC and tag CRC, the tag's result code, frequency and antenna (1), operation count."""
    pc = ((len(epc) // 2) << 11).to_bytes(2, "big")
    tag = pc + epc + gen2_crc16(pc + epc).to_bytes(2, "big")
    data = b"\x00\x01" + bytes((len(tag),)) + tag + bytes((code, antenna - 1, 1))
    return encode_frame(address, command, data)


def access_result(data: bytes) -> int:
    """The result code of a write or lock answer: its one byte when no tag was reached, else
    the byte after the tag (see `encode_access_result`)."""
    if len(data) == 1:
        return data[0]
    if len(data) < 3 or len(data) != data[2] + 6:
        raise MalformedFrame(f"access answer of {len(data)} bytes does not match its data "
                             "length")
    return data[-3]


def frequency_khz(index: int) -> int:
    """Frequency table of the datasheet: 0-6 ETSI from 865.0 MHz, 7-59 FCC from 902.0 MHz."""
    return 865_000 + 500 * index if index < 7 else 902_000 + 500 * (index - 7)


def rssi_dbm(raw: int) -> int:
    return raw - 129


def encode_tag(epc: bytes, *, antenna: int = 1, rssi: int = -60, freq_index: int = 10,
               pc: int | None = None, address: int = 0x01) -> bytes:
    """A 0x89 tag frame as the reader sends it."""
    if len(epc) > MAX_EPC_BYTES or not 1 <= antenna <= MAX_ANTENNAS:
        raise EncodeError("EPC too long or antenna out of range")
    pc = (len(epc) // 2) << 11 if pc is None else pc
    data = bytes(((freq_index << 2) | (antenna - 1),)) + pc.to_bytes(2, "big") + epc
    return encode_frame(address, CMD_REALTIME_INVENTORY, data + bytes(((rssi + 129) & 0xFF,)))


def encode_summary(antenna: int, read_rate: int, total_reads: int, address: int = 0x01) -> bytes:
    data = bytes((antenna - 1,)) + read_rate.to_bytes(2, "big") + total_reads.to_bytes(4, "big")
    return encode_frame(address, CMD_REALTIME_INVENTORY, data)


def encode_code(command: int, code: int = CODE_SUCCESS, address: int = 0x01) -> bytes:
    return encode_frame(address, command, bytes((code,)))


def parse(frame: bytes, monotonic: float = 0.0) -> TagRead | ReaderReply:
    """Turn a decoded frame into a TagRead or a ReaderReply."""
    length, command = frame[1], frame[3]
    if command in INVENTORY_COMMANDS:
        if length == SUMMARY_LEN:
            return ReaderReply("summary", command, True, CODE_SUCCESS, frame[4:-1])
        if length & 1:
            if length < 7:
                raise MalformedFrame(f"tag frame Len {length} leaves no room for PC and RSSI")
            if length - 7 > MAX_EPC_BYTES:
                raise MalformedFrame(f"EPC of {length - 7} bytes exceeds {MAX_EPC_BYTES}")
            freq_ant = frame[4]
            index = freq_ant >> 2
            khz = 865_000 + 500 * index if index < 7 else 902_000 + 500 * (index - 7)
            return TagRead(frame[7:-2], (freq_ant & 0x03) + 1, frame[-2] - 129, monotonic,
                           khz, (frame[5] << 8) | frame[6])
    data = frame[4:-1]
    if length == ERROR_LEN:
        code = data[0]
        ok = code == CODE_SUCCESS
        return ReaderReply("response" if ok else "error", command, ok, code, data)
    return ReaderReply("response", command, True, CODE_SUCCESS, data)
