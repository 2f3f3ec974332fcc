"""Driver for ThingMagic / JADAK Mercury modules (M6e Nano, M6e Micro, M7e).

Bring-up follows MercuryAPI's connect and SparkFun's example: stop any stream left running by
a previous host, leave the bootloader if the module sits in it, then Gen2, antennas, region,
power, disable the unique-tag filter, and start continuous reading (0x2F with embedded 0x22).
"""

from __future__ import annotations

import contextlib

from reader_agent.drivers.base import ReaderDriver
from reader_agent.drivers.settings import (
    CommandFailed,
    CommandTimeout,
    DriverConfigError,
    ReaderSettings,
    TagLocked,
)
from reader_agent.protocol import ReaderReply
from reader_agent.protocol import thingmagic as tm

STREAM_ERRORS = {0x0504: "temperature throttling", 0x0505: "high return loss (check antenna)"}
TAG_ERRORS = {tm.STATUS_NO_TAGS: "no tag answered", tm.STATUS_WRITE_FAILED: "the write failed",
              0x0423: "memory overrun (the data does not fit the bank)",
              0x042B: "the tag had too little power (move it closer)"}


class ThingMagicDriver(ReaderDriver):
    protocol = "thingmagic"
    can_write = True
    can_lock = True
    reads_temperature = True
    _temperature_unsupported = False

    def _validate(self, settings: ReaderSettings) -> None:
        if settings.region not in tm.REGIONS:
            raise DriverConfigError(f"region {settings.region!r} unknown for ThingMagic; "
                                    f"known: {sorted(tm.REGIONS)}")
        if any(a > 0x0F for a in settings.antennas):
            raise DriverConfigError("ThingMagic antenna ports are numbered 1..15")

    def _configure(self) -> None:
        # A module left streaming by a previous host answers nothing else until stopped;
        # a silent one was not streaming.
        with contextlib.suppress(CommandTimeout):
            self._transact(tm.cmd_stop_continuous(), tm.OP_MULTI_PROTOCOL, check=False,
                           timeout=min(self.settings.command_timeout, 0.5))
        program = self._transact(tm.cmd_get_program(), tm.OP_GET_PROGRAM)
        if program.data and program.data[0] & 0x03 == 0x01:
            self._transact(tm.cmd_boot_firmware(), tm.OP_BOOT_FIRMWARE)
        self.reader_info = self._transact(tm.cmd_version(), tm.OP_VERSION).data
        self._transact(tm.cmd_set_protocol_gen2(), tm.OP_SET_PROTOCOL)
        self._transact(tm.cmd_set_antennas(list(self.settings.antennas)), tm.OP_SET_ANTENNA)
        self._transact(tm.cmd_set_region(self.settings.region), tm.OP_SET_REGION)
        power = round(self.settings.power_dbm * 100)
        self._transact(tm.cmd_set_read_power(power), tm.OP_SET_READ_POWER)
        self._transact(tm.cmd_disable_read_filter(), tm.OP_SET_READER_PARAM)
        if self.settings.temperature_interval > 0:
            self._read_temperature()  # not streaming yet: free to ask
            self._temperature_at = self._clock()

    def _read_temperature(self) -> None:
        """Get Temperature (0x72). A module that does not know it (older firmware) is not
        asked again; its health then carries no temperature."""
        if self._temperature_unsupported:
            return
        try:
            reply = self._transact(tm.cmd_get_temperature(), tm.OP_GET_TEMPERATURE)
        except CommandFailed as exc:
            self._temperature_unsupported = True
            self.last_error = f"no temperature from this module: {exc}"
            return
        self.temperature_c = tm.parse_temperature(reply.data)

    def _refresh_temperature(self) -> None:
        # The module answers nothing else while it streams: stop, keep the reads that were
        # still buffered, ask, and stream again.
        if self._temperature_unsupported:
            return
        self._send_stop()
        self._drain(hold=True)
        try:
            self._read_temperature()
        finally:
            self._start_inventory()

    def _start_inventory(self) -> None:
        self._transact(tm.cmd_start_continuous(), tm.OP_MULTI_PROTOCOL)

    def _send_stop(self) -> None:
        self._send(tm.cmd_stop_continuous())

    def _write_memory(self, bank: int, word_address: int, data: bytes) -> None:
        self._tag_operation(tm.cmd_write_tag_data(bank, word_address, data),
                            tm.OP_WRITE_TAG_DATA)

    def _lock(self, mask: int, action: int, access_password: int) -> None:
        self._tag_operation(tm.cmd_lock_tag(mask, action, access_password), tm.OP_LOCK_TAG)

    def _tag_operation(self, frame: bytes, opcode: int) -> None:
        """A tag write or lock: the module's own timeout (1 s) plus the usual margin."""
        reply = self._transact(frame, opcode, check=False,
                               timeout=self.settings.command_timeout + 1.0)
        if reply.code == tm.STATUS_MEMORY_LOCKED:
            raise TagLocked(opcode, reply.code)
        if not reply.ok:
            raise CommandFailed(opcode, reply.code, TAG_ERRORS.get(reply.code, ""))

    def _answers(self, reply: ReaderReply, command: int) -> bool:
        # Keep-alives and records are opcode 0x22 and never answer a configuration command.
        return reply.command == command and reply.kind in ("response", "error", "event")

    def _on_reply(self, reply: ReaderReply) -> bool:
        if reply.command in (tm.OP_VERSION, tm.OP_BOOT_FIRMWARE):
            return True  # unsolicited version: the module powered up again
        if reply.command == tm.OP_MULTI_PROTOCOL and reply.kind == "event":
            return True  # stream ended without our stop
        if reply.kind == "keepalive" and reply.code in STREAM_ERRORS:
            self.last_error = STREAM_ERRORS[reply.code]
            return False
        return super()._on_reply(reply)
