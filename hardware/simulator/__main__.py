"""`kitledger-sim`: run a simulated UHF reader on a pseudo-terminal for demos and manual tests.

    kitledger-sim --protocol thingmagic --tag urn:epc:id:giai:0614141.5678 --rate 50
    kitledger-sim --scenario hardware/simulator/scenarios/issue-desk.toml --link /tmp/rfid0
    kitledger-sim --protocol llrp --llrp-port 5084 --tag urn:epc:id:giai:0614141.5678

Prints the port path (a symlink that survives simulated replugs), then runs until Ctrl-C or
`--duration` seconds, printing what it sent. While running, send SIGUSR1 to reset the reader
and SIGUSR2 to unplug it for one second. With `--protocol llrp` it is an LLRP reader on a
loopback TCP port instead (printed as "url"); SIGUSR1 reboots it, SIGUSR2 cuts its network for
one second.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import FrameType

from hardware.simulator.llrp import LlrpReaderSimulator
from hardware.simulator.scenario import (
    MAX_READS_PER_SECOND,
    PROTOCOLS,
    Scenario,
    ScenarioError,
    TagSpec,
    load_scenario,
    parse_epc,
)
from hardware.simulator.server import ReaderSimulator


def _scenario(options: argparse.Namespace) -> Scenario:
    scenario = load_scenario(options.scenario) if options.scenario else Scenario()
    if options.protocol:
        scenario = replace(scenario, protocol=options.protocol)
    if options.rate is not None:
        if not 0 <= options.rate <= MAX_READS_PER_SECOND:
            raise ScenarioError(f"--rate must be within 0..{MAX_READS_PER_SECOND}")
        scenario = replace(scenario, reads_per_second=options.rate)
    extra = tuple(TagSpec(parse_epc(text, "--tag"), {1: -55}) for text in options.tag)
    if extra:
        scenario = replace(scenario, tags=scenario.tags + extra)
    return scenario


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kitledger-sim", description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", choices=PROTOCOLS)
    parser.add_argument("--llrp-port", type=int, default=0,
                        help="TCP port of an LLRP reader (default: any free one)")
    parser.add_argument("--scenario", help="scenario file (.toml or .json)")
    parser.add_argument("--tag", action="append", default=[],
                        help="an EPC (hex or pure-identity URI) always in the field, antenna 1")
    parser.add_argument("--rate", type=float, help="tag reads per second")
    parser.add_argument("--link", help="symlink path for the port (default: a temp dir)")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0: run until interrupted)")
    options = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        scenario = _scenario(options)
    except (ScenarioError, OSError) as exc:
        print(f"kitledger-sim: {exc}", file=sys.stderr)
        return 2
    done = threading.Event()
    if scenario.protocol == "llrp":
        return _run_llrp(scenario, options.llrp_port, options.duration, done)
    with ReaderSimulator(scenario=scenario, link_path=options.link) as sim:
        _on_signals(sim.reset_reader, lambda: sim.unplug(1.0), done)
        print(json.dumps({"port": sim.port_path, "protocol": sim.protocol,
                          "tags": len(scenario.tags)}), flush=True)
        done.wait(options.duration or None)
        print(json.dumps({"stats": sim.stats}), flush=True)
    return 0


def _run_llrp(scenario: Scenario, port: int, duration: float, done: threading.Event) -> int:
    with LlrpReaderSimulator(scenario, port=port) as sim:
        _on_signals(lambda: sim.reboot(0.5), lambda: sim.cut_network(1.0), done)
        print(json.dumps({"url": sim.url, "protocol": "llrp", "tags": len(scenario.tags)}),
              flush=True)
        done.wait(duration or None)
        print(json.dumps({"stats": sim.stats}), flush=True)
    return 0


def _on_signals(on_usr1: Callable[[], None], on_usr2: Callable[[], None],
                done: threading.Event) -> None:
    """SIGUSR1 and SIGUSR2 inject the reader's faults; SIGINT and SIGTERM end the run."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            on_usr1()
        elif signum == signal.SIGUSR2:
            on_usr2()
        else:
            done.set()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, on_signal)


if __name__ == "__main__":
    sys.exit(main())
