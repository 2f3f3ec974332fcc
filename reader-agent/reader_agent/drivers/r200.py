"""Driver for Magic RF "R200" modules (YRM100, JRD-4035 / M5Stack UHF-RFID).

The module has one antenna. Continuous reading is "multiple polling" (0x27) with the largest
round count; it acknowledges nothing, and every empty round answers with a "no tag" error
frame, so silence always means the module stopped (reset, or the rounds ran out) and the
watchdog restarts polling.
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
from reader_agent.protocol import ReaderReply, r200

TAG_ERRORS = {r200.ERR_NO_TAG: "no tag answered",
              r200.ERR_WRITE_FAILED: "no tag answered the write",
              r200.ERR_LOCK_FAILED: "no tag answered the lock",
              r200.ERR_ACCESS: "the tag refused the access password"}


class R200Driver(ReaderDriver):
    protocol = "r200"
    can_write = True
    can_lock = True

    def _validate(self, settings: ReaderSettings) -> None:
        if tuple(settings.antennas) != (1,):
            raise DriverConfigError("R200 modules have a single antenna port: antennas = [1]")
        if settings.region not in r200.REGIONS:
            raise DriverConfigError(f"region {settings.region!r} unknown for R200; "
                                    f"known: {sorted(r200.REGIONS)}")
        if settings.power_dbm * 100 > r200.MAX_POWER_CDBM:
            raise DriverConfigError(f"R200 power is at most {r200.MAX_POWER_CDBM / 100} dBm")

    def _configure(self) -> None:
        # A module left streaming by a previous host answers nothing else until stopped;
        # a silent one was not streaming.
        with contextlib.suppress(CommandTimeout):
            self._transact(r200.cmd_stop_multi_poll(), r200.CMD_STOP_MULTI_POLL, check=False,
                           timeout=min(self.settings.command_timeout, 0.5))
        self.reader_info = self._transact(r200.cmd_module_info(), r200.CMD_MODULE_INFO).data
        self._transact(r200.cmd_set_region(self.settings.region), r200.CMD_SET_REGION)
        power = round(self.settings.power_dbm * 100)
        self._transact(r200.cmd_set_power(power), r200.CMD_SET_POWER)

    def _start_inventory(self) -> None:
        self._send(r200.cmd_multi_poll())

    def _send_stop(self) -> None:
        self._send(r200.cmd_stop_multi_poll())

    def _write_memory(self, bank: int, word_address: int, data: bytes) -> None:
        self._tag_operation(r200.cmd_write_memory(bank, word_address, data),
                            r200.CMD_WRITE_MEMORY)

    def _lock(self, mask: int, action: int, access_password: int) -> None:
        self._tag_operation(r200.cmd_lock(mask, action, access_password), r200.CMD_LOCK)

    def _tag_operation(self, frame: bytes, command: int) -> None:
        reply = self._transact(frame, command, check=False)
        if reply.ok:
            return
        if reply.code in (r200.ERR_WRITE_GEN2 | r200.GEN2_MEMORY_LOCKED,
                          r200.ERR_LOCK_GEN2 | r200.GEN2_MEMORY_LOCKED):
            raise TagLocked(command, reply.code)
        raise CommandFailed(command, reply.code, TAG_ERRORS.get(reply.code, ""))

    def _answers(self, reply: ReaderReply, command: int) -> bool:
        if reply.kind == "error" and reply.command == r200.CMD_ERROR:
            return True  # error frames do not name the command they answer
        return reply.command == command and reply.kind == "response"
