"""Driver for Chafon UHFReader18 / UHFReader288 readers (CF-RU5102, CF-RU6402, UR-series).

The reader answers one inventory command per round, over one or more frames (status 0x03 on
all but the last), and takes no other command until the round is over. So continuous reading
is this driver sending the next inventory after each round's last frame, cycling through the
configured antennas as the R2000 driver does. The UHFReader288 command names the antenna; a
UHFReader18 refuses it as an operand length error, and the driver falls back to the bare
UHFReader18 command, which reads the reader's single antenna.

Region and output power are not applied: the protocol pages the codec follows
(docs/reader-protocols.md §4) document no command for them, so the reader keeps what its vendor
tool stored. `reader_info` holds the reader's own report (version, type, band, power, scan
time).
"""

from __future__ import annotations

from reader_agent.drivers.base import ReaderDriver
from reader_agent.drivers.settings import (
    CommandFailed,
    DriverConfigError,
    ReaderSettings,
    TagLocked,
    WriteUnsupported,
)
from reader_agent.protocol import ReaderReply, chafon
from reader_agent.protocol.framing import BANK_EPC

SCAN_TIME = 3
"""Longest round the reader may take, in 100 ms: short rounds keep antenna switching fair."""
ROUND_MARGIN = 0.5
"""Seconds beyond the scan time after which a silent reader lost its round's last frame (or
reset): it is idle either way, so waiting the full watchdog would only lose reading time."""
REFUSED = frozenset({chafon.STATUS_OPERAND_LENGTH, chafon.STATUS_ILLEGAL})
GEN2_MEMORY_LOCKED = 0x04
TAG_ERRORS = {chafon.STATUS_POOR_COMMUNICATION: "a tag answered poorly (move it closer)",
              chafon.STATUS_NO_TAG: "no tag answered",
              chafon.STATUS_PASSWORD: "the tag refused the access password"}


class ChafonDriver(ReaderDriver):
    protocol = "chafon"
    can_write = True

    _antenna_index = 0
    reader18 = False
    """True once the reader refused the UHFReader288 inventory: a UHFReader18."""

    def _validate(self, settings: ReaderSettings) -> None:
        if any(a > chafon.MAX_ANTENNAS for a in settings.antennas):
            raise DriverConfigError(f"Chafon readers have antenna ports 1..{chafon.MAX_ANTENNAS}")

    def _configure(self) -> None:
        self.reader_info = self._transact(chafon.cmd_get_reader_info(),
                                          chafon.CMD_GET_READER_INFO).data

    def _start_inventory(self) -> None:
        self._antenna_index = 0
        self._send(self._inventory())

    def _inventory(self) -> bytes:
        if self.reader18:
            return chafon.cmd_inventory_18()
        antenna = self.settings.antennas[self._antenna_index]
        return chafon.cmd_inventory(antenna, scan_time=SCAN_TIME)

    def _write_memory(self, bank: int, word_address: int, data: bytes) -> None:
        # Write EPC carries the EPC alone and the reader sets the PC word: only the write
        # of PC + EPC from word 1 (`write_epc`) maps onto it.
        if bank != BANK_EPC or word_address != 1:
            raise WriteUnsupported("Chafon readers write only a whole EPC here")
        reply = self._transact(chafon.cmd_write_epc(data[2:]), chafon.CMD_WRITE_EPC,
                               check=False, timeout=self.settings.command_timeout + 1.0)
        if reply.ok:
            return
        if reply.code == chafon.STATUS_TAG_ERROR and reply.data[:1] == bytes((GEN2_MEMORY_LOCKED,)):
            raise TagLocked(chafon.CMD_WRITE_EPC, reply.code)
        raise CommandFailed(chafon.CMD_WRITE_EPC, reply.code, TAG_ERRORS.get(reply.code, ""))

    def _next_round(self) -> None:
        antennas = self.settings.antennas
        if not self.reader18 and len(antennas) > 1:
            self._antenna_index = (self._antenna_index + 1) % len(antennas)
        self._send(self._inventory())

    def _silence_limit(self) -> float:
        return min(self.settings.watchdog, SCAN_TIME / 10 + ROUND_MARGIN)

    def _answers(self, reply: ReaderReply, command: int) -> bool:
        if reply.command == chafon.CMD_ILLEGAL and reply.kind == "error":
            return True  # "illegal command" answers do not name the command
        return reply.command == command and reply.kind in ("response", "error")

    def _on_reply(self, reply: ReaderReply) -> bool:
        if reply.command == chafon.CMD_INVENTORY and reply.kind == "summary":
            self._next_round()
            return False
        inventory = reply.command in (chafon.CMD_INVENTORY, chafon.CMD_ILLEGAL)
        if inventory and reply.kind == "error":
            if reply.code in REFUSED and not self.reader18:
                self.reader18 = True
                self.last_error = "reader refused the UHFReader288 inventory: using the " \
                                  "UHFReader18 command on its single antenna"
            else:
                super()._on_reply(reply)  # counted; the round is over all the same
            self._next_round()
            return False
        return super()._on_reply(reply)
