"""Chafon "UHFReader18 / UHFReader288" protocol (CF-RU5102, CF-RU6402, ZK-RFID102, UR-series).

Owns the frame that opens with its own length (there is no start byte), its CRC-16/MCRF4XX sent
low byte first, the inventory command in its two forms (the bare UHFReader18 one and the
UHFReader288 one that names an antenna) and the inventory answers (docs/reader-protocols.md §4).

Unlike the other families, one inventory answer carries several tags, and one inventory may
take several frames (status 0x03: more follow). So besides `parse` the module has `parse_all`,
which returns every tag of a frame and, when the frame ends the round, a "summary" reply: the
driver's cue to start the next round, as with the R2000.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from reader_agent.protocol.framing import (
    MAX_EPC_BYTES,
    Buffer,
    DecodeResult,
    EncodeError,
    FrameSpec,
    MalformedFrame,
    ReaderReply,
    hunt_frame,
)
from reader_agent.reads import TagRead

MAX_FRAME_LEN = 0xFF + 1
"""Len is one byte counting the bytes after it, so no frame exceeds 256 bytes."""
MIN_COMMAND_LEN = 5
"""Len, Adr, Cmd and the two CRC bytes."""
MIN_RESPONSE_LEN = 6
"""Len, Adr, reCmd, Status and the two CRC bytes."""
MAX_COMMAND_DATA = 0xFF - 4
MAX_RESPONSE_DATA = 0xFF - 5

BROADCAST = 0xFF
READER_ADDRESS = 0x00
"""Factory address of a Chafon reader; its answers carry its own address."""

CMD_ILLEGAL = 0x00
"""reCmd of the answer to a command the reader did not understand (status 0xFE)."""
CMD_INVENTORY = 0x01
CMD_WRITE_EPC = 0x04
CMD_GET_READER_INFO = 0x21

STATUS_OK = 0x00
STATUS_DONE = 0x01
STATUS_SCAN_TIMEOUT = 0x02
STATUS_MORE = 0x03
STATUS_BUFFER_FULL = 0x04
STATUS_PASSWORD = 0x05
STATUS_ANTENNA = 0xF8
STATUS_OPERAND_LENGTH = 0xFD
STATUS_ILLEGAL = 0xFE
STATUS_POOR_COMMUNICATION = 0xFA
STATUS_NO_TAG = 0xFB
STATUS_TAG_ERROR = 0xFC
"""The tag answered with a Gen2 error code, which follows in the data (0x04: memory locked)."""
INVENTORY_STATUSES = frozenset({STATUS_DONE, STATUS_SCAN_TIMEOUT, STATUS_MORE,
                                STATUS_BUFFER_FULL})
"""Statuses of an inventory answer that carries tags; all but STATUS_MORE end the round."""

MAX_ANTENNAS = 4
ANTENNA_MASKS = {0x01: 1, 0x02: 2, 0x04: 3, 0x08: 4}
"""The Ant byte of a UHFReader288 answer: one bit per antenna port."""
ANTENNA_SELECT = 0x80
"""The Ant byte of a UHFReader288 inventory command: 0x80 + port - 1."""

DEFAULT_Q_BYTE = 0x0F
DEFAULT_SCAN_TIME = 0x14
"""In units of 100 ms: 2 s, the value public drivers send."""
MAX_RSSI = 0xFF

_REFLECT = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
"""Bit-reversal of every byte: turns the reflected MCRF4XX CRC into binascii's CCITT one."""


def crc16(data: Buffer) -> int:
    """CRC-16/MCRF4XX (reflected polynomial 0x8408, preset 0xFFFF, no final XOR), computed in
    C: reflecting every input byte and the result turns it into binascii.crc_hqx."""
    crc = binascii.crc_hqx(bytes(data).translate(_REFLECT), 0xFFFF)
    return (_REFLECT[crc & 0xFF] << 8) | _REFLECT[crc >> 8]


def _crc_ok(frame: bytes) -> bool:
    # A reflected CRC with no final XOR, followed by itself low byte first, leaves remainder 0.
    return not binascii.crc_hqx(frame.translate(_REFLECT), 0xFFFF)


RESPONSE_SPEC = FrameSpec(None, 0, 1, 1, MIN_RESPONSE_LEN, MAX_FRAME_LEN, _crc_ok)
COMMAND_SPEC = FrameSpec(None, 0, 1, 1, MIN_COMMAND_LEN, MAX_FRAME_LEN, _crc_ok)


