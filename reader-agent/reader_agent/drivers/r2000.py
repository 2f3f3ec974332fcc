"""Driver for Impinj Indy R2000 readers speaking the 0xA0 serial protocol.

The reader runs one real-time inventory command (0x89) at a time on its work antenna and ends
it with a summary frame, so continuous reading is this driver issuing "next work antenna,
inventory" after every summary, cycling through the configured ports.
"""

from __future__ import annotations

from reader_agent.drivers.base import ReaderDriver
from reader_agent.drivers.settings import (
    CommandFailed,
    DriverConfigError,
    ReaderSettings,
    TagLocked,
)
from reader_agent.protocol import MalformedFrame, ReaderReply, r2000
from reader_agent.protocol.framing import LOCK_ACCESS, LOCK_EPC

INVENTORY_REPEAT = 1
"""Rounds per command: one keeps antenna switching fair and the watchdog responsive."""
ROUND_SILENCE = 0.15
"""A round that ends in silence lost its summary frame on the line, or the reader reset: the
reader is idle either way, so waiting the full watchdog would only lose reading time."""
TAG_ERRORS = {r2000.CODE_NO_TAG: "no tag answered", r2000.CODE_WRITE_ERROR: "the write failed",
              r2000.CODE_LOCK_ERROR: "the lock failed",
              r2000.CODE_ACCESS_FAIL: "a tag answered but the access failed"}
LOCK_AREAS = ((LOCK_EPC, "epc"), (LOCK_ACCESS, "access"))
"""The Gen2 lock bits `write-tag --lock` sets, and the 0x83 area that takes each."""


class R2000Driver(ReaderDriver):
    protocol = "r2000"
    can_write = True
    can_lock = True
    reads_temperature = True

    _antenna_index = 0
    _temperature_wanted = False
    _temperature_unsupported = False

    def _validate(self, settings: ReaderSettings) -> None:
        if any(a > r2000.MAX_ANTENNAS for a in settings.antennas):
            raise DriverConfigError(f"R2000 readers have antenna ports 1..{r2000.MAX_ANTENNAS}")
        if settings.region not in r2000.REGIONS:
            raise DriverConfigError(f"region {settings.region!r} unknown for R2000; "
                                    f"known: {sorted(r2000.REGIONS)}")

    def _configure(self) -> None:
        self.reader_info = self._transact(r2000.cmd_get_version(), r2000.CMD_GET_VERSION).data
        self._transact(r2000.cmd_set_region(self.settings.region), r2000.CMD_SET_REGION)
        dbm = round(self.settings.power_dbm)
        self._transact(r2000.cmd_set_output_power(dbm), r2000.CMD_SET_OUTPUT_POWER)
        if self.settings.temperature_interval > 0 and not self._temperature_unsupported:
            try:
                reply = self._transact(r2000.cmd_get_temperature(), r2000.CMD_GET_TEMPERATURE)
            except CommandFailed as exc:
                self._temperature_unsupported = True
                self.last_error = f"no temperature from this reader: {exc}"
            else:
                self._take_temperature(reply)
            self._temperature_at = self._clock()

    def _refresh_temperature(self) -> None:
        # Asked between two rounds (the reader runs one command at a time): see _on_reply.
        self._temperature_wanted = not self._temperature_unsupported

    def _take_temperature(self, reply: ReaderReply) -> None:
        try:
            self.temperature_c = r2000.parse_temperature(reply.data)
        except MalformedFrame as exc:
            self.last_error = str(exc)

    def _write_memory(self, bank: int, word_address: int, data: bytes) -> None:
        self._tag_operation(r2000.cmd_write(bank, word_address, data), r2000.CMD_WRITE)

    def _lock(self, mask: int, action: int, access_password: int) -> None:
        # One memory area per command: the areas of the mask, each locked or opened.
        for bit, area in LOCK_AREAS:
            if mask & bit:
                lock_type = r2000.LOCK_LOCK if action & bit else r2000.LOCK_OPEN
                self._tag_operation(r2000.cmd_lock(area, lock_type, access_password),
                                    r2000.CMD_LOCK)

    def _tag_operation(self, frame: bytes, command: int) -> None:
        reply = self._transact(frame, command, check=False,
                               timeout=self.settings.command_timeout + 1.0)
        try:
            code = r2000.access_result(reply.data)
        except MalformedFrame as exc:
            raise CommandFailed(command, 0, str(exc)) from None
        if code == r2000.CODE_PASSWORD:
            raise TagLocked(command, code)
        if code != r2000.CODE_SUCCESS:
            raise CommandFailed(command, code, TAG_ERRORS.get(code, ""))

    def _start_inventory(self) -> None:
        self._antenna_index = 0
        antenna = self.settings.antennas[0]
        self._transact(r2000.cmd_set_work_antenna(antenna), r2000.CMD_SET_WORK_ANTENNA)
        self._send(r2000.cmd_realtime_inventory(INVENTORY_REPEAT))

    def _next_round(self) -> None:
        antennas = self.settings.antennas
        if len(antennas) > 1:
            self._antenna_index = (self._antenna_index + 1) % len(antennas)
            # Commands queue in order on the reader; the antenna answer is not awaited.
            self._send(r2000.cmd_set_work_antenna(antennas[self._antenna_index]))
        self._send(r2000.cmd_realtime_inventory(INVENTORY_REPEAT))

    def _silence_limit(self) -> float:
        return min(self.settings.watchdog, ROUND_SILENCE)

    def _on_reply(self, reply: ReaderReply) -> bool:
        if reply.command in r2000.INVENTORY_COMMANDS and reply.kind in ("summary", "error"):
            if reply.kind == "error" and reply.code != r2000.CODE_NO_TAG:
                super()._on_reply(reply)
            if self._temperature_wanted:
                self._temperature_wanted = False
                self._send(r2000.cmd_get_temperature())  # answered before the next round
            self._next_round()
            return False
        if reply.command == r2000.CMD_GET_TEMPERATURE and reply.kind == "response":
            self._take_temperature(reply)
            return False
        return super()._on_reply(reply)
