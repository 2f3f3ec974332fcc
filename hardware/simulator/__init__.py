"""UHF reader simulator: the real ThingMagic, R200, R2000 and Chafon serial protocols on a
pty.

Public API:

- `ReaderSimulator(protocol=None, scenario=None, link_path=None)`: a context manager; inside
  it, `sim.port_path` is a symlink to the pty slave (stable across `sim.unplug()`), which the
  agent opens with pyserial like /dev/ttyUSB0. Fault injection at run time:
  `sim.reset_reader()`, `sim.unplug(duration)`, `sim.inject(raw_bytes)`; `sim.stats` counts
  what was sent; `sim.model` exposes the reader state (region, power, antennas, streaming).
- `Scenario`, `TagSpec`, `Faults`, `Event`, `load_scenario(path)`,
  `scenario_from_dict(obj)`: the scripted tag population and faults (format documented in
  `hardware.simulator.scenario`).
- `kitledger-sim` (`hardware.simulator.__main__:main`) runs one for demos.
"""

from hardware.simulator.scenario import (
    Event,
    Faults,
    Scenario,
    ScenarioError,
    TagSpec,
    load_scenario,
    scenario_from_dict,
)
from hardware.simulator.server import ReaderSimulator

__all__ = [
    "Event",
    "Faults",
    "ReaderSimulator",
    "Scenario",
    "ScenarioError",
    "TagSpec",
    "load_scenario",
    "scenario_from_dict",
]
