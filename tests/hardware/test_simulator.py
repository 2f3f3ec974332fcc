"""The reader simulator as a host sees it through pyserial on a real pty: command answers,
streamed population with arrivals and departures, fault injection, unplug/replug, scenario
files and the `kitledger-sim` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial
from hypothesis import given, settings
from hypothesis import strategies as st
from reader_agent.protocol import FrameStream, ReaderReply, chafon, get_codec, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.reads import TagRead

from hardware.simulator import (
    Faults,
    ReaderSimulator,
    Scenario,
    ScenarioError,
    TagSpec,
    load_scenario,
    scenario_from_dict,
)
from hardware.simulator.models import MODELS
from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
RADIO = bytes.fromhex("3474257BF40000000000162E")
CAMERA = bytes.fromhex("3374257BF40C0E400000162E")


def collect(port: serial.Serial, protocol: str, seconds: float) -> tuple[list[object], FrameStream]:
    codec = get_codec(protocol)
    stream = FrameStream(codec.decode)
    out: list[object] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for frame in stream.feed(port.read(max(1, port.in_waiting))):
            out.append(codec.parse(frame, time.monotonic()))
    return out, stream


def test_thingmagic_commands_answered_even_byte_by_byte() -> None:
    with ReaderSimulator("thingmagic") as sim, serial.Serial(sim.port_path, timeout=0.1) as port:
        for byte in tm.cmd_get_program():
            port.write(bytes((byte,)))
            time.sleep(0.002)
        replies, _ = collect(port, "thingmagic", 0.3)
        assert replies and isinstance(replies[0], ReaderReply)
        assert replies[0].command == tm.OP_GET_PROGRAM and replies[0].data == b"\x02"
        port.write(tm.cmd_set_region("EU") + tm.cmd_set_read_power(1500))
        replies, _ = collect(port, "thingmagic", 0.3)
        assert [r.command for r in replies if isinstance(r, ReaderReply)] == [0x97, 0x92]
        assert (sim.model.region, sim.model.power) == (2, 1500)
        port.write(tm.encode_command(0x55))  # an opcode the module does not implement
        replies, _ = collect(port, "thingmagic", 0.3)
        assert isinstance(replies[0], ReaderReply) and replies[0].code == tm.STATUS_INVALID_OPCODE


def test_chafon_answers_commands_and_whole_rounds() -> None:
    """No start byte, several tags per answer, and nothing heard while a round runs."""
    tags = tuple(TagSpec(bytes((0x34, i)) + bytes(10), {1: -50 - i}) for i in range(25))
    scenario = Scenario(tags=tags, protocol="chafon", reads_per_second=2000)
    codec = get_codec("chafon")
    with ReaderSimulator(scenario=scenario) as sim, \
            serial.Serial(sim.port_path, timeout=0.05) as port:
        port.write(chafon.cmd_get_reader_info() + chafon.encode_command(0xFF, 0x7A))
        frames, _ = collect_frames(port, "chafon", 0.3)
        replies = [codec.parse(f, 0.0) for f in frames]
        assert [(r.kind, r.command, r.code) for r in replies if isinstance(r, ReaderReply)] == [
            ("response", chafon.CMD_GET_READER_INFO, 0),
            ("error", chafon.CMD_ILLEGAL, chafon.STATUS_ILLEGAL)]
        port.write(chafon.cmd_inventory(1) + chafon.cmd_get_reader_info())  # 2nd: ignored
        frames, stream = collect_frames(port, "chafon", 0.5)
        messages = [m for f in frames for m in codec.parse_all(f, 0.0)]
        reads = [m for m in messages if isinstance(m, TagRead)]
        assert {r.epc for r in reads} == {t.epc for t in tags} and len(reads) == len(tags)
        assert len(frames) == 2 and [f[3] for f in frames] == [chafon.STATUS_MORE, 1]
        assert isinstance(messages[-1], ReaderReply) and messages[-1].kind == "summary"
        assert stream.counters.garbage_bytes == 0 and not sim.model.streaming
        port.write(chafon.cmd_inventory(1, session=2)[:-3])  # cut short: never answered
        time.sleep(0.1)  # past the reader's inter-byte limit: it drops the partial command
        port.write(chafon.encode_command(0xFF, chafon.CMD_INVENTORY, b"\x01\x02"))
        frames, _ = collect_frames(port, "chafon", 0.3)
        refused = [codec.parse(f, 0.0) for f in frames]
        assert [(r.kind, r.code) for r in refused if isinstance(r, ReaderReply)] == [
            ("error", chafon.STATUS_OPERAND_LENGTH)]


def collect_frames(port: serial.Serial, protocol: str,
                   seconds: float) -> tuple[list[bytes], FrameStream]:
    stream = get_codec(protocol).stream()
    frames: list[bytes] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        frames += stream.feed(port.read(max(1, port.in_waiting)))
    return frames, stream


def test_population_arrives_and_departs_at_the_scripted_rate() -> None:
    scenario = Scenario(tags=(TagSpec(RADIO, {1: -50}, 0.0, 0.8),
                              TagSpec(CAMERA, {1: -60}, 0.4)),
                        protocol="r200", reads_per_second=400)
    with ReaderSimulator(scenario=scenario) as sim, \
            serial.Serial(sim.port_path, timeout=0.05) as port:
        port.write(r200.cmd_multi_poll())
        t0 = time.monotonic()
        reads, stream = collect(port, "r200", 1.5)
        tags = [r for r in reads if isinstance(r, TagRead)]
        radio = [r.monotonic - t0 for r in tags if r.epc == RADIO]
        camera = [r.monotonic - t0 for r in tags if r.epc == CAMERA]
        assert radio and camera
        assert max(radio) < 1.0 and min(camera) > 0.3  # departures and arrivals happen
        assert 300 <= len(tags) <= 700  # about 400 reads/s over 1.5 s
        assert stream.counters.garbage_bytes == 0
        assert sim.stats["tag_reads"] >= len(tags)


def test_fault_injection_corrupts_truncates_and_adds_garbage() -> None:
    faults = Faults(split_writes=True, garbage_every=5, corrupt_every=7, truncate_every=11)
    scenario = Scenario(tags=(TagSpec(RADIO, {1: -50}),), protocol="thingmagic",
                        reads_per_second=500, faults=faults)
    with ReaderSimulator(scenario=scenario) as sim, \
            serial.Serial(sim.port_path, timeout=0.05) as port:
        port.write(tm.cmd_start_continuous())
        reads, stream = collect(port, "thingmagic", 1.0)
        tags = [r for r in reads if isinstance(r, TagRead)]
        assert all(r.epc == RADIO for r in tags) and len(tags) > 100
        assert stream.counters.bad_checksum > 0 and stream.counters.garbage_bytes > 0
        assert sim.stats["corrupted"] > 0 and sim.stats["truncated"] > 0


def test_reset_stops_streaming_and_announces_boot() -> None:
    scenario = Scenario(tags=(TagSpec(RADIO, {1: -50}),), reads_per_second=200)
    with ReaderSimulator(scenario=scenario) as sim, \
            serial.Serial(sim.port_path, timeout=0.05) as port:
        port.write(tm.cmd_start_continuous())
        collect(port, "thingmagic", 0.3)
        sim.reset_reader()
        reads, _ = collect(port, "thingmagic", 0.6)
        boot = [r for r in reads if isinstance(r, ReaderReply) and r.command == 0x04]
        assert boot and not sim.model.streaming
        after, _ = collect(port, "thingmagic", 0.3)
        assert not [r for r in after if isinstance(r, TagRead)]
        port.write(tm.cmd_set_region("EU"))  # in the bootloader now: refused
        refused, _ = collect(port, "thingmagic", 0.3)
        assert isinstance(refused[0], ReaderReply) and refused[0].code == 0x0101


def test_unplug_replaces_the_pty_behind_a_stable_link(tmp_path: Path) -> None:
    link = tmp_path / "rfid0"
    with ReaderSimulator("r2000", link_path=link) as sim:
        first = os.readlink(link)
        port = serial.Serial(str(link), timeout=0.05)
        sim.unplug(0.4)
        time.sleep(0.15)
        assert not link.exists()
        with pytest.raises(serial.SerialException):
            for _ in range(20):
                port.read(1)
        port.close()
        deadline = time.monotonic() + 3
        while not link.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert link.exists()
        with serial.Serial(str(link), timeout=0.1) as again:
            time.sleep(0.3)  # the module boots after power returns
            again.write(bytes.fromhex("A0030172EA"))
            replies, _ = collect(again, "r2000", 0.3)
            assert replies and isinstance(replies[0], ReaderReply)
        assert os.readlink(link) != first or sim.stats["unplugs"] == 1
    assert not link.exists()  # the simulator cleans up


def test_scenario_files(tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "hardware/simulator/scenarios/issue-desk.toml")
    assert len(scenario.tags) == 3 and scenario.faults.split_writes
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"protocol": "r2000", "tags": [{"epc": RADIO.hex()}],
                                "events": [{"at": 2, "action": "unplug", "duration": 0.5}]}))
    loaded = load_scenario(path)
    assert loaded.protocol == "r2000" and loaded.events[0].duration == 0.5
    assert loaded.tags[0].rssi == {1: -60}


@pytest.mark.parametrize("data", [
    {"tags": [{"epc": "zz"}]},
    {"tags": [{"epc": "30"}]},
    {"tags": [{"epc": RADIO.hex(), "rssi": {"17": -50}}]},
    {"tags": [{"epc": RADIO.hex(), "rssi": {"1": 10}}]},
    {"tags": [{"epc": RADIO.hex(), "colour": "red"}]},
    {"tags": [{"epc": RADIO.hex()}] * 10_001},
    {"tags": [], "reads_per_second": 1e9},
    {"tags": [], "faults": {"explode": True}},
    {"tags": [], "events": [{"at": 1, "action": "detonate"}]},
    {"tags": [], "protocol": "lux"},
    {"tags": "all"},
    ["not", "a", "table"],
])
def test_bad_scenarios_are_refused(data: object) -> None:
    with pytest.raises(ScenarioError):
        scenario_from_dict(data)


def test_oversized_and_unparsable_scenario_files(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (1 << 20) + b"{}")
    with pytest.raises(ScenarioError):
        load_scenario(big)
    broken = tmp_path / "broken.toml"
    broken.write_text("tags = [")
    with pytest.raises(ScenarioError):
        load_scenario(broken)


def test_kitledger_sim_command(tmp_path: Path) -> None:
    link = tmp_path / "rfid0"
    proc = subprocess.run(
        [sys.executable, "-m", "hardware.simulator", "--protocol", "r200", "--rate", "50",
         "--tag", "urn:epc:id:giai:0614141.5678", "--link", str(link), "--duration", "0.5"],
        capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert lines[0] == {"port": str(link), "protocol": "r200", "tags": 1}
    assert "stats" in lines[-1]
    bad = subprocess.run([sys.executable, "-m", "hardware.simulator", "--tag", "nothex"],
                         capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert bad.returncode == 2 and "--tag" in bad.stderr


@settings(max_examples=150, deadline=None)
@given(protocol=st.sampled_from(["thingmagic", "r200", "r2000"]), command=st.integers(0, 255),
       payload=st.binary(max_size=40))
def test_models_answer_any_well_framed_command_without_crashing(protocol: str, command: int,
                                                               payload: bytes) -> None:
    model = MODELS[protocol]()
    frame = {"thingmagic": lambda: tm.encode_command(command, payload),
             "r200": lambda: r200.encode_frame(r200.TYPE_COMMAND, command, payload),
             "r2000": lambda: r2000.encode_frame(0xFF, command, payload)}[protocol]()
    assert model.command_decoder(frame, 0).frame == frame
    for answer in model.handle(frame, 1.0):
        assert get_codec(protocol).decode(answer, 0).frame == answer
