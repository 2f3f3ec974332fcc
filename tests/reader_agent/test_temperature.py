"""Reader temperature over a real pty: ThingMagic (0x72) and R2000 (0x7B) read it at bring-up
and every `temperature_interval` while reading, the simulator heats up on a script, reading
goes on around the polls, a module without the command and a malformed answer are survived,
and the agent's health message carries the value."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from reader_agent.agent import ReaderAgent
from reader_agent.config import load_config
from reader_agent.drivers import DriverConfigError, open_driver
from reader_agent.protocol import r2000
from reader_agent.protocol import thingmagic as tm

from hardware.simulator import ReaderSimulator
from hardware.simulator.models import ROOM_TEMPERATURE
from hardware.simulator.scenario import ScenarioError, scenario_from_dict
from tests.reader_agent.agent_support import ListSource
from tests.reader_agent.test_drivers import running
from tests.reader_agent.test_drivers import scenario as tag_scenario

TEMPERATURE_READERS = ["thingmagic", "r2000"]
POLL = {"temperature_interval": 0.3}


@pytest.mark.parametrize("protocol", TEMPERATURE_READERS)
def test_temperature_is_read_at_bring_up_and_follows_the_reader(protocol: str) -> None:
    with ReaderSimulator(scenario=tag_scenario(protocol)) as sim, \
            running(protocol, sim, **POLL) as reads:
        reads.wait_for(lambda: reads.driver.temperature_c == ROOM_TEMPERATURE)
        sim.set_temperature(83)
        reads.wait_for(lambda: reads.driver.temperature_c == 83)
        sim.set_temperature(-12)
        reads.wait_for(lambda: reads.driver.temperature_c == -12)
        reads.more_reads(50)  # reading goes on around the polls
        assert reads.driver.counters.restarts == 0 and reads.driver.connected


@pytest.mark.parametrize("protocol", TEMPERATURE_READERS)
def test_polls_are_bounded_by_the_interval(protocol: str) -> None:
    opcode = tm.OP_GET_TEMPERATURE if protocol == "thingmagic" else r2000.CMD_GET_TEMPERATURE
    with ReaderSimulator(scenario=tag_scenario(protocol)) as sim, \
            running(protocol, sim, temperature_interval=60) as reads:
        reads.more_reads(200)
        assert sim.model.commands_seen.count(opcode) == 1  # at bring-up only
    with ReaderSimulator(scenario=tag_scenario(protocol)) as sim, \
            running(protocol, sim, temperature_interval=0) as reads:
        reads.more_reads(100)
        assert reads.driver.temperature_c is None
        assert sim.model.commands_seen.count(opcode) == 0


def test_a_scenario_overheats_the_reader_on_schedule() -> None:
    script = scenario_from_dict({
        "protocol": "r2000", "reads_per_second": 200,
        "tags": [{"epc": "urn:epc:id:giai:0614141.5678"}],
        "events": [{"at": 0.8, "action": "temperature", "value": 91}]})
    with ReaderSimulator(scenario=script) as sim, running("r2000", sim, **POLL) as reads:
        reads.wait_for(lambda: reads.driver.temperature_c == 91)


@pytest.mark.parametrize("event", [{"at": 1, "action": "temperature", "value": 151},
                                   {"at": 1, "action": "temperature", "value": "hot"},
                                   {"at": 1, "action": "temperature", "celsius": 80}])
def test_bad_temperature_events_are_refused(event: dict[str, object]) -> None:
    with pytest.raises(ScenarioError):
        scenario_from_dict({"tags": [], "events": [event]})


def test_a_module_without_the_temperature_command_keeps_reading() -> None:
    """Older firmware answers "invalid opcode": asked once, then never again."""
    with ReaderSimulator(scenario=tag_scenario("thingmagic")) as sim:
        handle = sim.model.handle

        def no_temperature(frame: bytes, now: float) -> list[bytes]:
            if frame[2] == tm.OP_GET_TEMPERATURE:
                sim.model.commands_seen.append(frame[2])
                return [tm.encode_response(frame[2], tm.STATUS_INVALID_OPCODE)]
            return handle(frame, now)

        sim.model.handle = no_temperature  # type: ignore[method-assign]
        with running("thingmagic", sim, **POLL) as reads:
            reads.more_reads(100)
            reads.more_reads(100)
            assert reads.driver.temperature_c is None
            assert sim.model.commands_seen.count(tm.OP_GET_TEMPERATURE) == 1
            assert reads.driver.counters.restarts == 0


def test_a_malformed_r2000_temperature_is_ignored_and_reported() -> None:
    with ReaderSimulator(scenario=tag_scenario("r2000")) as sim, \
            running("r2000", sim, **POLL) as reads:
        reads.wait_for(lambda: reads.driver.temperature_c == ROOM_TEMPERATURE)
        sim.inject(r2000.encode_frame(0x01, r2000.CMD_GET_TEMPERATURE, b"\x07\x50"))
        reads.wait_for(lambda: "temperature" in (reads.driver.last_error or ""))
        assert reads.driver.temperature_c == ROOM_TEMPERATURE
        reads.more_reads(50)


@pytest.mark.parametrize("protocol", ["r200", "chafon"])
def test_families_without_a_temperature_command_report_none(protocol: str) -> None:
    with ReaderSimulator(scenario=tag_scenario(protocol)) as sim, \
            running(protocol, sim, **POLL) as reads:
        reads.more_reads(50)
        assert reads.driver.temperature_c is None


@pytest.mark.parametrize("interval", [-1, 86_401, float("nan")])
def test_a_bad_interval_is_refused(interval: float) -> None:
    with pytest.raises(DriverConfigError):
        open_driver("thingmagic", "loop://", temperature_interval=interval)


def test_the_agents_health_carries_the_drivers_temperature(
        write_config: Callable[..., Path]) -> None:
    hot = ListSource([1])
    hot.temperature_c = 64  # type: ignore[attr-defined]  # as a ThingMagic or R2000 driver
    assert ReaderAgent(load_config(write_config()), source=hot).health(0.0)["temperature_c"] == 64
    plain = ReaderAgent(load_config(write_config()), source=ListSource([1]))
    assert plain.health(0.0)["temperature_c"] is None  # a capture replay has none
