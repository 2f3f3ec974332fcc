"""`kitledger-agent run` as a real process reading the simulator on a real pty, per protocol,
publishing to a real Mosquitto; a subscriber checks every signature and that sequence numbers
are contiguous. Mid-run the reader is unplugged and replugged, and garbage is put on the line:
reading resumes without a restart, and the garbage is skipped, counted and visible in health.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from reader_agent.identity import load_key
from reader_agent.protocol import chafon

from hardware.simulator import Faults, ReaderSimulator, Scenario, TagSpec
from ledger.core.envelope import Envelope
from tests.fixtures.mosquitto import MosquittoBroker
from tests.reader_agent.agent_support import Subscriber, verified_events, wait_for

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
FAST_DRIVER = ('antennas = [1]\nwatchdog = 1.0\nreconnect_initial = 0.05\n'
               'reconnect_max = 0.2\ncommand_timeout = 0.5')
GARBAGE = bytes.fromhex("FF FF 00 BB 7E 7E A0 13 37 BB 02 AA DD FF")
"""Start and end byte values of all three families, and length bytes that promise a frame."""


def tag(n: int) -> bytes:
    """A distinct GIAI-96 EPC per n."""
    return bytes.fromhex("3418") + n.to_bytes(10, "big")


def add_tags(sim: ReaderSimulator, *numbers: int) -> None:
    """Tags that enter the field now (the simulator reads `scenario.tags` every tick)."""
    now = sim.elapsed()
    extra = tuple(TagSpec(tag(n), {1: -50}, arrive=now) for n in numbers)
    sim.scenario = replace(sim.scenario, tags=sim.scenario.tags + extra)


def lone_frame(sim: ReaderSimulator, epc: bytes) -> bytes:
    """One frame carrying just this tag, as the simulated reader sends it (a Chafon model
    answers a whole round at once, so its frame is built here)."""
    if sim.protocol == "chafon":
        return chafon.encode_inventory([(epc, 84)], status=chafon.STATUS_MORE)
    return sim.model.tag_frame(epc, 1, -45, sim.elapsed())


def health(sub: Subscriber) -> dict[str, Any]:
    payloads = sub.payloads("/health")
    return json.loads(payloads[-1]) if payloads else {}


def arrived(sub: Subscriber) -> dict[str, int]:
    """EPC hex -> how many `arrive` observations the subscriber saw for it."""
    counts: dict[str, int] = {}
    for payload in set(sub.envelopes()):  # QoS 1 may deliver one envelope twice
        record = Envelope.from_bytes(payload).payload
        if record["kind"] == "arrive":
            counts[record["epc"]] = counts.get(record["epc"], 0) + 1
    return counts


@pytest.mark.parametrize("protocol", ["thingmagic", "r200", "r2000", "chafon"])
def test_agent_process_reads_simulator_survives_unplug_and_garbage(
        protocol: str, mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber], tmp_path: Path) -> None:
    scenario = Scenario(tags=tuple(TagSpec(tag(n), {1: -50}) for n in range(5)),
                        protocol=protocol, reads_per_second=300,
                        faults=Faults(split_writes=True))
    sub = subscriber_factory(mosquitto.port, ack=True)  # rows leave on the (stand-in) API's ack
    assert wait_for(lambda: sub.client.is_connected(), 10)
    with ReaderSimulator(scenario=scenario) as sim:
        config = write_config(protocol=protocol, port=sim.port_path, settings=FAST_DRIVER,
                              mqtt_port=mosquitto.port)
        agent = subprocess.Popen([AGENT, "run", "--config", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            first = {tag(n).hex().upper() for n in range(5)}
            assert wait_for(lambda: first <= set(arrived(sub)), 20), health(sub)

            # Unplug: the pty disappears and a new one appears behind the same path.
            sim.unplug(0.5)
            assert wait_for(lambda: health(sub).get("reader_counters", {})
                            .get("reconnects", 0) >= 1, 15), health(sub)
            add_tags(sim, 100, 101)
            assert wait_for(lambda: {tag(100).hex().upper(), tag(101).hex().upper()}
                            <= set(arrived(sub)), 15), health(sub)
            assert wait_for(lambda: health(sub)["reader_connected"] is True, 5)

            # Garbage, then one hand-made frame of a tag no one else reports: that very frame
            # must come through (resync within one frame) and the garbage must be counted.
            before = health(sub)["reader_counters"]
            for n in range(200, 205):
                sim.inject(GARBAGE + lone_frame(sim, tag(n)))
            injected = {tag(n).hex().upper() for n in range(200, 205)}
            assert wait_for(lambda: injected <= set(arrived(sub)), 15), health(sub)
            assert wait_for(lambda: health(sub)["reader_counters"]["garbage_bytes"]
                            - before["garbage_bytes"] >= 5 * (len(GARBAGE) - 2), 5), health(sub)
            after = health(sub)["reader_counters"]
            assert after["resyncs"] > before["resyncs"]
            assert wait_for(lambda: health(sub).get("outbox_depth") == 0, 10)
        finally:
            agent.send_signal(signal.SIGTERM)
            _, stderr = agent.communicate(timeout=20)
    assert agent.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert b"-----BEGIN" not in stderr  # the key never reaches the log

    key = load_key(tmp_path / "keys" / "reader.key")
    events = verified_events(sub.envelopes(), key.public_key())
    assert sorted(events) == list(range(len(events)))  # contiguous from 0, none twice
    assert all(count == 1 for count in arrived(sub).values())
    assert set(arrived(sub)) == first | {tag(100).hex().upper(), tag(101).hex().upper()} | injected


def test_health_says_the_reader_is_disconnected_only_when_it_stays_down(
        mosquitto: MosquittoBroker, write_config: Callable[..., Path],
        subscriber_factory: Callable[..., Subscriber]) -> None:
    """A reader back within READER_DOWN_AFTER_S (a watchdog restart, a cable knocked) stays
    "connected" in every health message, so the API raises no reader_down for it; one that
    stays away is reported disconnected once it has been gone that long, and connected again
    once it is back."""
    scenario = Scenario(tags=(TagSpec(tag(1), {1: -50}),), protocol="r2000",
                        reads_per_second=100)
    sub = subscriber_factory(mosquitto.port, ack=True)
    assert wait_for(lambda: sub.client.is_connected(), 10)
    with ReaderSimulator(scenario=scenario) as sim:
        config = write_config(protocol="r2000", port=sim.port_path, settings=FAST_DRIVER,
                              mqtt_port=mosquitto.port)
        agent = subprocess.Popen([AGENT, "run", "--config", str(config)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            assert wait_for(lambda: health(sub).get("reader_connected") is True, 20)
            seen: list[bool] = []
            sim.unplug(1.0)
            assert wait_for(lambda: seen.append(health(sub)["reader_connected"]) or (
                health(sub).get("reader_counters", {}).get("reconnects", 0) >= 1), 15)
            assert wait_for(lambda: seen.append(health(sub)["reader_connected"]) or False, 2) \
                is False  # two more seconds of health messages, 0.2 s apart
            assert len(seen) > 10 and all(seen), seen
            sim.unplug(12.0)
            assert wait_for(lambda: health(sub)["reader_connected"] is False, 15), health(sub)
            assert wait_for(lambda: health(sub)["reader_connected"] is True, 20), health(sub)
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.communicate(timeout=20)
