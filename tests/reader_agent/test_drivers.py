"""Drivers against the reader simulator on a real pty opened by pyserial: configuration applied,
reads streamed, garbage resynced and counted, reset and unplug/replug survived."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import serial
from reader_agent.drivers import DriverConfigError, ReaderDriver, open_driver
from reader_agent.epc import encode_pure_uri
from reader_agent.protocol import chafon, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.reads import TagRead

from hardware.simulator import Faults, ReaderSimulator, Scenario, TagSpec

RADIO = encode_pure_uri("urn:epc:id:giai:0614141.5678")
HOSTILE = bytes.fromhex("FFBB7EA0FF7EBB00A0FFFF7E")
FAST = {"watchdog": 1.0, "reconnect_initial": 0.05, "reconnect_max": 0.2,
        "command_timeout": 0.5}
PROTOCOLS = ["thingmagic", "r200", "r2000", "chafon"]


def scenario(protocol: str, rate: float = 300, faults: Faults | None = None) -> Scenario:
    second = {1: -70} if protocol == "r200" else {2: -66}
    return Scenario(tags=(TagSpec(RADIO, {1: -52}), TagSpec(HOSTILE, second)),
                    protocol=protocol, reads_per_second=rate, faults=faults or Faults())


class Collector:
    """Runs `driver.reads()` in a thread, like the agent does."""

    def __init__(self, driver: ReaderDriver) -> None:
        self.driver = driver
        self.reads: list[TagRead] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for read in self.driver.reads():
            self.reads.append(read)

    def wait_for(self, condition: Callable[[], bool], timeout: float = 8.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; counters {self.driver.counters}, "
                                     f"last error {self.driver.last_error}")
            time.sleep(0.02)

    def more_reads(self, count: int, timeout: float = 8.0) -> None:
        target = len(self.reads) + count
        self.wait_for(lambda: len(self.reads) >= target, timeout)


@contextmanager
def running(protocol: str, sim: ReaderSimulator, **settings: object) -> Iterator[Collector]:
    antennas = [1] if protocol == "r200" else [1, 2]
    driver = open_driver(protocol, sim.port_path, antennas=antennas, **{**FAST, **settings})
    collector = Collector(driver)
    collector.thread.start()
    try:
        yield collector
    finally:
        driver.close()
        collector.thread.join(timeout=5)
        assert not collector.thread.is_alive()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_configures_reader_and_streams_reads(protocol: str) -> None:
    with ReaderSimulator(scenario=scenario(protocol)) as sim, \
            running(protocol, sim, region="EU", power_dbm=20) as reads:
        reads.more_reads(60)
        assert reads.driver.connected
        seen = {(r.epc, r.antenna) for r in reads.reads}
        assert (RADIO, 1) in seen
        assert (HOSTILE, 1 if protocol == "r200" else 2) in seen
        if protocol == "chafon":  # relative strength, not dBm: never passed as RSSI
            assert all(r.rssi_dbm is None for r in reads.reads)
        else:
            assert all(r.rssi_dbm is not None and r.rssi_dbm < 0 for r in reads.reads)
        # Chafon: no documented region or power command; the reader keeps its stored ones.
        expected = {"thingmagic": (tm.REGIONS["EU"], 2000), "r200": (r200.REGIONS["EU"], 2000),
                    "r2000": (r2000.REGIONS["EU"][0], 20), "chafon": (0x4E, 0x1E)}[protocol]
        assert (sim.model.region, sim.model.power) == expected
        if protocol == "thingmagic":
            assert sim.model.antennas == {1, 2}
            assert reads.driver.reader_info[4] == 0x30  # M6e Nano hardware byte
        assert reads.driver.counters.bad_checksum == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_garbage_on_the_line_resyncs_within_one_frame(protocol: str) -> None:
    # No tags in the field: the only tag frames are the ones injected between garbage.
    quiet = Scenario(protocol=protocol, reads_per_second=0)
    frame = {"thingmagic": tm.encode_tag_record(RADIO, antenna=1),
             "r200": r200.encode_notification(RADIO),
             "r2000": r2000.encode_tag(RADIO),
             "chafon": chafon.encode_inventory([(RADIO, 70)], status=chafon.STATUS_MORE)}[protocol]
    garbage = bytes.fromhex("FF FF 00 BB 7E 7E A0 13 37 BB 02 AA DD FF")
    with ReaderSimulator(scenario=quiet) as sim, running(protocol, sim) as reads:
        reads.wait_for(lambda: reads.driver.connected)
        before = reads.driver.counters
        for _ in range(10):
            sim.inject(garbage + frame)
        reads.wait_for(lambda: len(reads.reads) >= 10)
        time.sleep(0.2)
        after = reads.driver.counters
        assert len(reads.reads) == 10  # every frame after garbage arrived: none lost
        assert all(r.epc == RADIO for r in reads.reads)
        assert after.garbage_bytes - before.garbage_bytes >= 10 * len(garbage) - 10
        assert after.resyncs > before.resyncs


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_faulty_line_keeps_reading_and_counts(protocol: str) -> None:
    faults = Faults(split_writes=True, garbage_every=15, corrupt_every=40, truncate_every=55)
    with ReaderSimulator(scenario=scenario(protocol, 400, faults)) as sim, \
            running(protocol, sim) as reads:
        reads.more_reads(150, timeout=15)
        counters = reads.driver.counters
        assert counters.garbage_bytes > 0
        assert counters.bad_checksum + counters.resyncs > 0
        assert {r.epc for r in reads.reads} <= {RADIO, HOSTILE}  # nothing forged


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reader_reset_midstream_is_reconfigured(protocol: str) -> None:
    with ReaderSimulator(scenario=scenario(protocol)) as sim, running(protocol, sim) as reads:
        reads.more_reads(30)
        sim.reset_reader()
        reads.wait_for(lambda: reads.driver.counters.restarts >= 1)
        reads.more_reads(30)
        assert sim.model.power is not None and sim.model.region is not None
        assert reads.driver.counters.reconnects == 0


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_unplug_and_replug_resumes_without_restart(protocol: str) -> None:
    with ReaderSimulator(scenario=scenario(protocol)) as sim, running(protocol, sim) as reads:
        reads.more_reads(30)
        sim.unplug(0.6)
        reads.wait_for(lambda: not reads.driver.connected, timeout=5)
        reads.wait_for(lambda: reads.driver.counters.reconnects >= 1, timeout=10)
        reads.more_reads(30)
        assert reads.driver.connected
        assert sim.stats["unplugs"] == 1


def test_missing_port_retries_until_closed(tmp_path: object) -> None:
    driver = open_driver("thingmagic", "/nonexistent/rfid0", **FAST)
    collector = Collector(driver)
    collector.thread.start()
    time.sleep(0.5)
    driver.close()
    collector.thread.join(timeout=3)
    assert not collector.thread.is_alive()
    assert not driver.connected and driver.last_error and "rfid0" in driver.last_error
    assert collector.reads == []


def test_port_factory_is_injected() -> None:
    calls: list[tuple[str, dict[str, object]]] = []

    def factory(url: str, **kwargs: object) -> object:
        calls.append((url, kwargs))
        raise OSError("no such device")

    driver = open_driver("r2000", "socket://reader:4001", port_factory=factory,  # type: ignore[arg-type]
                         baudrate=38_400, **FAST)
    collector = Collector(driver)
    collector.thread.start()
    collector.wait_for(lambda: len(calls) >= 2)
    driver.close()
    collector.thread.join(timeout=3)
    assert calls[0][0] == "socket://reader:4001" and calls[0][1]["baudrate"] == 38_400


@pytest.mark.parametrize(("protocol", "settings"), [
    ("thingmagic", {"region": "ATLANTIS"}),
    ("thingmagic", {"antennas": [0]}),
    ("thingmagic", {"antennas": "12"}),
    ("thingmagic", {"power_dbm": "high"}),
    ("thingmagic", {"region": ["EU"]}),
    ("thingmagic", {"watchdog": -1}),
    ("thingmagic", {"colour": "blue"}),
    ("r200", {"antennas": [1, 2]}),
    ("r200", {"power_dbm": 30}),
    ("r2000", {"antennas": [5]}),
    ("r2000", {"region": "JP"}),
    ("chafon", {"antennas": [5]}),
    ("lux", {}),
])
def test_bad_settings_are_refused_at_open(protocol: str, settings: dict[str, object]) -> None:
    with pytest.raises(DriverConfigError):
        open_driver(protocol, "loop://", **settings)


@pytest.mark.parametrize("protocol", ["thingmagic", "r200"])
def test_close_stops_the_stream(protocol: str) -> None:
    with ReaderSimulator(scenario=scenario(protocol)) as sim:
        with running(protocol, sim) as reads:
            reads.more_reads(20)
            assert sim.model.streaming
        deadline = time.monotonic() + 2
        while sim.model.streaming and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not sim.model.streaming


def test_answers_are_matched_among_streamed_frames_left_by_a_previous_host() -> None:
    """A module still streaming from a previous host: every configuration answer arrives
    between tag records, and those records are delivered, not lost or taken as answers."""
    with ReaderSimulator(scenario=scenario("thingmagic", 800)) as sim:
        with serial.Serial(sim.port_path, timeout=0.1) as previous_host:
            previous_host.write(tm.cmd_start_continuous())
            time.sleep(0.3)
        assert sim.model.streaming
        earlier = len(sim.model.commands_seen)
        with running("thingmagic", sim, region="NA", power_dbm=22.5) as reads:
            reads.wait_for(lambda: reads.driver.connected)
            reads.more_reads(50)
            assert (sim.model.region, sim.model.power) == (tm.REGIONS["NA"], 2250)
            driver_commands = sim.model.commands_seen[earlier:]
            assert driver_commands[:2] == [tm.OP_MULTI_PROTOCOL, tm.OP_GET_PROGRAM]  # stop first
            assert reads.driver.counters.command_errors == 0


def test_thingmagic_reset_into_bootloader_boots_firmware_again() -> None:
    with ReaderSimulator(scenario=scenario("thingmagic")) as sim, \
            running("thingmagic", sim) as reads:
        reads.more_reads(20)
        sim.reset_reader()
        reads.wait_for(lambda: reads.driver.counters.restarts >= 1)
        reads.more_reads(20)
        assert tm.OP_BOOT_FIRMWARE in sim.model.commands_seen
        assert not getattr(sim.model, "in_bootloader", True)


def test_chafon_reads_several_tags_per_answer_on_every_antenna() -> None:
    """A round of many tags arrives as frames of several tags each (status 0x03 until the
    last); every tag is delivered and the driver moves on to the next antenna after each."""
    tags = tuple(TagSpec(bytes((0x34, i)) + bytes(10), {1 + i % 2: -50}) for i in range(30))
    busy = Scenario(tags=tags, protocol="chafon", reads_per_second=3000)
    with ReaderSimulator(scenario=busy) as sim, running("chafon", sim) as reads:
        reads.more_reads(200)
        assert {r.epc for r in reads.reads} == {t.epc for t in tags}
        assert {(r.epc[1] % 2 + 1) == r.antenna for r in reads.reads} == {True}
        assert {1, 2} <= {r.antenna for r in reads.reads}
        assert sim.stats["frames"] < sim.stats["tag_reads"]  # several tags per frame
        assert reads.driver.counters.restarts == 0


def test_chafon_uhfreader18_falls_back_to_the_bare_inventory() -> None:
    with ReaderSimulator(scenario=scenario("chafon")) as sim:
        sim.model.reader18 = True  # type: ignore[attr-defined]
        with running("chafon", sim) as reads:
            reads.more_reads(30)
            driver = reads.driver
            assert getattr(driver, "reader18", False)
            assert {r.antenna for r in reads.reads[-10:]} == {1}
            assert driver.last_error and "UHFReader18" in driver.last_error
