"""Magic RF M100/QM100 "R200" protocol (YRM100, JRD-4035 / M5Stack UHF-RFID, R200 boards).

Owns the BB..7E frame (one layout for both directions, told apart by the Type byte), its
additive checksum, the inventory commands (multiple polling 0x27 / stop 0x28), region and power,
and the tag notification (docs/reader-protocols.md §2). Some boards use AA..DD: `frame_spec()` and
the encoders take the header and trailer bytes. The module has a single antenna port.
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
    lock_payload,
)
from reader_agent.reads import TagRead

HEADER = 0xBB
TRAILER = 0x7E
MAX_PARAM_LEN = 512
"""Largest PL the deframer waits for: tag memory reads return at most a few hundred bytes, and
a garbage header claiming up to 64 KiB must not stall the line."""
MAX_FRAME_LEN = MAX_PARAM_LEN + 7

TYPE_COMMAND = 0x00
TYPE_RESPONSE = 0x01
TYPE_NOTIFICATION = 0x02

CMD_MODULE_INFO = 0x03
CMD_SET_REGION = 0x07
CMD_SINGLE_POLL = 0x22
CMD_MULTI_POLL = 0x27
CMD_STOP_MULTI_POLL = 0x28
CMD_WRITE_MEMORY = 0x49
CMD_LOCK = 0x82
CMD_SET_POWER = 0xB6
CMD_ERROR = 0xFF

ERR_NO_TAG = 0x15
ERR_WRITE_FAILED = 0x10
ERR_ACCESS = 0x16
ERR_LOCK_FAILED = 0x13
ERR_WRITE_GEN2 = 0xB0
ERR_LOCK_GEN2 = 0xC0
"""0xB0 | e and 0xC0 | e: the tag answered a write or lock with Gen2 error e."""
GEN2_MEMORY_LOCKED = 0x04
MAX_WRITE_WORDS = 0xFFFF
ERR_COMMAND = 0x17

REGIONS = {"CN": 0x01, "NA": 0x02, "EU": 0x03, "CN800": 0x04, "KR": 0x06}
"""Agent region names -> R200 region byte (libmagicrf `module_region_t`)."""

MAX_POWER_CDBM = 2600
"""26 dBm: the M100's rated maximum output."""
MAX_POLL_ROUNDS = 0xFFFF


def checksum(type_to_last_param: Buffer) -> int:
    return sum(type_to_last_param) & 0xFF


def frame_spec(header: int = HEADER, trailer: int = TRAILER) -> FrameSpec:
    def valid(frame: bytes) -> bool:
        return frame[-1] == trailer and sum(frame[1:-2]) & 0xFF == frame[-2]

    return FrameSpec(header, 3, 2, 7, 7, MAX_FRAME_LEN, valid)


FRAME_SPEC = frame_spec()


