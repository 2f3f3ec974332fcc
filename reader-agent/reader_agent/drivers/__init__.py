"""Reader drivers: one per family, each running over a pyserial port opened by URL.

Public API:

- `open_driver(protocol, url, **settings) -> ReaderDriver`. `protocol` is a config name
  ("thingmagic", "r200", "r2000", "chafon" or an alias), `url` anything `serial.serial_for_url`
  opens (`/dev/rfid0`, a pty path, `loop://`); settings are `ReaderSettings` fields
  (region, power_dbm, antennas, baudrate, command_timeout, watchdog, ...), unknown keys are
  refused. `port_factory=` injects the transport (tests). For "llrp" (a network reader,
  `drivers.llrp`), `url` is `llrp://host` or `llrps://host`, settings are `LlrpSettings`
  fields, and the driver has the same interface with `LlrpCounters`.
- `ReaderDriver.reads()`: iterator of `reader_agent.reads.TagRead`; runs until `close()`
  (callable from another thread), reconfiguring after a reader reset and reopening the port
  with capped backoff after an unplug. `connected`, `last_error`, `reader_info` and
  `counters` (`DriverCounters`: frames_ok, bad_checksum, garbage_bytes, resyncs, malformed,
  reads, reconnects, restarts, command_errors, backlog_dropped) are for health reports.
- Desk operations, one at a time and never while `reads()` runs: `survey(seconds)` counts the
  reads per EPC, `write_epc(epc)` writes PC + EPC to the tag in the field (`can_write`
  families only: ThingMagic, R200).

Errors: `DriverError` is the root (`DriverConfigError`, `CommandTimeout`, `CommandFailed`,
`WriteUnsupported`).
"""

from __future__ import annotations

from typing import Any

from reader_agent.drivers.base import PortFactory, ReaderDriver
from reader_agent.drivers.chafon import ChafonDriver
from reader_agent.drivers.llrp import LlrpDriver, LlrpSettings
from reader_agent.drivers.r200 import R200Driver
from reader_agent.drivers.r2000 import R2000Driver
from reader_agent.drivers.settings import (
    CommandFailed,
    CommandTimeout,
    DriverConfigError,
    DriverCounters,
    DriverError,
    ReaderSettings,
    WriteUnsupported,
)
from reader_agent.drivers.thingmagic import ThingMagicDriver
from reader_agent.protocol import ALIASES

__all__ = [
    "CommandFailed",
    "CommandTimeout",
    "DriverConfigError",
    "DriverCounters",
    "DriverError",
    "LlrpDriver",
    "ReaderDriver",
    "ReaderSettings",
    "WriteUnsupported",
    "open_driver",
]

DRIVERS: dict[str, type[ReaderDriver]] = {
    "thingmagic": ThingMagicDriver,
    "r200": R200Driver,
    "r2000": R2000Driver,
    "chafon": ChafonDriver,
}


def open_driver(protocol: str, url: str, *, port_factory: PortFactory | None = None,
                **settings: Any) -> ReaderDriver | LlrpDriver:
    """A driver for `protocol` on `url`; the port opens when `reads()` is first iterated."""
    name = ALIASES.get(protocol.lower(), protocol.lower())
    if name == "llrp":  # a network reader: `url` is llrp://host or llrps://host
        return LlrpDriver(url, LlrpSettings.from_mapping(settings))
    driver_class = DRIVERS.get(name)
    if driver_class is None:
        raise DriverConfigError(f"unknown reader protocol {protocol[:40]!r}; "
                                f"known: {sorted([*DRIVERS, *ALIASES, 'llrp'])}")
    parsed = ReaderSettings.from_mapping(settings)
    if port_factory is None:
        return driver_class(url, parsed)
    return driver_class(url, parsed, port_factory=port_factory)