def decode(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next reader->host frame in `buffer` from `offset` (every offset is a candidate)."""
    return hunt_frame(RESPONSE_SPEC, buffer, offset)


def decode_command(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """Next host->reader command frame (the simulator's receiver)."""
    return hunt_frame(COMMAND_SPEC, buffer, offset)


def _seal(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "little")


def encode_command(address: int, command: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_COMMAND_DATA:
        raise EncodeError(f"command data of {len(data)} bytes exceeds {MAX_COMMAND_DATA}")
    return _seal(bytes((len(data) + 4, address, command)) + data)


def encode_response(address: int, command: int, status: int, data: bytes = b"") -> bytes:
    if len(data) > MAX_RESPONSE_DATA:
        raise EncodeError(f"response data of {len(data)} bytes exceeds {MAX_RESPONSE_DATA}")
    return _seal(bytes((len(data) + 5, address, command, status)) + data)


def encode_error(status: int = STATUS_ILLEGAL, address: int = READER_ADDRESS) -> bytes:
    """The answer to an unknown command or one with a bad CRC (reCmd 0x00)."""
    return encode_response(address, CMD_ILLEGAL, status)


def cmd_get_reader_info(address: int = BROADCAST) -> bytes:
    return encode_command(address, CMD_GET_READER_INFO)


def cmd_inventory_18(address: int = BROADCAST) -> bytes:
    """The UHFReader18 EPC inventory: no data; the answer has no antenna and no RSSI."""
    return encode_command(address, CMD_INVENTORY)


def cmd_inventory(antenna: int = 1, *, address: int = BROADCAST, q_byte: int = DEFAULT_Q_BYTE,
                  session: int = 0, target: int = 0,
                  scan_time: int = DEFAULT_SCAN_TIME) -> bytes:
    """The UHFReader288 inventory on one antenna, without a mask or TID read: Q byte, session,
    mask bank (EPC), mask address (2), mask length 0, target, antenna, scan time (100 ms)."""
    if not 1 <= antenna <= MAX_ANTENNAS:
        raise EncodeError(f"antenna {antenna} outside 1..{MAX_ANTENNAS}")
    if session not in (0, 1, 2, 3, 0xFF) or target not in (0, 1):
        raise EncodeError(f"session {session} must be 0..3 or 255 and target {target} 0 or 1")
    if not 0 <= q_byte <= 0xFF or not 1 <= scan_time <= 0xFF:
        raise EncodeError(f"Q byte {q_byte} or scan time {scan_time} out of range")
    data = bytes((q_byte, session, 0x01, 0x00, 0x00, 0x00, target,
                  ANTENNA_SELECT + antenna - 1, scan_time))
    return encode_command(address, CMD_INVENTORY, data)


def cmd_write_epc(epc: bytes, *, access_password: int = 0,
                  address: int = BROADCAST) -> bytes:
    """Write EPC (0x04) to whichever tag answers: the EPC's length in words (1), the access
    password (4), then the EPC. The reader writes the PC word's length itself."""
    if not epc or len(epc) % 2 or len(epc) > MAX_EPC_BYTES:
        raise EncodeError(f"an EPC of {len(epc)} bytes is not 1..31 whole words")
    if not 0 <= access_password <= 0xFFFFFFFF:
        raise EncodeError("the access password is 32 bits")
    data = bytes((len(epc) // 2,)) + access_password.to_bytes(4, "big") + epc
    return encode_command(address, CMD_WRITE_EPC, data)


def encode_inventory(tags: Sequence[tuple[bytes, int]], *, antenna: int = 1,
                     status: int = STATUS_DONE, address: int = READER_ADDRESS) -> bytes:
    """A UHFReader288 inventory answer: Ant bit, Num, then EPCLen, EPC, RSSI per tag."""
    if not 1 <= antenna <= MAX_ANTENNAS:
        raise EncodeError(f"antenna {antenna} outside 1..{MAX_ANTENNAS}")
    data = bytearray((1 << (antenna - 1), len(tags)))
    for epc, rssi in tags:
        _check_epc(epc)
        if not 0 <= rssi <= MAX_RSSI:
            raise EncodeError(f"RSSI {rssi} outside 0..{MAX_RSSI}")
        data += bytes((len(epc),)) + epc + bytes((rssi,))
    return encode_response(address, CMD_INVENTORY, status, bytes(data))


def encode_inventory_18(epcs: Sequence[bytes], *, status: int = STATUS_DONE,
                        address: int = READER_ADDRESS) -> bytes:
    """A UHFReader18 inventory answer: Num, then EPCLen and EPC per tag."""
    data = bytearray((len(epcs),))
    for epc in epcs:
        _check_epc(epc)
        data += bytes((len(epc),)) + epc
    return encode_response(address, CMD_INVENTORY, status, bytes(data))


def encode_round(tags: Sequence[tuple[bytes, int]], *, antenna: int = 1,
                 address: int = READER_ADDRESS, reader18: bool = False) -> list[bytes]:
    """A whole inventory round as the reader sends it: as many tags per frame as fit, status
    0x03 on every frame but the last, which has status 0x01 (and may hold no tag). With
    `reader18`, in the UHFReader18 layout (no antenna, no RSSI)."""
    overhead, per_tag = (1, 1) if reader18 else (2, 2)  # Num [+ Ant]; EPCLen [+ RSSI]

    def frame(batch: list[tuple[bytes, int]], status: int) -> bytes:
        if reader18:
            return encode_inventory_18([epc for epc, _ in batch], status=status,
                                       address=address)
        return encode_inventory(batch, antenna=antenna, status=status, address=address)

    frames: list[bytes] = []
    batch: list[tuple[bytes, int]] = []
    size = overhead
    for epc, rssi in tags:
        if size + len(epc) + per_tag > MAX_RESPONSE_DATA:
            frames.append(frame(batch, STATUS_MORE))
            batch, size = [], overhead
        batch.append((epc, rssi))
        size += len(epc) + per_tag
    frames.append(frame(batch, STATUS_DONE))
    return frames


def _check_epc(epc: bytes) -> None:
    if len(epc) > MAX_EPC_BYTES:
        raise EncodeError(f"EPC of {len(epc)} bytes exceeds {MAX_EPC_BYTES}")


def _tags_288(data: bytes) -> list[tuple[bytes, int, int]] | None:
    """(EPC, antenna, RSSI) per tag if `data` is exactly a UHFReader288 answer, else None."""
    if len(data) < 2 or data[0] not in ANTENNA_MASKS:
        return None
    antenna, count, pos, end = ANTENNA_MASKS[data[0]], data[1], 2, len(data)
    tags = []
    for _ in range(count):
        if pos >= end:
            return None
        stop = pos + 1 + data[pos]
        if stop >= end:  # the RSSI byte follows the EPC
            return None
        tags.append((data[pos + 1 : stop], antenna, data[stop]))
        pos = stop + 1
    return tags if pos == end else None


def _tags_18(data: bytes) -> list[bytes] | None:
    """The EPCs if `data` is exactly a UHFReader18 answer, else None."""
    if not data:
        return None
    count, pos, end = data[0], 1, len(data)
    epcs = []
    for _ in range(count):
        if pos >= end:
            return None
        stop = pos + 1 + data[pos]
        if stop > end:
            return None
        epcs.append(data[pos + 1 : stop])
        pos = stop
    return epcs if pos == end else None


def parse_all(frame: bytes, monotonic: float = 0.0) -> list[TagRead | ReaderReply]:
    """Every message of a decoded frame: each tag of an inventory answer, then a "summary"
    reply if the answer ends the round; any other frame gives one ReaderReply.

    The two inventory layouts are told apart by which one accounts for every data byte
    exactly, the UHFReader288 one (Ant, Num, tags with RSSI) tried first."""
    command, status, data = frame[2], frame[3], frame[4:-2]
    if command != CMD_INVENTORY or status not in INVENTORY_STATUSES:
        ok = status == STATUS_OK
        return [ReaderReply("response" if ok else "error", command, ok, status, data)]
    out: list[TagRead | ReaderReply] = []
    tags = _tags_288(data)
    if tags is not None:
        for epc, antenna, _rssi in tags:  # relative strength, not dBm: not reported as RSSI
            if len(epc) > MAX_EPC_BYTES:
                raise MalformedFrame(f"EPC of {len(epc)} bytes exceeds {MAX_EPC_BYTES}")
            out.append(TagRead(epc, antenna, None, monotonic))
    else:
        epcs = _tags_18(data)
        if epcs is None:
            raise MalformedFrame(f"inventory data of {len(data)} bytes does not match its "
                                 "tag count and EPC lengths")
        for epc in epcs:
            if len(epc) > MAX_EPC_BYTES:
                raise MalformedFrame(f"EPC of {len(epc)} bytes exceeds {MAX_EPC_BYTES}")
            out.append(TagRead(epc, 1, None, monotonic))
    if status != STATUS_MORE:
        out.append(ReaderReply("summary", command, True, status, b""))
    return out


def parse(frame: bytes, monotonic: float = 0.0) -> TagRead | ReaderReply:
    """The one message of a frame: a TagRead for an answer holding a single tag that does not
    end the round, else a ReaderReply. An answer holding several tags (or a tag and the end of
    the round) is a ReaderReply of kind "inventory": use `parse_all` for its tags."""
    messages = parse_all(frame, monotonic)
    if len(messages) == 1:
        return messages[0]
    return ReaderReply("inventory", frame[2], True, frame[3], frame[4:-2])