def decode(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next BB..7E frame (either direction) in `buffer` from `offset`."""
    return hunt_frame(FRAME_SPEC, buffer, offset)


decode_command = decode


def encode_frame(ftype: int, command: int, params: bytes = b"", *,
                 header: int = HEADER, trailer: int = TRAILER) -> bytes:
    if len(params) > MAX_PARAM_LEN:
        raise EncodeError(f"parameter of {len(params)} bytes exceeds {MAX_PARAM_LEN}")
    body = bytes((ftype, command)) + len(params).to_bytes(2, "big") + params
    return bytes((header,)) + body + bytes((checksum(body), trailer))


def cmd_module_info(which: int = 0x00) -> bytes:
    return encode_frame(TYPE_COMMAND, CMD_MODULE_INFO, bytes((which,)))


def cmd_set_region(region: str | int) -> bytes:
    code = REGIONS.get(region) if isinstance(region, str) else region
    if code is None or not 0 <= code <= 0xFF:
        raise EncodeError(f"unknown region {region!r}; known: {sorted(REGIONS)}")
    return encode_frame(TYPE_COMMAND, CMD_SET_REGION, bytes((code,)))


def cmd_set_power(centi_dbm: int) -> bytes:
    if not 0 <= centi_dbm <= MAX_POWER_CDBM:
        raise EncodeError(f"power {centi_dbm} cdBm outside 0..{MAX_POWER_CDBM}")
    return encode_frame(TYPE_COMMAND, CMD_SET_POWER, centi_dbm.to_bytes(2, "big"))


def cmd_multi_poll(rounds: int = MAX_POLL_ROUNDS) -> bytes:
    """Documented 3-byte form: reserved 0x22 then the round count."""
    if not 0 <= rounds <= MAX_POLL_ROUNDS:
        raise EncodeError(f"poll rounds {rounds} outside 0..{MAX_POLL_ROUNDS}")
    return encode_frame(TYPE_COMMAND, CMD_MULTI_POLL, b"\x22" + rounds.to_bytes(2, "big"))


def cmd_stop_multi_poll() -> bytes:
    return encode_frame(TYPE_COMMAND, CMD_STOP_MULTI_POLL)


def cmd_write_memory(bank: int, word_address: int, data: bytes, *,
                     access_password: int = 0) -> bytes:
    """Write tag memory (0x49) on whichever tag answers: access password (4), memory bank
    (1), start word (2), word count (2), then the words."""
    if not data or len(data) % 2 or len(data) // 2 > MAX_WRITE_WORDS:
        raise EncodeError(f"tag data of {len(data)} bytes is not whole 16-bit words")
    if not 0 <= bank <= 3 or not 0 <= word_address <= 0xFFFF:
        raise EncodeError(f"bank {bank} or start word {word_address} out of range")
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    params = (access_password.to_bytes(4, "big") + bytes((bank,))
              + word_address.to_bytes(2, "big") + (len(data) // 2).to_bytes(2, "big") + data)
    return encode_frame(TYPE_COMMAND, CMD_WRITE_MEMORY, params)


def cmd_lock(mask: int, action: int, access_password: int) -> bytes:
    """Lock (0x82) on whichever tag answers: the access password (4), then the 20-bit Gen2
    lock payload (mask, action) right-aligned in 3 bytes."""
    payload = lock_payload(mask, action)
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    return encode_frame(TYPE_COMMAND, CMD_LOCK,
                        access_password.to_bytes(4, "big") + payload.to_bytes(3, "big"))


def encode_response(command: int, params: bytes = b"\x00") -> bytes:
    return encode_frame(TYPE_RESPONSE, command, params)


def encode_error(code: int) -> bytes:
    return encode_frame(TYPE_RESPONSE, CMD_ERROR, bytes((code,)))


def encode_notification(epc: bytes, *, rssi_dbm: int = -55, pc: int | None = None,
                        command: int = CMD_MULTI_POLL) -> bytes:
    """A tag notification: RSSI, PC, EPC, tag CRC."""
    if len(epc) > MAX_EPC_BYTES:
        raise EncodeError(f"EPC of {len(epc)} bytes exceeds {MAX_EPC_BYTES}")
    pc = (len(epc) // 2) << 11 if pc is None else pc
    tag = pc.to_bytes(2, "big") + epc
    params = rssi_dbm.to_bytes(1, "big", signed=True) + tag + gen2_crc16(tag).to_bytes(2, "big")
    return encode_frame(TYPE_NOTIFICATION, command, params)


def parse(frame: bytes, monotonic: float = 0.0) -> TagRead | ReaderReply:
    """Turn a decoded frame into a TagRead or a ReaderReply."""
    ftype, command = frame[1], frame[2]
    if ftype == TYPE_NOTIFICATION:
        size = len(frame) - 7  # PL: RSSI, PC, EPC, tag CRC
        if size < 5:
            raise MalformedFrame(f"notification of {size} bytes has no PC and CRC")
        if size - 5 > MAX_EPC_BYTES:
            raise MalformedFrame(f"EPC of {size - 5} bytes exceeds {MAX_EPC_BYTES}")
        rssi = frame[5] - 256 if frame[5] > 127 else frame[5]
        return TagRead(frame[8:-4], 1, rssi, monotonic, None, (frame[6] << 8) | frame[7])
    params = frame[5:-2]
    if ftype != TYPE_RESPONSE:
        return ReaderReply("event", command, False, ftype, params)
    if command == CMD_ERROR:
        code = params[0] if params else 0
        # "No tag" is the normal result of an empty inventory round: a keep-alive, not a fault.
        kind = "keepalive" if code == ERR_NO_TAG else "error"
        return ReaderReply(kind, command, code == ERR_NO_TAG, code, params)
    status = params[0] if len(params) == 1 else 0
    return ReaderReply("response", command, status == 0, status, params)
