"""Benchmark: how long an LLRP reader's reads stop after a fault, with the driver's defaults.

    .venv/bin/python bench/llrp_reconnect.py [--runs 5] [--keepalive 2.0]

Runs the LLRP driver against the simulated reader on loopback (one ROSpec, one tag at 500
reads/s) and, per fault, measures from the moment the fault is injected to the first tag read
delivered after it: reader reboot (port closed for `--boot` seconds, ROSpecs lost), TCP reset
(ROSpecs kept), network cut (half-open for `--cut` seconds: found only by the missing
keepalives, `keepalive` x `keepalive_misses`), and a reader slow by `--slow` seconds on every
message (under the timeouts: reads arrive late, no reconnect). Also prints the driver's own
`last_reconnect_ms` (connection lost -> reading again) and the gap minus the fault's own
duration (how long after the reader or the path is back). Medians of `--runs` runs.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import threading
import time
from collections.abc import Callable

from reader_agent.drivers.llrp import LlrpDriver, LlrpSettings

from hardware.simulator import Scenario, TagSpec
from hardware.simulator.llrp import LlrpReaderSimulator

EPC = bytes.fromhex("3034257BF7194E4000001A85")
SETTLE_S = 0.5
"""Reading steadily for this long before each fault."""


class Clocked:
    """The driver on its own thread, noting the monotonic time of every read."""

    def __init__(self, driver: LlrpDriver) -> None:
        self.driver = driver
        self.times: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for _ in self.driver.reads():
            self.times.append(time.monotonic())

    def first_read_after(self, t0: float, timeout: float = 120.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.times and self.times[-1] > t0:
                return min(t for t in self.times[-2000:] if t > t0)
            time.sleep(0.002)
        raise SystemExit("reads did not resume")


def measure(fault: Callable[[LlrpReaderSimulator], None], runs: int,
            settings: LlrpSettings) -> tuple[list[float], list[int]]:
    scenario = Scenario(tags=(TagSpec(EPC, {1: -50}),), protocol="llrp", reads_per_second=500)
    gaps: list[float] = []
    internal: list[int] = []
    with LlrpReaderSimulator(scenario) as sim:
        driver = LlrpDriver(sim.url, settings)
        clocked = Clocked(driver)
        for _ in range(runs):
            time.sleep(SETTLE_S)
            t0 = time.monotonic()
            fault(sim)
            time.sleep(0.05)  # reads already in flight are not "after"
            gaps.append(clocked.first_read_after(t0 + 0.05) - t0)
            internal.append(driver.counters.last_reconnect_ms)
            sim.slow(0.0)  # the slow-reader fault ends with its run
        driver.close()
        clocked.thread.join(timeout=10)
    return gaps, internal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keepalive", type=float, default=2.0)
    parser.add_argument("--boot", type=float, default=0.5)
    parser.add_argument("--cut", type=float, default=8.0,
                        help="longer than keepalive x 3, so the connection is found half-open")
    parser.add_argument("--slow", type=float, default=0.5)
    options = parser.parse_args()
    logging.getLogger("reader_agent").setLevel(logging.ERROR)  # one warning per fault
    settings = LlrpSettings(keepalive=options.keepalive)
    faults: dict[str, tuple[float, Callable[[LlrpReaderSimulator], None]]] = {
        f"reboot ({options.boot:g} s)": (options.boot, lambda sim: sim.reboot(options.boot)),
        "TCP reset": (0.0, lambda sim: sim.reset_connection()),
        f"network cut ({options.cut:g} s)": (options.cut,
                                              lambda sim: sim.cut_network(options.cut)),
        f"slow reader (+{options.slow:g} s)": (options.slow, lambda sim: sim.slow(options.slow)),
    }
    print(f"LLRP reconnect benchmark: driver defaults, keepalive {options.keepalive:g} s x 3, "
          f"median of {options.runs} runs")
    print(f"{'fault':<24}{'reads stop s':>14}{'after fault s':>15}{'max s':>8}"
          f"{'reconnect ms':>14}")
    for name, (duration, fault) in faults.items():
        gaps, internal = measure(fault, options.runs, settings)
        gap = statistics.median(gaps)
        print(f"{name:<24}{gap:>14.3f}{gap - duration:>15.3f}{max(gaps):>8.3f}"
              f"{statistics.median(internal):>14.0f}")


if __name__ == "__main__":
    main()
