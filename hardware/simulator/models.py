"""What each simulated reader module does with the commands it receives and what it streams.

One model per reader family, speaking the real bytes through the encoders of
`reader_agent.protocol`. Models keep only the state a driver can observe: settings (region,
power, antennas), whether inventory runs, and for ThingMagic whether the application firmware
or the bootloader is running. Time comes in as an argument; models never sleep. A model whose
reader answers a whole round at once (Chafon) returns empty tag frames and sends the round from
`end_of_round`; the server skips empty frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

from reader_agent.protocol import chafon, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.protocol.framing import (
    ACCESS_PASSWORD_WORD,
    BANK_EPC,
    BANK_RESERVED,
    LOCK_ACCESS,
    LOCK_EPC,
    MAX_EPC_BYTES,
    gen2_crc16,
)

from hardware.simulator.scenario import TagSpec

ROOM_TEMPERATURE = 35
"""Degrees Celsius a simulated module reports until a scenario heats it."""
SCRIPTED_LOCK = -1
"""The access password of a tag the scenario declares locked: matches no password sent."""

TM_VERSION = bytes.fromhex("12120500" "30010000" "20240101" "01090002" "00000010")
"""bootloader, hardware (0x30 = M6e Nano), firmware date, firmware version, protocols (Gen2)."""


class ReaderModel(ABC):
    """Reader state machine. `handle` answers one command frame; the server asks for tag and
    idle frames while `streaming` is true."""

    protocol: str
    command_decoder = staticmethod(tm.decode_command)
    command_gap: float | None = None
    """Seconds of silence after which the module drops a partly received command (None:
    it waits for the rest)."""

    def __init__(self) -> None:
        self.streaming = False
        self.antennas: set[int] = {1}
        self.region: int | None = None
        self.power: int | None = None
        self.commands_seen: list[int] = []
        self.boot_pending = False
        self._last_idle = 0.0
        # Set by the server: the tags in the field now, and how to give one a new EPC.
        self.field: Callable[[float], list[TagSpec]] = lambda now: []
        self.rewrite: Callable[[TagSpec, bytes], None] = lambda tag, epc: None
        self.temperature_c = ROOM_TEMPERATURE
        self.passwords: dict[bytes, int] = {}
        """Access passwords written to tags, by the tag's EPC (a locked EPC does not change)."""
        self.locked: dict[bytes, int] = {}
        """EPC banks locked by a Lock command: EPC -> the access password a rewrite needs."""

    def strongest_tag(self, now: float) -> TagSpec | None:
        """The tag a reader without a select filter reaches: the strongest in the field."""
        tags = sorted(self.field(now), key=lambda t: -max(t.rssi.values()))
        return tags[0] if tags else None

    def _lock_password(self, tag: TagSpec) -> int | None:
        """The password a write to this tag's EPC bank needs; None if it is not locked."""
        return SCRIPTED_LOCK if tag.locked else self.locked.get(tag.epc)

    def write_memory(self, bank: int, word_address: int, data: bytes, now: float,
                     password: int = 0) -> str:
        """A Gen2 write to the strongest tag in the field. Returns "ok", "no tag", "locked"
        (Gen2 memory locked: the bank is locked and `password` is not its access password) or
        "overrun" (outside the PC and EPC, or anything but the reserved bank's access
        password)."""
        tag = self.strongest_tag(now)
        if tag is None:
            return "no tag"
        needed = self._lock_password(tag)
        if bank == BANK_RESERVED:
            if word_address != ACCESS_PASSWORD_WORD or len(data) != 4:
                return "overrun"
            if needed is not None and needed != password:
                return "locked"  # the access password is locked with the EPC bank
            self.passwords[tag.epc] = int.from_bytes(data, "big")
            return "ok"
        if bank != BANK_EPC:
            return "overrun"
        if needed is not None and needed != password:
            return "locked"
        pc = (len(tag.epc) // 2) << 11
        memory = bytearray(gen2_crc16(pc.to_bytes(2, "big") + tag.epc).to_bytes(2, "big")
                         + pc.to_bytes(2, "big") + tag.epc.ljust(MAX_EPC_BYTES, b"\x00"))
        start = 2 * word_address
        if word_address < 1 or start + len(data) > len(memory):
            return "overrun"
        memory[start : start + len(data)] = data
        words = memory[2] >> 3  # the PC word's length field
        self.rewrite(tag, bytes(memory[4 : 4 + 2 * words]))
        return "ok"

    def lock(self, mask: int, action: int, password: int, now: float) -> str:
        """A Gen2 Lock on the strongest tag: "ok", "no tag", or "access" when `password` is
        not the tag's access password. Only the EPC bank's write lock is modelled."""
        tag = self.strongest_tag(now)
        if tag is None:
            return "no tag"
        if self.passwords.get(tag.epc, 0) != password or tag.locked:
            return "access"
        if mask & LOCK_EPC:
            if action & LOCK_EPC:
                self.locked[tag.epc] = password
            else:
                self.locked.pop(tag.epc, None)
        return "ok"

    @abstractmethod
    def handle(self, frame: bytes, now: float) -> list[bytes]:
        """Answer one complete command frame."""

    @abstractmethod
    def tag_frame(self, epc: bytes, antenna: int, rssi: int, now: float) -> bytes:
        """One tag read as the module streams it."""

    def idle(self, now: float) -> list[bytes]:
        """Frames sent while inventory runs and no tag is in the field."""
        return []

    def end_of_round(self, now: float) -> list[bytes]:
        """Frames sent after every tag in the field was reported once."""
        return []

    def power_cycle(self) -> list[bytes]:
        """The module reset: settings lost, inventory stopped. Returns what it says at boot.

        The server drops commands that arrive while `boot_pending` (the module is rebooting)."""
        self.boot_pending = True
        self.streaming = False
        self.antennas = {1}
        self.region = self.power = None
        return []


TM_VERDICTS = {"ok": tm.STATUS_OK, "no tag": tm.STATUS_NO_TAGS,
               "locked": tm.STATUS_MEMORY_LOCKED, "access": 0x040A}
"""Status of a write or lock by outcome; 0x040A is the module's general tag error."""


class ThingMagicModel(ReaderModel):
    protocol = "thingmagic"
    command_decoder = staticmethod(tm.decode_command)
    KEEPALIVE_INTERVAL = 1.0

    def __init__(self) -> None:
        super().__init__()
        self.in_bootloader = False

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        opcode, data = frame[2], frame[3:-2]
        self.commands_seen.append(opcode)
        ok = tm.STATUS_OK
        if opcode == tm.OP_GET_PROGRAM:
            return [tm.encode_response(opcode, ok, b"\x01" if self.in_bootloader else b"\x02")]
        if opcode in (tm.OP_VERSION, tm.OP_BOOT_FIRMWARE):
            if opcode == tm.OP_BOOT_FIRMWARE:
                self.in_bootloader = False
            return [tm.encode_response(opcode, ok, TM_VERSION)]
        if self.in_bootloader:
            return [tm.encode_response(opcode, tm.STATUS_INVALID_OPCODE)]
        if opcode == tm.OP_WRITE_TAG_DATA and len(data) >= 10 and len(data) % 2 == 0:
            verdict = self.write_memory(data[7], int.from_bytes(data[3:7], "big"), data[8:],
                                        now)
            return [tm.encode_response(opcode, TM_VERDICTS.get(verdict, 0x0423))]
        if opcode == tm.OP_LOCK_TAG and len(data) == 11:
            verdict = self.lock(int.from_bytes(data[7:9], "big"), int.from_bytes(data[9:11], "big"),
                                int.from_bytes(data[3:7], "big"), now)
            return [tm.encode_response(opcode, TM_VERDICTS[verdict])]
        if opcode == tm.OP_GET_TEMPERATURE and not data:
            return [tm.encode_response(opcode, ok,
                                       self.temperature_c.to_bytes(1, "big", signed=True))]
        if opcode == tm.OP_MULTI_PROTOCOL and data[2:3] == b"\x01":
            self.streaming = True
            return [tm.encode_response(opcode, ok, b"\x01\x22\x00\x00")]
        if opcode == tm.OP_MULTI_PROTOCOL and data[2:3] == b"\x02":
            self.streaming = False
            return [tm.encode_response(opcode, ok, b"\x02")]
        if opcode == tm.OP_SET_ANTENNA and data[:1] == b"\x02" and len(data) >= 3:
            self.antennas = {data[i + 1] for i in range(1, len(data) - 1, 2)}
        elif opcode == tm.OP_SET_ANTENNA and len(data) == 2:
            self.antennas = {data[1]}
        elif opcode == tm.OP_SET_REGION and len(data) == 1:
            self.region = data[0]
        elif opcode == tm.OP_SET_READ_POWER and len(data) == 2:
            self.power = int.from_bytes(data, "big", signed=True)
        elif opcode not in (tm.OP_SET_PROTOCOL, tm.OP_SET_READER_PARAM):
            return [tm.encode_response(opcode, tm.STATUS_INVALID_OPCODE)]
        return [tm.encode_response(opcode, ok)]

    def tag_frame(self, epc: bytes, antenna: int, rssi: int, now: float) -> bytes:
        return tm.encode_tag_record(epc, rssi_dbm=rssi, antenna=antenna, frequency_khz=915_250,
                                    timestamp_ms=int(now * 1000) & 0xFFFFFFFF)

    def idle(self, now: float) -> list[bytes]:
        if now - self._last_idle < self.KEEPALIVE_INTERVAL:
            return []
        self._last_idle = now
        return [tm.encode_response(tm.OP_READ_TAG_MULTIPLE, tm.STATUS_NO_TAGS)]

    def power_cycle(self) -> list[bytes]:
        super().power_cycle()
        self.in_bootloader = True
        # About 200 ms after power-on the module announces its version (SparkFun Example1).
        return [tm.encode_response(tm.OP_BOOT_FIRMWARE, tm.STATUS_OK, TM_VERSION)]


class R200Model(ReaderModel):
    protocol = "r200"
    command_decoder = staticmethod(r200.decode_command)
    EMPTY_ROUND = 0.05

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        command, params = frame[2], frame[5:-2]
        self.commands_seen.append(command)
        if frame[1] != r200.TYPE_COMMAND:
            return [r200.encode_error(r200.ERR_COMMAND)]
        if command == r200.CMD_MODULE_INFO:
            return [r200.encode_response(command, params[:1] + b"M100 V1.00")]
        if command == r200.CMD_MULTI_POLL and len(params) == 3:
            self.streaming = True
            return []  # the module acknowledges polling only with notifications
        if command == r200.CMD_STOP_MULTI_POLL:
            self.streaming = False
            return [r200.encode_response(command)]
        if command == r200.CMD_WRITE_MEMORY and len(params) >= 11:
            return [self._write(params, now)]
        if command == r200.CMD_LOCK and len(params) == 7:
            return [self._lock(params, now)]
        if command == r200.CMD_SET_REGION and len(params) == 1:
            self.region = params[0]
        elif command == r200.CMD_SET_POWER and len(params) == 2:
            self.power = int.from_bytes(params, "big")
        else:
            return [r200.encode_error(r200.ERR_COMMAND)]
        return [r200.encode_response(command)]

    def _write(self, params: bytes, now: float) -> bytes:
        bank, start = params[4], int.from_bytes(params[5:7], "big")
        words, data = int.from_bytes(params[7:9], "big"), params[9:]
        if len(data) != 2 * words:
            return r200.encode_error(r200.ERR_COMMAND)
        before = self.strongest_tag(now)
        verdict = self.write_memory(bank, start, data, now, int.from_bytes(params[:4], "big"))
        if before is None or verdict != "ok":
            code = {"no tag": r200.ERR_WRITE_FAILED,
                    "locked": r200.ERR_WRITE_GEN2 | r200.GEN2_MEMORY_LOCKED}.get(verdict, 0xB3)
            return r200.encode_error(code)
        return self._tag_answer(r200.CMD_WRITE_MEMORY, before.epc)

    def _lock(self, params: bytes, now: float) -> bytes:
        payload = int.from_bytes(params[4:7], "big")
        before = self.strongest_tag(now)
        verdict = self.lock(payload >> 10, payload & 0x3FF, int.from_bytes(params[:4], "big"),
                            now)
        if before is None or verdict != "ok":
            return r200.encode_error(r200.ERR_LOCK_FAILED if verdict == "no tag"
                                     else r200.ERR_ACCESS)
        return self._tag_answer(r200.CMD_LOCK, before.epc)

    @staticmethod
    def _tag_answer(command: int, epc: bytes) -> bytes:
        """A write or lock answer names the tag it reached, as it was singulated."""
        pc = (len(epc) // 2) << 11
        return r200.encode_response(command=command, params=bytes((2 + len(epc),))
                                    + pc.to_bytes(2, "big") + epc + b"\x00")

    def tag_frame(self, epc: bytes, antenna: int, rssi: int, now: float) -> bytes:
        return r200.encode_notification(epc, rssi_dbm=rssi)

    def idle(self, now: float) -> list[bytes]:
        if now - self._last_idle < self.EMPTY_ROUND:
            return []
        self._last_idle = now
        return [r200.encode_error(r200.ERR_NO_TAG)]


R2000_LOCK_BITS = {r2000.LOCK_AREAS["epc"]: LOCK_EPC, r2000.LOCK_AREAS["access"]: LOCK_ACCESS}


class R2000Model(ReaderModel):
    protocol = "r2000"
    command_decoder = staticmethod(r2000.decode_command)
    EMPTY_ROUND = 0.025
    ADDRESS = 0x01

    def __init__(self) -> None:
        super().__init__()
        self._rounds_left = 0
        self._round_reads = 0

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        command, data = frame[3], frame[4:-1]
        self.commands_seen.append(command)
        if command == r2000.CMD_GET_VERSION:
            return [r2000.encode_frame(self.ADDRESS, command, b"\x08\x01")]
        if command == r2000.CMD_RESET:
            return self.power_cycle()
        if command == r2000.CMD_REALTIME_INVENTORY and len(data) == 1 and data[0]:
            self.streaming, self._rounds_left, self._round_reads = True, data[0], 0
            self._last_idle = now
            return []
        if command == r2000.CMD_GET_TEMPERATURE and not data:
            return [r2000.encode_temperature(self.temperature_c, self.ADDRESS)]
        if command == r2000.CMD_WRITE and len(data) >= 9 and len(data) == 7 + 2 * data[6]:
            return [self._access(command, now, lambda: self.write_memory(
                data[4], data[5], data[7:], now, int.from_bytes(data[:4], "big")))]
        if command == r2000.CMD_LOCK and len(data) == 6 and data[4] in R2000_LOCK_BITS:
            bit = R2000_LOCK_BITS[data[4]]
            action = bit if data[5] in (r2000.LOCK_LOCK, r2000.LOCK_PERMA_LOCK) else 0
            return [self._access(command, now, lambda: self.lock(
                bit, action, int.from_bytes(data[:4], "big"), now))]
        if command == r2000.CMD_SET_WORK_ANTENNA and len(data) == 1 and data[0] < 4:
            self.antennas = {data[0] + 1}
        elif command == r2000.CMD_SET_OUTPUT_POWER and len(data) in (1, 4):
            self.power = data[0]
        elif command == r2000.CMD_SET_REGION and len(data) == 3:
            self.region = data[0]
        else:
            return [r2000.encode_code(command, 0x41, self.ADDRESS)]  # invalid parameter
        return [r2000.encode_code(command, r2000.CODE_SUCCESS, self.ADDRESS)]

    def _access(self, command: int, now: float, operation: Callable[[], str]) -> bytes:
        before = self.strongest_tag(now)
        verdict = operation()
        if before is None or verdict == "no tag":
            return r2000.encode_code(command, r2000.CODE_NO_TAG, self.ADDRESS)
        code = {"ok": r2000.CODE_SUCCESS, "locked": r2000.CODE_PASSWORD,
                "access": r2000.CODE_PASSWORD}.get(verdict, r2000.CODE_WRITE_ERROR)
        antenna = min(before.rssi)
        return r2000.encode_access_result(command, before.epc, code, antenna=antenna,
                                          address=self.ADDRESS)

    def tag_frame(self, epc: bytes, antenna: int, rssi: int, now: float) -> bytes:
        self._round_reads += 1
        return r2000.encode_tag(epc, antenna=antenna, rssi=rssi, address=self.ADDRESS)

    def idle(self, now: float) -> list[bytes]:
        return self.end_of_round(now) if now - self._last_idle >= self.EMPTY_ROUND else []

    def end_of_round(self, now: float) -> list[bytes]:
        self._last_idle = now
        self._rounds_left -= 1
        if self._rounds_left > 0:
            return []
        self.streaming = False
        antenna = min(self.antennas)
        reads, self._round_reads = self._round_reads, 0
        return [r2000.encode_summary(antenna, reads * 40, reads, self.ADDRESS)]


class ChafonModel(ReaderModel):
    """A UHFReader288 (or, with `reader18`, a UHFReader18). It collects a round's tags and
    answers them together, as many per frame as fit; commands that arrive during a round are
    ignored, as the reader does. Region and power live in its memory and survive a reset."""

    protocol = "chafon"
    command_decoder = staticmethod(chafon.decode_command)
    command_gap = 0.015  # the reader's documented inter-byte limit
    EMPTY_ROUND = 0.025
    ADDRESS = chafon.READER_ADDRESS
    READER_INFO = bytes.fromhex("00160C034E001E0A01000000")
    """Firmware 0.22, type UHFReader288M, EU band, power 0x1E, scan time 0x0A."""
    RSSI_OFFSET = 129
    """The simulated relative RSSI: dBm + 129 (higher is stronger, as on the reader)."""

    def __init__(self) -> None:
        super().__init__()
        self.reader18 = False
        self.region, self.power = self.READER_INFO[4], self.READER_INFO[6]
        self._round: list[tuple[bytes, int]] = []
        self._antenna = 1

    def handle(self, frame: bytes, now: float) -> list[bytes]:
        command, data = frame[2], frame[3:-2]
        self.commands_seen.append(command)
        if self.streaming:
            return []  # busy with a round: the reader ignores the command
        if command == chafon.CMD_GET_READER_INFO and not data:
            return [chafon.encode_response(self.ADDRESS, command, chafon.STATUS_OK,
                                           self.READER_INFO)]
        if command == chafon.CMD_INVENTORY:
            if not data:
                self._antenna = 1
            elif (not self.reader18 and len(data) == 9
                  and chafon.ANTENNA_SELECT <= data[7] < chafon.ANTENNA_SELECT + 4):
                self._antenna = data[7] - chafon.ANTENNA_SELECT + 1
            else:
                return [chafon.encode_response(self.ADDRESS, command,
                                               chafon.STATUS_OPERAND_LENGTH)]
            self.antennas = {self._antenna}
            self.streaming, self._round, self._last_idle = True, [], now
            return []
        if command == chafon.CMD_WRITE_EPC and len(data) >= 7 and len(data) == 5 + 2 * data[0]:
            return [self._write_epc(data, now)]
        return [chafon.encode_error(chafon.STATUS_ILLEGAL, self.ADDRESS)]

    def _write_epc(self, data: bytes, now: float) -> bytes:
        epc = data[5:]
        pc = ((len(epc) // 2) << 11).to_bytes(2, "big")  # the reader sets the PC itself
        verdict = self.write_memory(BANK_EPC, 1, pc + epc, now, int.from_bytes(data[1:5], "big"))
        status, detail = {"ok": (chafon.STATUS_OK, b""), "no tag": (chafon.STATUS_NO_TAG, b""),
                          "locked": (chafon.STATUS_TAG_ERROR, b"\x04")}.get(
                              verdict, (chafon.STATUS_TAG_ERROR, b"\x03"))
        return chafon.encode_response(self.ADDRESS, chafon.CMD_WRITE_EPC, status, detail)

    def tag_frame(self, epc: bytes, antenna: int, rssi: int, now: float) -> bytes:
        self._round.append((epc, max(0, min(chafon.MAX_RSSI, rssi + self.RSSI_OFFSET))))
        return b""  # answered with the round

    def idle(self, now: float) -> list[bytes]:
        return self.end_of_round(now) if now - self._last_idle >= self.EMPTY_ROUND else []

    def end_of_round(self, now: float) -> list[bytes]:
        self._last_idle = now
        self.streaming = False
        tags, self._round = self._round, []
        return chafon.encode_round(tags, antenna=self._antenna, address=self.ADDRESS,
                                   reader18=self.reader18)

    def power_cycle(self) -> list[bytes]:
        region, power = self.region, self.power
        super().power_cycle()
        self.region, self.power = region, power  # stored in the reader's memory
        self._round = []
        return []


MODELS: dict[str, type[ReaderModel]] = {
    "thingmagic": ThingMagicModel, "r200": R200Model, "r2000": R2000Model,
    "chafon": ChafonModel,
}
