"""Reader settings a driver applies, the driver's counters and the drivers' typed errors."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MAX_ANTENNAS = 16
"""No supported reader family has more than 16 antenna ports."""


class DriverError(Exception):
    """Root of every error raised by the reader drivers."""


class DriverConfigError(DriverError):
    """A setting the driver or its reader family cannot apply."""


class CommandTimeout(DriverError):
    """The reader did not answer a command in time (unplugged, rebooting or wrong baud)."""


class WriteUnsupported(DriverError):
    """The reader family (or the EPC asked for) cannot be written by this driver."""


class CommandFailed(DriverError):
    """The reader answered a command with an error status."""

    def __init__(self, command: int, code: int, detail: str = "") -> None:
        super().__init__(f"reader refused command {command:#04x} with status {code:#06x}"
                         + (f": {detail}" if detail else ""))
        self.command = command
        self.code = code


class TagLocked(CommandFailed):
    """The tag refused a write: its memory is locked (Gen2 "memory locked"), so it is someone's
    commissioned tag, or its access password is not the one sent."""

    def __init__(self, command: int, code: int) -> None:
        super().__init__(command, code, "the tag's memory is locked (Gen2 \"memory locked\"): "
                         "it was commissioned and locked before; it cannot be rewritten "
                         "without its access password")


@dataclass(frozen=True, slots=True)
class ReaderSettings:
    """What the agent's config says about the reader. Times are seconds."""

    region: str = "EU"
    power_dbm: float = 20.0
    antennas: tuple[int, ...] = (1,)
    baudrate: int = 115_200
    command_timeout: float = 1.0
    watchdog: float = 3.0
    """Silence while inventory runs for this long means the reader reset or hung: reconfigure."""
    inter_byte_timeout: float = 0.05
    """A partial frame older than this will never complete (docs/reader-protocols.md §0)."""
    reconnect_initial: float = 0.1
    reconnect_max: float = 5.0
    read_timeout: float = 0.05
    temperature_interval: float = 60.0
    """Seconds between temperature reads, for families that report one (0: never). A
    ThingMagic module answers nothing while it streams, so each read pauses inventory for
    about a quarter of a second."""

    def __post_init__(self) -> None:
        if not isinstance(self.region, str) or not 0 < len(self.region) <= 16:
            raise DriverConfigError(f"region must be a short name such as 'EU', not "
                                    f"{self.region!r:.40}")
        if not self.antennas or len(self.antennas) > MAX_ANTENNAS:
            raise DriverConfigError(f"antennas must list 1..{MAX_ANTENNAS} ports")
        if any(not isinstance(a, int) or not 1 <= a <= MAX_ANTENNAS for a in self.antennas):
            raise DriverConfigError(f"antenna ports must be 1..{MAX_ANTENNAS}: {self.antennas}")
        if not 0 <= self.power_dbm <= 33:
            raise DriverConfigError(f"power_dbm {self.power_dbm} outside 0..33")
        timings = (self.command_timeout, self.watchdog, self.inter_byte_timeout,
                   self.reconnect_initial, self.reconnect_max, self.read_timeout)
        if any(t <= 0 or t > 3600 for t in timings):
            raise DriverConfigError("timeouts must be positive and below an hour")
        if not 0 <= self.temperature_interval <= 86_400:
            raise DriverConfigError("temperature_interval must be 0 (never) up to a day")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> ReaderSettings:
        """Build from config keys, refusing unknown ones by name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DriverConfigError(f"unknown reader settings {unknown}; known: {sorted(known)}")
        values = dict(values)
        if "antennas" in values:
            values["antennas"] = tuple(values["antennas"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise DriverConfigError(str(exc)) from None


@dataclass(slots=True)
class DriverCounters:
    """Health figures of one driver since it was created (they survive reconnects)."""

    frames_ok: int = 0
    bad_checksum: int = 0
    garbage_bytes: int = 0
    resyncs: int = 0
    malformed: int = 0
    reads: int = 0
    reconnects: int = 0
    restarts: int = 0
    command_errors: int = 0
    backlog_dropped: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
