"""Writing and locking tags through an LLRP AccessSpec (C1G2Write, C1G2Lock) over loopback TCP
to the simulated reader, which executes the AccessSpec on its simulated tag and reports the
OpSpec results; the read-back verifies, as for the serial families. Hostile cases: a locked
tag, no tag, two tags (the AccessSpec's target picks the one surveyed), a scripted locked tag,
and AccessSpecs the codec refuses to build."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from reader_agent.commission import CommissionError, asset_epc, commission
from reader_agent.drivers import CommandFailed, LlrpDriver, WriteUnsupported, open_driver
from reader_agent.drivers.settings import TagLocked
from reader_agent.protocol import EncodeError, llrp
from reader_agent.protocol.framing import LOCK_EPC, LOCK_EPC_AND_ACCESS

from hardware.simulator import Scenario, TagSpec
from hardware.simulator.llrp import LlrpReaderSimulator
from tests.reader_agent.test_commission import AGENT, BLANK, CASE_URI, OTHER, RADIO_URI

FAST = {"keepalive": 0.5, "reconnect_initial": 0.05, "command_timeout": 1.0}
PASSWORD = 0x5EC0DE42


def desk(*tags: TagSpec) -> Scenario:
    return Scenario(tags=tags, protocol="llrp", reads_per_second=200)


def driver_for(sim: LlrpReaderSimulator) -> LlrpDriver:
    driver = open_driver("llrp", sim.url, **FAST)
    assert isinstance(driver, LlrpDriver)
    return driver


def test_the_accessspec_is_what_pyllrp_decodes_back() -> None:
    ops = [llrp.OpSpec(1, 0, 1, 1, bytes.fromhex("3000") + BLANK),
           llrp.OpSpec(2, PASSWORD, lock_mask=LOCK_EPC_AND_ACCESS,
                       lock_action=LOCK_EPC_AND_ACCESS)]
    frame = llrp.add_accessspec(7, 0x4B4C, BLANK, ops)
    assert llrp.header(frame) == llrp.Header(1, llrp.ADD_ACCESSSPEC, len(frame), 7)
    reply = llrp.decode_message(frame)
    assert llrp.parse_accessspec(reply.message) == (0x4B4C, BLANK, ops)
    payloads = reply.message.getAllParametersByClass(llrp.lib.C1G2LockPayload_Parameter)
    # Read_Write (0) on the access password (1) and the EPC bank (2).
    assert sorted((int(p.Privilege), int(p.DataField)) for p in payloads) == [(0, 1), (0, 2)]
    unlock = llrp.OpSpec(3, PASSWORD, lock_mask=LOCK_EPC, lock_action=0)
    decoded = llrp.parse_accessspec(llrp.decode_message(
        llrp.add_accessspec(8, 1, None, [unlock])).message)
    assert decoded == (1, None, [unlock])


@pytest.mark.parametrize(("spec_id", "target", "ops"), [
    (0, None, [llrp.OpSpec(1, 0, 1, 1, b"\x30\x00")]),            # ID 0 means "all"
    (1, None, []),                                                 # nothing to do
    (1, None, [llrp.OpSpec(1, 0, 1, 1, b"\x30")]),                 # half a word
    (1, b"\x00" * 63, [llrp.OpSpec(1, 0, 1, 1, b"\x30\x00")]),     # target longer than an EPC
])
def test_accessspecs_that_cannot_be_built_are_refused(
        spec_id: int, target: bytes | None, ops: list[llrp.OpSpec]) -> None:
    with pytest.raises(EncodeError):
        llrp.add_accessspec(1, spec_id, target, ops)


def test_results_of_another_accessspec_or_a_plain_report_are_not_ours() -> None:
    report = llrp.encode_access_report(5, BLANK, 1, 99, [llrp.OpResult(1, "write", 0, b"")])
    assert llrp.access_results(report, 0x4B4C) == []
    assert llrp.access_results(llrp.encode_report(6, [(BLANK, 1, -50, 0)]), 0x4B4C) == []
    assert llrp.parse_report(report)[0].epc == BLANK  # still a sighting of the tag


@pytest.mark.parametrize("uri", [RADIO_URI, CASE_URI])
def test_a_blank_tag_is_written_through_an_accessspec_and_read_back(uri: str) -> None:
    epc = asset_epc(uri, 1)
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -45}))) as sim:
        driver = driver_for(sim)
        try:
            done = commission(driver, epc, seconds=0.5)
        finally:
            driver.release()
        assert (done.epc, done.previous, done.uri, done.locked) == (epc, BLANK, uri, False)
        assert done.reads_after > 0
        assert [t.epc for t in sim.scenario.tags] == [epc]
        assert sim.stats["writes"] == 1 and sim.stats["access_specs_run"] == 1
        assert sim.state.access_specs == {}  # deleted after its one operation


def test_a_locked_tag_refuses_the_next_rewrite_with_memory_locked() -> None:
    first, second = asset_epc(RADIO_URI, 1), asset_epc(CASE_URI, 1)
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -45}))) as sim:
        driver = driver_for(sim)
        try:
            done = commission(driver, first, seconds=0.5, lock_password=PASSWORD)
            assert done.locked and sim.locked == {first: PASSWORD}
            with pytest.raises(TagLocked, match="memory is locked"):
                commission(driver, second, overwrite=True, seconds=0.5)
            with pytest.raises(TagLocked):
                driver.lock_epc(0x11111111)  # the password cannot be changed without it
        finally:
            driver.release()
        assert [t.epc for t in sim.scenario.tags] == [first]


def test_the_accessspec_writes_only_the_tag_it_targets() -> None:
    """A serial write reaches whichever tag answers; the AccessSpec names the EPC."""
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -40}), TagSpec(OTHER, {1: -70}))) as sim:
        driver = driver_for(sim)
        try:
            with pytest.raises(CommissionError, match="2 tags"):
                commission(driver, asset_epc(RADIO_URI), seconds=0.4)
            driver.write_epc(asset_epc(RADIO_URI), current=OTHER)
        finally:
            driver.release()
        assert [t.epc for t in sim.scenario.tags] == [BLANK, asset_epc(RADIO_URI)]


def test_no_tag_answering_the_accessspec_is_a_clear_failure() -> None:
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -40}))) as sim:
        driver = driver_for(sim)
        try:
            with pytest.raises(CommandFailed, match="no tag answered"):
                driver.write_epc(asset_epc(RADIO_URI), current=OTHER)
            assert sim.stats["writes"] == 0
            driver.write_epc(asset_epc(RADIO_URI), current=BLANK)  # the link still works
        finally:
            driver.release()
        assert sim.stats["writes"] == 1


def test_a_tag_the_scenario_locked_is_not_written() -> None:
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -40}, locked=True))) as sim:
        driver = driver_for(sim)
        try:
            with pytest.raises(TagLocked):
                commission(driver, asset_epc(RADIO_URI), seconds=0.4)
        finally:
            driver.release()
        assert sim.stats["writes"] == 0


@pytest.mark.parametrize("password", [0, 1 << 32])
def test_bad_passwords_and_epcs_are_refused_before_the_reader_is_asked(password: int) -> None:
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -40}))) as sim:
        driver = driver_for(sim)
        with pytest.raises(WriteUnsupported):
            driver.lock_epc(password)
        with pytest.raises(WriteUnsupported):
            driver.write_epc(b"\x30")
        assert sim.stats["commands"] == 0


def test_write_tag_command_over_llrp_writes_locks_and_hides_the_password() -> None:
    with LlrpReaderSimulator(desk(TagSpec(BLANK, {1: -45}))) as sim:
        env: dict[str, Any] = {**os.environ, "KITLEDGER_TAG_ACCESS_PASSWORD": f"{PASSWORD:08X}"}
        result = subprocess.run([AGENT, "write-tag", "--protocol", "llrp", "--port", sim.url,
                                 "--uri", RADIO_URI, "--seconds", "0.5", "--lock"],
                                capture_output=True, text=True, timeout=60, env=env)
        assert result.returncode == 0, result.stderr
        line = json.loads(result.stdout)
        assert line["locked"] is True and line["epc"] == asset_epc(RADIO_URI).hex().upper()
        assert f"{PASSWORD:08X}" not in result.stdout + result.stderr
        assert sim.locked == {asset_epc(RADIO_URI): PASSWORD}
