"""The tag read: what a protocol driver hands to the read pipeline.

Shared by every reader family's driver and by the pipeline, so the pipeline never depends on a
particular serial protocol.
"""

from __future__ import annotations

from typing import NamedTuple


class TagRead(NamedTuple):
    """One inventory round's sighting of one tag on one antenna.

    `epc` is the EPC bank's identifier bytes (PC word and CRC removed). `rssi_dbm`,
    `frequency_khz` and `reader_time_us` are None where the protocol does not report them;
    `reader_time_us` is the reader's own clock (LLRP's first-seen time, UTC microseconds), for
    diagnosis only. `monotonic` is the agent's monotonic clock at decode time (seconds);
    wall-clock time is attached later when the observation is made, so the pipeline's timing
    never jumps with NTP (nor with a reader's clock).

    A NamedTuple rather than a frozen dataclass: a reader can deliver a thousand reads a
    second to a Pi, and a tuple is built several times faster while staying immutable.
    """

    epc: bytes
    antenna: int
    rssi_dbm: int | None
    monotonic: float
    frequency_khz: int | None = None
    pc: int | None = None
    reader_time_us: int | None = None

    @property
    def epc_hex(self) -> str:
        return self.epc.hex().upper()
