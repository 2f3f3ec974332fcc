"""LLRP 1.1 (EPCglobal Low Level Reader Protocol) for fixed readers: Impinj Speedway/R700,
Zebra FX-series, over TCP 5084 or TLS 5085 (docs/reader-protocols.md §6).

Every message is encoded and, outside the hot path, decoded by pyllrp, whose classes are
generated from the LLRP XML definition (with Impinj's extensions), so the driver and the
simulator speak the same messages from one source. Tag reports are the exception: pyllrp
decodes about 7,000 tag reports a second (bitstring, bit by bit), a reader streams up to 1,100,
and a Pi is several times slower than the machine that was measured. `parse_report` walks
RO_ACCESS_REPORT with `struct` instead; tests check it against pyllrp's decoder on generated
and hostile reports.

Framing: a 10-byte header (3 reserved bits, 3 version bits, a 10-bit message type, a 32-bit
length counting the header, a 32-bit message ID) and no checksum: TCP carries integrity. A
header that breaks the rules (reserved bits set, another version, unknown type, implausible
length) means the byte stream lost its place; a TCP client cannot find it again, so the driver
closes the connection. `decode` hunts byte by byte instead, for captures a field engineer
copied by hand, which may hold stray bytes.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterable, Sequence
from typing import Any, Final, NamedTuple

import bitstring
from pyllrp import pyllrp as lib  # type: ignore[import-untyped]  # MIT; no type hints

from reader_agent.protocol.framing import (
    MAX_EPC_BYTES,
    Buffer,
    DecodeResult,
    EncodeError,
    MalformedFrame,
)
from reader_agent.reads import TagRead

VERSION: Final = 1
HEADER_LEN: Final = 10
MAX_MESSAGE_LEN: Final = 4 * 1024 * 1024
"""Largest message the agent accepts. A report of 1,000 tags with every field is about 60 KB;
a header claiming more is a lost stream, not a report, and must not make the driver wait for
gigabytes."""
PORT: Final = 5084
TLS_PORT: Final = 5085

GET_READER_CAPABILITIES: Final = 1
GET_READER_CONFIG: Final = 2
SET_READER_CONFIG: Final = 3
CLOSE_CONNECTION_RESPONSE: Final = 4
GET_READER_CAPABILITIES_RESPONSE: Final = 11
GET_READER_CONFIG_RESPONSE: Final = 12
SET_READER_CONFIG_RESPONSE: Final = 13
CLOSE_CONNECTION: Final = 14
ADD_ROSPEC: Final = 20
DELETE_ROSPEC: Final = 21
START_ROSPEC: Final = 22
STOP_ROSPEC: Final = 23
ENABLE_ROSPEC: Final = 24
DISABLE_ROSPEC: Final = 25
ADD_ACCESSSPEC: Final = 40
DELETE_ACCESSSPEC: Final = 41
ENABLE_ACCESSSPEC: Final = 42
DISABLE_ACCESSSPEC: Final = 43
ADD_ROSPEC_RESPONSE: Final = 30
DELETE_ROSPEC_RESPONSE: Final = 31
ENABLE_ROSPEC_RESPONSE: Final = 34
RO_ACCESS_REPORT: Final = 61
KEEPALIVE: Final = 62
READER_EVENT_NOTIFICATION: Final = 63
KEEPALIVE_ACK: Final = 72
ERROR_MESSAGE: Final = 100
CUSTOM_MESSAGE: Final = 1023

MESSAGE_TYPES: Final = frozenset(k for k in lib._MessagePackUnpackLookup if isinstance(k, int))
"""Message types pyllrp knows (LLRP 1.1 plus CUSTOM_MESSAGE): anything else is a lost stream."""

# Parameter types of a tag report (LLRP 1.1 §13.2.3 and §16.2.7.3).
P_TAG_REPORT_DATA: Final = 240
P_EPC_DATA: Final = 241
TV_ANTENNA_ID: Final = 1
TV_FIRST_SEEN_UTC: Final = 2
TV_PEAK_RSSI: Final = 6
TV_EPC_96: Final = 13
TV_C1G2_PC: Final = 12
TV_LENGTHS: Final = {1: 3, 2: 9, 3: 9, 4: 9, 5: 9, 6: 2, 7: 3, 8: 3, 9: 5, 10: 3, 11: 3, 12: 3,
                     13: 13, 14: 3, 15: 3, 16: 5, 17: 3, 18: 5, 19: 3, 20: 3}
"""Whole length (type byte included) of each TV-encoded parameter: a TV parameter carries no
length field, so an unknown one ends the parse (pyllrp's table lacks 15, 19 and 20)."""

STATUS_SUCCESS: Final = 0
CONNECTION_SUCCESS: Final = 0
CONNECTION_CLIENT_EXISTS: Final = 2
ANTENNA_DISCONNECTED: Final = 0
ANTENNA_CONNECTED: Final = 1
ROSPEC_STARTED: Final = 0
ROSPEC_ENDED: Final = 1

# Tag access (LLRP 1.1 §12 and §15.2.1.3): an AccessSpec of C1G2Write / C1G2Lock OpSpecs.
OP_SUCCESS: Final = 0
WRITE_MEMORY_LOCKED: Final = 2
"""C1G2WriteOpSpecResult: Tag_Memory_Locked_Error."""
WRITE_RESULTS: Final = {1: "tag memory overrun", 2: "tag memory locked",
                        3: "insufficient power (move the tag closer)",
                        4: "non-specific tag error", 5: "no response from the tag",
                        6: "non-specific reader error"}
LOCK_RESULTS: Final = {1: "insufficient power (move the tag closer)",
                       2: "non-specific tag error (a wrong access password, or locked)",
                       3: "no response from the tag", 4: "non-specific reader error"}
LOCK_READ_WRITE: Final = 0
"""C1G2LockPrivilege Read_Write: writes (and for the passwords, reads) need the password."""
LOCK_UNLOCK: Final = 3
LOCK_FIELDS: Final = {1 << 9: 0, 1 << 7: 1, 1 << 5: 2, 1 << 3: 3, 1 << 1: 4}
"""The lock bit of each Gen2 area (`framing.LOCK_*`) -> its C1G2LockDataField: kill password,
access password, EPC, TID, user memory."""
EPC_BIT_POINTER: Final = 32
"""Bit address of the EPC in the EPC bank (after StoredCRC and PC): where a target matches."""

_HEADER = struct.Struct("!HII")
_TLV = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_DECODE_ERRORS = (AssertionError, KeyError, IndexError, ValueError, TypeError, AttributeError,
                  UnicodeDecodeError, bitstring.Error)
"""What pyllrp raises on bytes it cannot read (it checks with assert and table lookups)."""


class Header(NamedTuple):
    version: int
    type: int
    length: int
    message_id: int


class Reply(NamedTuple):
    """A decoded non-report message: its type, ID and the pyllrp object."""

    type: int
    message_id: int
    message: Any

    @property
    def name(self) -> str:
        return str(self.message.__class__.__name__).removesuffix("_Message")


def header(buffer: Buffer, offset: int = 0) -> Header:
    """The header at `offset` (the caller made sure 10 bytes are there)."""
    word, length, message_id = _HEADER.unpack_from(buffer, offset)
    return Header((word >> 10) & 0x7, word & 0x3FF, length, message_id)


def header_problem(head: Header, reserved_bits: int = 0) -> str | None:
    """Why a header cannot start a message, or None."""
    if reserved_bits:
        return "reserved bits set"
    if head.version != VERSION:
        return f"LLRP version {head.version}, not {VERSION}"
    if head.type not in MESSAGE_TYPES:
        return f"unknown message type {head.type}"
    if not HEADER_LEN <= head.length <= MAX_MESSAGE_LEN:
        return f"message length {head.length} outside {HEADER_LEN}..{MAX_MESSAGE_LEN}"
    return None


def decode(buffer: Buffer, offset: int = 0) -> DecodeResult:
    """The next message from `offset`, hunting byte by byte past bytes that cannot start one."""
    pos, end = offset, len(buffer)
    while end - pos >= HEADER_LEN:
        head = header(buffer, pos)
        if header_problem(head, buffer[pos] & 0xE0) is None:
            if end - pos < head.length:
                return DecodeResult(pos - offset, garbage=pos - offset)
            frame = bytes(buffer[pos : pos + head.length])
            return DecodeResult(pos - offset + head.length, frame, pos - offset)
        pos += 1
    return DecodeResult(pos - offset, garbage=pos - offset)


class MessageStream:
    """Whole messages out of TCP chunks; a header that breaks the rules raises MalformedFrame
    (the connection must be closed: without a start byte or a checksum nothing re-aligns it)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.messages = 0

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        out: list[bytes] = []
        buffer, pos = self._buffer, 0
        while len(buffer) - pos >= HEADER_LEN:
            head = header(buffer, pos)
            problem = header_problem(head, buffer[pos] & 0xE0)
            if problem is not None:
                raise MalformedFrame(f"LLRP stream out of step: {problem}")
            if len(buffer) - pos < head.length:
                break
            out.append(bytes(buffer[pos : pos + head.length]))
            pos += head.length
        del buffer[:pos]
        self.messages += len(out)
        return out

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def clear(self) -> None:
        self._buffer.clear()


# -- the hot path: tag reports --------------------------------------------------------------


def _tag_report(frame: bytes, pos: int, end: int, monotonic: float) -> TagRead:
    """One TagReportData parameter's body, frame[pos:end]."""
    epc: bytes | None = None
    antenna = 0
    rssi: int | None = None
    first_seen: int | None = None
    pc: int | None = None
    while pos < end:
        kind = frame[pos]
        if kind & 0x80:
            kind &= 0x7F
            size = TV_LENGTHS.get(kind)
            if size is None:
                raise MalformedFrame(f"unknown TV parameter {kind} in a tag report")
            if pos + size > end:
                raise MalformedFrame(f"TV parameter {kind} overruns its tag report")
            if kind == TV_EPC_96:
                epc = frame[pos + 1 : pos + 13]
            elif kind == TV_ANTENNA_ID:
                antenna = _U16.unpack_from(frame, pos + 1)[0]
            elif kind == TV_PEAK_RSSI:
                rssi = frame[pos + 1] - 256 if frame[pos + 1] > 127 else frame[pos + 1]
            elif kind == TV_FIRST_SEEN_UTC:
                first_seen = _U64.unpack_from(frame, pos + 1)[0]
            elif kind == TV_C1G2_PC:
                pc = _U16.unpack_from(frame, pos + 1)[0]
            pos += size
            continue
        if pos + 4 > end:
            raise MalformedFrame("truncated parameter header in a tag report")
        kind, size = _TLV.unpack_from(frame, pos)
        kind &= 0x3FF
        if size < 4 or pos + size > end:
            raise MalformedFrame(f"parameter {kind} of length {size} overruns its tag report")
        if kind == P_EPC_DATA:
            if size < 6:
                raise MalformedFrame("EPCData without its bit count")
            bits = _U16.unpack_from(frame, pos + 4)[0]
            if bits % 8 or bits // 8 != size - 6:
                raise MalformedFrame(f"EPCData of {bits} bits in {size - 6} bytes")
            epc = frame[pos + 6 : pos + size]
        pos += size  # AirProtocolTagData, OpSpec results and Custom: not needed here
    if epc is None:
        raise MalformedFrame("tag report without an EPC")
    if not epc or len(epc) > MAX_EPC_BYTES:
        raise MalformedFrame(f"EPC of {len(epc)} bytes outside 1..{MAX_EPC_BYTES}")
    return TagRead(epc, antenna, rssi, monotonic, None, pc, first_seen)


def parse_report(frame: bytes, monotonic: float = 0.0) -> list[TagRead]:
    """The tag reads of one RO_ACCESS_REPORT (header included), in the order reported.

    Antenna 0 means the reader did not say (the content selector left it out); first-seen time
    is the reader's UTC clock in microseconds, None when not reported."""
    end = len(frame)
    pos = HEADER_LEN
    reads: list[TagRead] = []
    while pos < end:
        if frame[pos] & 0x80:
            raise MalformedFrame(f"TV parameter {frame[pos] & 0x7F} at the top of a report")
        if pos + 4 > end:
            raise MalformedFrame("truncated parameter header in a report")
        kind, size = _TLV.unpack_from(frame, pos)
        kind &= 0x3FF
        if size < 4 or pos + size > end:
            raise MalformedFrame(f"parameter {kind} of length {size} overruns the report")
        if kind == P_TAG_REPORT_DATA:
            reads.append(_tag_report(frame, pos + 4, pos + size, monotonic))
        pos += size  # RFSurveyReportData and Custom parameters carry no tag reads
    return reads


# -- everything else: pyllrp --------------------------------------------------------------


def decode_message(frame: bytes) -> Reply:
    """Any message through pyllrp (slow: not for tag reports in bulk)."""
    head = header(frame)
    problem = header_problem(head, frame[0] & 0xE0)
    if problem is None and head.length != len(frame):
        problem = f"header says {head.length} bytes, the frame has {len(frame)}"
    if problem is not None:
        raise MalformedFrame(problem)
    try:
        message = lib.UnpackMessage(bitstring.ConstBitStream(bytes=frame))
    except _DECODE_ERRORS as exc:
        raise MalformedFrame(f"LLRP {head.type}: {type(exc).__name__}: "
                             f"{str(exc)[:80]}") from None
    return Reply(head.type, head.message_id, message)


def encode(message: Any) -> bytes:
    """A pyllrp message object as bytes (pyllrp checks fields and parameter order)."""
    try:
        return bytes(lib.PackMessage(message).tobytes())
    except _DECODE_ERRORS as exc:
        raise EncodeError(f"cannot encode {type(message).__name__}: {exc}") from None


def status_of(message: Any) -> tuple[int, str]:
    """(status code, description) of a response's LLRPStatus; (-1, ...) when it has none."""
    status = message.getFirstParameterByClass(lib.LLRPStatus_Parameter)
    if status is None:
        return -1, "no LLRPStatus in the response"
    return int(status.StatusCode), str(status.ErrorDescription)


def response_type(message_type: int) -> int:
    """The type of the response to a request type (LLRP numbers them 10 apart, mostly)."""
    return {GET_READER_CAPABILITIES: GET_READER_CAPABILITIES_RESPONSE,
            GET_READER_CONFIG: GET_READER_CONFIG_RESPONSE,
            SET_READER_CONFIG: SET_READER_CONFIG_RESPONSE,
            CLOSE_CONNECTION: CLOSE_CONNECTION_RESPONSE}.get(message_type, message_type + 10)


# Requests a client sends.


def get_reader_capabilities(message_id: int) -> bytes:
    return encode(lib.GET_READER_CAPABILITIES_Message(MessageID=message_id, RequestedData=0))


def set_reader_config(message_id: int, *, keepalive_ms: int, power_index: int | None,
                      antennas: Sequence[int]) -> bytes:
    """Keepalives every `keepalive_ms`, the events the driver watches switched on, and the
    transmit power (an index into the reader's power table) on each antenna used."""
    events = [lib.EventNotificationState_Parameter(EventType=kind, NotificationState=True)
              for kind in (2, 4, 8)]  # ROSpec, reader exception, antenna events
    antenna_configs = []
    if power_index is not None:
        antenna_configs = [lib.AntennaConfiguration_Parameter(AntennaID=antenna, Parameters=[
            lib.RFTransmitter_Parameter(HopTableID=1, ChannelIndex=1, TransmitPower=power_index),
        ]) for antenna in antennas]
    return encode(lib.SET_READER_CONFIG_Message(MessageID=message_id, Parameters=[
        lib.ReaderEventNotificationSpec_Parameter(Parameters=events),
        *antenna_configs,
        lib.KeepaliveSpec_Parameter(KeepaliveTriggerType=1, PeriodicTriggerValue=keepalive_ms),
    ]))


def get_antenna_properties(message_id: int) -> bytes:
    """GET_READER_CONFIG for every antenna's AntennaProperties (connected or not)."""
    return encode(lib.GET_READER_CONFIG_Message(MessageID=message_id, AntennaID=0,
                                                 RequestedData=2))


def add_rospec(message_id: int, rospec_id: int, antennas: Sequence[int], *,
               report_every: int = 1) -> bytes:
    """An ROSpec that inventories `antennas` from the moment it is enabled until deleted, and
    reports every `report_every` tags with EPC, antenna, peak RSSI and first-seen time."""
    if not 1 <= rospec_id <= 0xFFFFFFFF or not antennas:
        raise EncodeError(f"ROSpec {rospec_id} needs an ID 1..2^32-1 and antennas")
    return encode(lib.ADD_ROSPEC_Message(MessageID=message_id, Parameters=[
        lib.ROSpec_Parameter(ROSpecID=rospec_id, Priority=0, CurrentState=0, Parameters=[
            lib.ROBoundarySpec_Parameter(Parameters=[
                lib.ROSpecStartTrigger_Parameter(ROSpecStartTriggerType=1),  # immediate
                lib.ROSpecStopTrigger_Parameter(ROSpecStopTriggerType=0),  # never
            ]),
            lib.AISpec_Parameter(AntennaIDs=list(antennas), Parameters=[
                lib.AISpecStopTrigger_Parameter(AISpecStopTriggerType=0),
                lib.InventoryParameterSpec_Parameter(InventoryParameterSpecID=rospec_id & 0xFFFF,
                                                      ProtocolID=1),
            ]),
            lib.ROReportSpec_Parameter(ROReportTrigger=1, N=report_every, Parameters=[
                lib.TagReportContentSelector_Parameter(
                    EnableAntennaID=True, EnablePeakRSSI=True, EnableFirstSeenTimestamp=True),
            ]),
        ]),
    ]))


def rospec_command(message_type: int, message_id: int, rospec_id: int) -> bytes:
    """ENABLE/START/STOP/DISABLE/DELETE_ROSPEC (ROSpec ID 0: all of them)."""
    classes = {DELETE_ROSPEC: lib.DELETE_ROSPEC_Message, START_ROSPEC: lib.START_ROSPEC_Message,
               STOP_ROSPEC: lib.STOP_ROSPEC_Message, ENABLE_ROSPEC: lib.ENABLE_ROSPEC_Message,
               DISABLE_ROSPEC: lib.DISABLE_ROSPEC_Message}
    return encode(classes[message_type](MessageID=message_id, ROSpecID=rospec_id))


class OpSpec(NamedTuple):
    """One tag operation of an AccessSpec: a write of `data` to `bank` from `word`, or (when
    `lock_mask` is set) a Gen2 lock of those areas with `lock_action`."""

    op_id: int
    access_password: int
    bank: int = 0
    word: int = 0
    data: bytes = b""
    lock_mask: int = 0
    lock_action: int = 0


class OpResult(NamedTuple):
    """An OpSpec's result in an RO_ACCESS_REPORT."""

    op_id: int
    kind: str
    """"write" or "lock"."""
    result: int
    epc: bytes


def _opspec_parameter(op: OpSpec) -> Any:
    if op.lock_mask:
        payloads = [lib.C1G2LockPayload_Parameter(
            Privilege=LOCK_READ_WRITE if op.lock_action & bit else LOCK_UNLOCK, DataField=field)
            for bit, field in LOCK_FIELDS.items() if op.lock_mask & bit]
        return lib.C1G2Lock_Parameter(OpSpecID=op.op_id, AccessPassword=op.access_password,
                                      Parameters=payloads)
    if not op.data or len(op.data) % 2:
        raise EncodeError(f"write data of {len(op.data)} bytes is not whole words")
    words = [int.from_bytes(op.data[i : i + 2], "big") for i in range(0, len(op.data), 2)]
    return lib.C1G2Write_Parameter(OpSpecID=op.op_id, AccessPassword=op.access_password,
                                   MB=op.bank, WordPointer=op.word, WriteData=words)


def add_accessspec(message_id: int, access_spec_id: int, target: bytes | None,
                   ops: Sequence[OpSpec]) -> bytes:
    """ADD_ACCESSSPEC: run `ops`, once (operation count 1), on the first tag whose EPC is
    `target` (None: any tag) that any ROSpec inventories, on any antenna; report the results
    when the AccessSpec ends."""
    if not 1 <= access_spec_id <= 0xFFFFFFFF or not ops:
        raise EncodeError("an AccessSpec needs an ID 1..2^32-1 and at least one OpSpec")
    if target is not None and not 0 < len(target) <= MAX_EPC_BYTES:
        raise EncodeError(f"target EPC of {len(target)} bytes")
    mask = b"\xff" * len(target) if target else b""
    tag_spec = lib.C1G2TagSpec_Parameter(Parameters=[lib.C1G2TargetTag_Parameter(
        MB=1, Pointer=EPC_BIT_POINTER, TagMask=mask, TagData=target or b"", Match=True)])
    return encode(lib.ADD_ACCESSSPEC_Message(MessageID=message_id, Parameters=[
        lib.AccessSpec_Parameter(
            AccessSpecID=access_spec_id, AntennaID=0, ProtocolID=1, CurrentState=False,
            ROSpecID=0, Parameters=[
                lib.AccessSpecStopTrigger_Parameter(AccessSpecStopTrigger=1,
                                                    OperationCountValue=1),
                lib.AccessCommand_Parameter(Parameters=[
                    tag_spec, *(_opspec_parameter(op) for op in ops)]),
                lib.AccessReportSpec_Parameter(AccessReportTrigger=1),  # end of AccessSpec
            ]),
    ]))


def accessspec_command(message_type: int, message_id: int, access_spec_id: int) -> bytes:
    """ENABLE/DISABLE/DELETE_ACCESSSPEC (ID 0: all of them)."""
    classes = {ENABLE_ACCESSSPEC: lib.ENABLE_ACCESSSPEC_Message,
               DISABLE_ACCESSSPEC: lib.DISABLE_ACCESSSPEC_Message,
               DELETE_ACCESSSPEC: lib.DELETE_ACCESSSPEC_Message}
    return encode(classes[message_type](MessageID=message_id, AccessSpecID=access_spec_id))


def _epc_of(tag_report: Any) -> bytes:
    epc96 = tag_report.getFirstParameterByClass(lib.EPC_96_Parameter)
    if epc96 is not None:
        return int(epc96.EPC).to_bytes(12, "big")
    data = tag_report.getFirstParameterByClass(lib.EPCData_Parameter)
    return _octets(data.EPC) if data is not None else b""


def access_results(frame: bytes, access_spec_id: int) -> list[OpResult]:
    """The OpSpec results an RO_ACCESS_REPORT carries for AccessSpec `access_spec_id`, in
    order ([] when it carries none: an ordinary tag report). Decoded by pyllrp: rare."""
    message = decode_message(frame).message
    out: list[OpResult] = []
    for tag in message.getAllParametersByClass(lib.TagReportData_Parameter):
        spec = tag.getFirstParameterByClass(lib.AccessSpecID_Parameter)
        if spec is None or int(spec.AccessSpecID) != access_spec_id:
            continue
        epc = _epc_of(tag)
        for result in tag.Parameters:
            if isinstance(result, lib.C1G2WriteOpSpecResult_Parameter):
                out.append(OpResult(int(result.OpSpecID), "write", int(result.Result), epc))
            elif isinstance(result, lib.C1G2LockOpSpecResult_Parameter):
                out.append(OpResult(int(result.OpSpecID), "lock", int(result.Result), epc))
    return out


def _uint(value: Any) -> int:
    """A decoded field as an int: pyllrp gives sub-byte fields (MB) as bit strings."""
    return int(value.uint) if hasattr(value, "uint") else int(value)


def _octets(value: Any) -> bytes:
    return bytes(value.tobytes()) if hasattr(value, "tobytes") else bytes(value)


def parse_accessspec(message: Any) -> tuple[int, bytes | None, list[OpSpec]]:
    """(AccessSpec ID, target EPC or None, OpSpecs) of a decoded ADD_ACCESSSPEC (the
    simulator's side); raises MalformedFrame for what it cannot execute."""
    spec = message.getFirstParameterByClass(lib.AccessSpec_Parameter)
    command = spec.getFirstParameterByClass(lib.AccessCommand_Parameter) if spec else None
    if spec is None or command is None:
        raise MalformedFrame("ADD_ACCESSSPEC without an AccessSpec and its AccessCommand")
    target_tag = command.getFirstParameterByClass(lib.C1G2TargetTag_Parameter)
    target: bytes | None = None
    if target_tag is not None and _octets(target_tag.TagData):
        if _uint(target_tag.Pointer) != EPC_BIT_POINTER or _uint(target_tag.MB) != 1:
            raise MalformedFrame("only a match on the whole EPC is simulated")
        target = _octets(target_tag.TagData)
    ops: list[OpSpec] = []
    for op in command.Parameters:
        if isinstance(op, lib.C1G2Write_Parameter):
            data = b"".join(int(w).to_bytes(2, "big") for w in op.WriteData)
            ops.append(OpSpec(int(op.OpSpecID), int(op.AccessPassword), _uint(op.MB),
                              int(op.WordPointer), data))
        elif isinstance(op, lib.C1G2Lock_Parameter):
            fields = {f: bit for bit, f in LOCK_FIELDS.items()}
            mask = action = 0
            for payload in op.getAllParametersByClass(lib.C1G2LockPayload_Parameter):
                bit = fields[int(payload.DataField)]
                mask |= bit
                action |= bit if int(payload.Privilege) in (LOCK_READ_WRITE, 1) else 0
            ops.append(OpSpec(int(op.OpSpecID), int(op.AccessPassword),
                              lock_mask=mask, lock_action=action))
    return int(spec.AccessSpecID), target, ops


def encode_access_report(message_id: int, epc: bytes, antenna: int, access_spec_id: int,
                         results: Sequence[OpResult]) -> bytes:
    """RO_ACCESS_REPORT of one tag's OpSpec results (the simulator's side)."""
    classes = {"write": lib.C1G2WriteOpSpecResult_Parameter,
               "lock": lib.C1G2LockOpSpecResult_Parameter}
    params = [classes[r.kind](Result=r.result, OpSpecID=r.op_id,
                              **({"NumWordsWritten": 0} if r.kind == "write" else {}))
              for r in results]
    epc_parameter = (lib.EPC_96_Parameter(EPC=int.from_bytes(epc, "big")) if len(epc) == 12
                     else lib.EPCData_Parameter(EPC=epc))
    return encode(lib.RO_ACCESS_REPORT_Message(MessageID=message_id, Parameters=[
        lib.TagReportData_Parameter(Parameters=[
            epc_parameter, lib.AntennaID_Parameter(AntennaID=antenna),
            lib.AccessSpecID_Parameter(AccessSpecID=access_spec_id), *params])]))


def keepalive_ack(message_id: int) -> bytes:
    return encode(lib.KEEPALIVE_ACK_Message(MessageID=message_id))


def close_connection(message_id: int) -> bytes:
    return encode(lib.CLOSE_CONNECTION_Message(MessageID=message_id))


# Messages a reader sends (the simulator's side, and tests).


def status_response(message_type: int, message_id: int, code: int = STATUS_SUCCESS,
                    description: str = "") -> bytes:
    """The response to `message_type` carrying only an LLRPStatus."""
    name = lib._messageClassFromTypeCode[response_type(message_type)]
    return encode(name(MessageID=message_id, Parameters=[
        lib.LLRPStatus_Parameter(StatusCode=code, ErrorDescription=description)]))


def error_message(message_id: int, code: int, description: str) -> bytes:
    """ERROR_MESSAGE: the reader's answer to a message it cannot decode or does not support."""
    return encode(lib.ERROR_MESSAGE_Message(MessageID=message_id, Parameters=[
        lib.LLRPStatus_Parameter(StatusCode=code, ErrorDescription=description)]))


def reader_event(message_id: int, utc_us: int, event: Any) -> bytes:
    """READER_EVENT_NOTIFICATION carrying one event parameter."""
    return encode(lib.READER_EVENT_NOTIFICATION_Message(MessageID=message_id, Parameters=[
        lib.ReaderEventNotificationData_Parameter(Parameters=[
            lib.UTCTimestamp_Parameter(Microseconds=utc_us), event])]))


def connection_event(message_id: int, utc_us: int, status: int = CONNECTION_SUCCESS) -> bytes:
    return reader_event(message_id, utc_us, lib.ConnectionAttemptEvent_Parameter(Status=status))


def antenna_event(message_id: int, utc_us: int, antenna: int, connected: bool) -> bytes:
    kind = ANTENNA_CONNECTED if connected else ANTENNA_DISCONNECTED
    return reader_event(message_id, utc_us,
                        lib.AntennaEvent_Parameter(EventType=kind, AntennaID=antenna))


def keepalive(message_id: int) -> bytes:
    return encode(lib.KEEPALIVE_Message(MessageID=message_id))


def tag_report_data(epc: bytes, antenna: int, rssi: int, first_seen_us: int) -> Any:
    """One TagReportData parameter: EPC_96 for 96-bit EPCs (as readers send them), EPCData
    for the others."""
    if not epc or len(epc) > MAX_EPC_BYTES:
        raise EncodeError(f"EPC of {len(epc)} bytes outside 1..{MAX_EPC_BYTES}")
    epc_parameter = (lib.EPC_96_Parameter(EPC=int.from_bytes(epc, "big")) if len(epc) == 12
                     else lib.EPCData_Parameter(EPC=epc))
    return lib.TagReportData_Parameter(Parameters=[
        epc_parameter,
        lib.AntennaID_Parameter(AntennaID=antenna),
        lib.PeakRSSI_Parameter(PeakRSSI=rssi),
        lib.FirstSeenTimestampUTC_Parameter(Microseconds=first_seen_us),
    ])


def encode_report(message_id: int, tags: Iterable[tuple[bytes, int, int, int]]) -> bytes:
    """RO_ACCESS_REPORT of (epc, antenna, rssi, first_seen_us) tuples."""
    return encode(lib.RO_ACCESS_REPORT_Message(
        MessageID=message_id, Parameters=[tag_report_data(*tag) for tag in tags]))


def with_message_id(frame: bytes, message_id: int) -> bytes:
    """The same message under another message ID (the simulator reuses encoded reports)."""
    return frame[:6] + (message_id & 0xFFFFFFFF).to_bytes(4, "big") + frame[10:]


def describe(reply: Reply) -> dict[str, Any]:
    """The fields a field engineer wants from a non-report message, JSON-able."""
    message = reply.message
    out: dict[str, Any] = {"message": reply.name, "message_id": reply.message_id}
    with contextlib.suppress(AssertionError):
        code, description = status_of(message) if reply.name.endswith("RESPONSE") or \
            reply.type == ERROR_MESSAGE else (None, None)
        if code is not None:
            out["status"], out["error"] = code, description or None
    for cls, key, fields in (
            (lib.ConnectionAttemptEvent_Parameter, "connection_attempt", ("Status",)),
            (lib.AntennaEvent_Parameter, "antenna_event", ("EventType", "AntennaID")),
            (lib.ROSpecEvent_Parameter, "rospec_event", ("EventType", "ROSpecID")),
            (lib.ReaderExceptionEvent_Parameter, "reader_exception", ("Message",)),
            (lib.ConnectionCloseEvent_Parameter, "connection_close", ()),
            (lib.UTCTimestamp_Parameter, "utc_us", ("Microseconds",))):
        found = message.getFirstParameterByClass(cls)
        if found is not None:
            values = [getattr(found, name) for name in fields]
            out[key] = values[0] if len(values) == 1 else values if values else True
    return out


class Capabilities(NamedTuple):
    """What GET_READER_CAPABILITIES says that the driver uses."""

    manufacturer: int
    model: int
    firmware: str
    max_antennas: int
    power_table: dict[int, int]
    """Transmit power index -> centi-dBm (LLRP sets power by index into this table)."""

    @property
    def summary(self) -> str:
        return (f"LLRP vendor {self.manufacturer} model {self.model} firmware "
                f"{self.firmware[:40]} antennas {self.max_antennas}")


def parse_capabilities(message: Any) -> Capabilities:
    general = message.getFirstParameterByClass(lib.GeneralDeviceCapabilities_Parameter)
    if general is None:
        raise MalformedFrame("capabilities without GeneralDeviceCapabilities")
    table = {int(entry.Index): int(entry.TransmitPowerValue) for entry in
             message.getAllParametersByClass(lib.TransmitPowerLevelTableEntry_Parameter)}
    return Capabilities(int(general.DeviceManufacturerName), int(general.ModelName),
                        str(general.ReaderFirmwareVersion),
                        int(general.MaxNumberOfAntennaSupported), table)


def power_index(table: dict[int, int], power_dbm: float) -> int | None:
    """The table index whose power is nearest `power_dbm` without exceeding it (the lowest
    entry if all exceed it); None for an empty table."""
    if not table:
        return None
    target = round(power_dbm * 100)
    below = [(value, index) for index, value in table.items() if value <= target]
    if below:
        return max(below)[1]
    return min((value, index) for index, value in table.items())[1]


def capabilities_response(message_id: int, *, manufacturer: int, model: int, firmware: str,
                          antennas: int, power_table: dict[int, int]) -> bytes:
    """GET_READER_CAPABILITIES_RESPONSE with the parameters LLRP 1.1 requires."""
    mode = lib.C1G2UHFRFModeTableEntry_Parameter(
        ModeIdentifier=1000, DRValue=True, EPCHAGTCConformance=False, MValue=2,
        ForwardLinkModulation=2, SpectralMaskIndicator=3, BDRValue=320_000, PIEValue=1500,
        MinTariValue=6250, MaxTariValue=6250, StepTariValue=0)
    return encode(lib.GET_READER_CAPABILITIES_RESPONSE_Message(MessageID=message_id, Parameters=[
        lib.LLRPStatus_Parameter(StatusCode=STATUS_SUCCESS, ErrorDescription=""),
        lib.GeneralDeviceCapabilities_Parameter(
            MaxNumberOfAntennaSupported=antennas, CanSetAntennaProperties=False,
            HasUTCClockCapability=True, DeviceManufacturerName=manufacturer, ModelName=model,
            ReaderFirmwareVersion=firmware, Parameters=[
                lib.ReceiveSensitivityTableEntry_Parameter(Index=1, ReceiveSensitivityValue=0),
                lib.GPIOCapabilities_Parameter(NumGPIs=0, NumGPOs=0),
                *[lib.PerAntennaAirProtocol_Parameter(AntennaID=a, ProtocolID=[1])
                  for a in range(1, antennas + 1)],
            ]),
        lib.RegulatoryCapabilities_Parameter(CountryCode=0, CommunicationsStandard=2, Parameters=[
            lib.UHFBandCapabilities_Parameter(Parameters=[
                *[lib.TransmitPowerLevelTableEntry_Parameter(Index=i, TransmitPowerValue=v)
                  for i, v in sorted(power_table.items())],
                lib.FrequencyInformation_Parameter(Hopping=False, Parameters=[
                    lib.FixedFrequencyTable_Parameter(Frequency=[865_700, 866_300])]),
                lib.C1G2UHFRFModeTable_Parameter(Parameters=[mode]),
            ]),
        ]),
    ]))


def antenna_properties_response(message_id: int, connected: dict[int, bool]) -> bytes:
    """GET_READER_CONFIG_RESPONSE listing each antenna's AntennaProperties."""
    return encode(lib.GET_READER_CONFIG_RESPONSE_Message(MessageID=message_id, Parameters=[
        lib.LLRPStatus_Parameter(StatusCode=STATUS_SUCCESS, ErrorDescription=""),
        *[lib.AntennaProperties_Parameter(AntennaConnected=up, AntennaID=antenna, AntennaGain=0)
          for antenna, up in sorted(connected.items())],
    ]))


def antennas_connected(message: Any) -> dict[int, bool]:
    return {int(p.AntennaID): bool(p.AntennaConnected) for p in
            message.getAllParametersByClass(lib.AntennaProperties_Parameter)}
