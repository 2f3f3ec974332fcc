"""Driver for Impinj Indy R2000 readers speaking the 0xA0 serial protocol.

The reader runs one real-time inventory command (0x89) at a time on its work antenna and ends
it with a summary frame, so continuous reading is this driver issuing "next work antenna,
inventory" after every summary, cycling through the configured ports.
"""

from __future__ import annotations

from reader_agent.drivers.base import ReaderDriver
from reader_agent.drivers.settings import DriverConfigError, ReaderSettings
from reader_agent.protocol import ReaderReply, r2000

INVENTORY_REPEAT = 1
"""Rounds per command: one keeps antenna switching fair and the watchdog responsive."""
ROUND_SILENCE = 0.15
"""A round that ends in silence lost its summary frame on the line, or the reader reset: the
reader is idle either way, so waiting the full watchdog would only lose reading time."""


class R2000Driver(ReaderDriver):
    protocol = "r2000"

    _antenna_index = 0

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
            self._next_round()
            return False
        return super()._on_reply(reply)
