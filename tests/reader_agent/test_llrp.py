"""The LLRP driver against the simulated LLRP reader on loopback TCP: set-up (one ROSpec per
zone, power, keepalives), reads with antenna, RSSI and first-seen time, and the faults users
report: reader reboot, TCP reset, half-open connection, slow reader, a second client, an
antenna unplugged, a stream out of step; TLS; `kitledger-agent decode --protocol llrp`."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from reader_agent import fieldtools
from reader_agent.drivers import DriverConfigError, LlrpDriver, open_driver
from reader_agent.protocol import llrp
from reader_agent.reads import TagRead

from hardware.simulator import Faults, Scenario, TagSpec
from hardware.simulator.llrp import LlrpReaderSimulator
from tests.fixtures.polling import wait_for
from tests.reader_agent.tls_support import make_pki

DOOR = bytes.fromhex("3034257BF7194E4000001A85")
DESK = bytes.fromhex("30340001")
FAST = {"keepalive": 0.2, "keepalive_misses": 3, "reconnect_initial": 0.05,
        "reconnect_max": 0.2, "command_timeout": 1.0, "connect_timeout": 1.0}
"""Quick failure detection so the faults resolve in a second or two."""


def scenario(**changes: Any) -> Scenario:
    base = Scenario(tags=(TagSpec(DOOR, {1: -48, 2: -63}), TagSpec(DESK, {3: -55})),
                    protocol="llrp", reads_per_second=300)
    return replace(base, **changes)


class Reading:
    """A driver iterated on its own thread, as the agent does."""

    def __init__(self, driver: LlrpDriver) -> None:
        self.driver = driver
        self.reads: list[TagRead] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for read in self.driver.reads():
            self.reads.append(read)

    def more(self, count: int = 20, timeout: float = 15.0) -> bool:
        """At least `count` reads arrive after now."""
        start = len(self.reads)
        return wait_for(lambda: len(self.reads) >= start + count, timeout)

    def stop(self) -> None:
        self.driver.close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()


@contextmanager
def reading(sim: LlrpReaderSimulator, url: str | None = None,
            **settings: Any) -> Iterator[Reading]:
    driver = open_driver("llrp", url or sim.url, **{**FAST, **settings})
    assert isinstance(driver, LlrpDriver)
    run = Reading(driver)
    try:
        yield run
    finally:
        run.stop()


def test_one_rospec_per_zone_and_the_reports_asked_for() -> None:
    with LlrpReaderSimulator(scenario()) as sim, \
            reading(sim, zones={"door": [1, 2], "desk": [3]}, power_dbm=27.0) as run:
        assert run.more(60)
        assert sim.state.rospecs == {1: ([1, 2], 1), 2: ([3], 1)}
        assert sim.state.enabled == {1, 2}
        assert sim.state.power_index == 69  # 27.00 dBm in the R700's 0.25 dB table
        assert sim.state.keepalive_ms == 200
        seen = {(r.epc, r.antenna, r.rssi_dbm) for r in run.reads}
        assert seen == {(DOOR, 1, -48), (DOOR, 2, -63), (DESK, 3, -55)}
        assert all(r.reader_time_us and r.reader_time_us > 1_600_000_000_000_000
                   for r in run.reads)
        assert b"model 2001052" in run.driver.reader_info
        assert run.driver.antennas == {1: True, 2: True, 3: True}
        assert wait_for(lambda: run.driver.counters.keepalives >= 2)
        assert wait_for(lambda: sim.stats["keepalive_acks"] >= 2)
    assert sim.state.rospecs == {}  # deleted on close, and the connection closed politely
    assert wait_for(lambda: not sim.connected)


def test_reader_reboot_loses_the_rospecs_and_the_driver_adds_them_again() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim, antennas=[1, 3]) as run:
        assert run.more()
        sim.reboot(0.5)
        assert wait_for(lambda: sim.stats["reboots"] == 1 and not run.driver.connected)
        assert run.more()
        assert sim.state.rospecs == {1: ([1, 3], 1)} and sim.state.enabled == {1}
        counters = run.driver.counters
        assert counters.reconnects == 1 and counters.rospecs_added == 2
        assert counters.connection_losses == 1 and counters.last_reconnect_ms > 0
        assert run.driver.connected


def test_tcp_reset_reconnects_and_replaces_the_rospecs_the_reader_kept() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim, antennas=[1]) as run:
        assert run.more()
        commands = sim.stats["commands"]
        sim.reset_connection()
        assert run.more()
        assert "reset" in (run.driver.last_error or "")
        assert run.driver.counters.reconnects == 1
        assert sim.stats["commands"] >= commands + 6  # capabilities .. delete, add, enable
        assert sim.state.rospecs == {1: ([1], 1)}


def test_half_open_connection_is_found_by_missing_keepalives() -> None:
    """A network cut: no FIN, no RST, the socket looks open. Only the keepalives' silence
    shows it; the driver then reconnects (refused while the reader still holds the dead
    connection) until the path is back."""
    with LlrpReaderSimulator(scenario()) as sim, reading(sim) as run:
        assert run.more()
        sim.cut_network(1.5)
        assert wait_for(lambda: run.driver.counters.keepalive_timeouts == 1)
        assert "half-open" in (run.driver.last_error or "")
        assert run.more()
        assert run.driver.counters.reconnects >= 1
        assert sim.state.enabled == {1}


def test_slow_reader_within_the_timeouts_keeps_its_connection() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim) as run:
        assert run.more()
        sim.slow(0.4)  # under the 0.6 s keepalive limit and the 1 s command timeout
        assert run.more(100)
        assert run.driver.counters.connection_losses == 0
        assert run.driver.counters.command_timeouts == 0


def test_reader_too_slow_to_answer_is_retried_until_it_answers() -> None:
    with LlrpReaderSimulator(scenario()) as sim:
        sim.slow(1.5)  # every answer later than the 1 s command timeout
        with reading(sim, connect_timeout=3.0) as run:
            assert wait_for(lambda: run.driver.counters.command_timeouts >= 2)
            assert not run.reads and not run.driver.connected
            assert "no answer to LLRP message 1 " in (run.driver.last_error or "")
            sim.slow(0.0)
            assert run.more()


def test_a_second_client_is_refused_until_the_first_leaves() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim) as first:
        assert first.more()
        with reading(sim) as second:
            assert wait_for(lambda: sim.stats["refused"] >= 1)
            assert "another client" in (second.driver.last_error or "")
            assert not second.driver.connected and not second.reads
            first.stop()
            assert second.more()


def test_antenna_unplugged_is_counted_and_reported_as_a_fault() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim, antennas=[1, 2]) as run:
        assert run.more()
        sim.set_antenna(2, False)
        assert wait_for(lambda: run.driver.antennas.get(2) is False)
        counters = run.driver.counters
        assert counters.antenna_faults == 1 and counters.antennas_down == 1
        start = len(run.reads)
        assert run.more(50)
        assert all(r.antenna == 1 for r in run.reads[start + 5 :])
        sim.set_antenna(2, True)
        assert wait_for(lambda: run.driver.antennas.get(2) is True)
        assert run.driver.counters.antennas_down == 0


def test_antenna_not_connected_at_set_up_is_a_fault() -> None:
    with LlrpReaderSimulator(scenario()) as sim:
        sim.state.antenna_connected[3] = False
        with reading(sim, antennas=[1, 3]) as run:
            assert run.more()
            assert run.driver.antennas == {1: True, 3: False}
            assert run.driver.counters.antennas_down == 1


@pytest.mark.parametrize("garbage", [b"\x00" * 12, b"\x04\x3e\xff\xff\xff\xff\x00\x00\x00\x01",
                                     b"\x1c\x3d\x00\x00\x00\x0a\x00\x00\x00\x01"])
def test_stream_out_of_step_closes_and_reconnects(
        garbage: bytes, caplog: pytest.LogCaptureFixture) -> None:
    """Zeros, a header claiming 4 GiB, reserved bits set: nothing re-aligns a TCP stream
    without start bytes, so the driver counts it and starts a fresh connection."""
    caplog.set_level(logging.WARNING, logger="reader_agent.drivers.llrp")
    with LlrpReaderSimulator(scenario()) as sim, reading(sim) as run:
        assert run.more()
        sim.inject(garbage)
        assert wait_for(lambda: run.driver.counters.malformed == 1)
        # Said once, as it happened (`last_error` may already hold the reconnect's answer).
        assert any("out of step" in r.getMessage() for r in caplog.records)
        assert run.more()
        assert run.driver.counters.reconnects == 1


def test_line_faults_from_the_scenario_are_survived() -> None:
    """Garbage, corrupted headers and truncated messages (a reader firmware's bugs: TCP itself
    delivers every byte intact) each cost a reconnect or one malformed report, and reading
    always resumes. LLRP has no checksum, so a cut message completed by the next one's bytes
    can pass as a report: such reads are rare, not absent."""
    faults = Faults(split_writes=True, garbage_every=400, corrupt_every=300, truncate_every=500)
    with LlrpReaderSimulator(scenario(faults=faults, reads_per_second=600)) as sim, \
            reading(sim) as run:
        assert run.more(2000, timeout=60)
        assert sim.stats["corrupted"] and sim.stats["truncated"] and sim.stats["garbage_bytes"]
        assert run.driver.counters.malformed >= 1 and run.driver.counters.reconnects >= 1
        assert sum(r.epc == DOOR for r in run.reads) >= 0.98 * len(run.reads)


def test_split_writes_alone_cost_nothing() -> None:
    with LlrpReaderSimulator(scenario(faults=Faults(split_writes=True))) as sim, \
            reading(sim) as run:
        assert run.more(200)
        assert run.driver.counters.connection_losses == 0
        assert run.driver.counters.malformed == 0


def test_scenario_events_reboot_and_cut_the_reader() -> None:
    events = scenario().events
    from hardware.simulator.scenario import Event
    script = scenario(events=(*events, Event(0.8, "reset", 0.3), Event(2.0, "unplug", 1.0)))
    with LlrpReaderSimulator(script) as sim, reading(sim) as run:
        assert wait_for(lambda: sim.stats["reboots"] == 1 and sim.stats["cuts"] == 1, 20)
        assert run.more()
        assert run.driver.counters.reconnects >= 2


def test_llrps_reader_over_tls(tmp_path: Path) -> None:
    import ssl
    pki = make_pki(tmp_path / "pki")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki.server_cert, pki.server_key)
    with LlrpReaderSimulator(scenario(), tls=server) as sim:
        assert sim.url.startswith("llrps://")
        with reading(sim, tls_ca=str(pki.ca)) as run:
            assert run.more()
        other = make_pki(tmp_path / "other", "another CA")
        with reading(sim, tls_ca=str(other.ca)) as run:
            assert wait_for(lambda: "TLS handshake failed" in (run.driver.last_error or ""))
            assert not run.reads


@pytest.mark.parametrize(("url", "settings", "why"), [
    ("tcp://10.0.0.1", {}, "llrp://host"),
    ("llrp://", {}, "llrp://host"),
    ("llrp://host:99999", {}, "bad LLRP reader URL"),
    ("llrp://host/path", {}, "llrp://host"),
    ("llrp://host", {"region": "EU"}, "unknown LLRP reader settings"),
    ("llrp://host", {"zones": {"a": [1], "b": [1]}}, "one zone only"),
    ("llrp://host", {"zones": ["door"]}, "zones must map"),
    ("llrp://host", {"antennas": [17]}, "ports 1..16"),
    ("llrp://host", {"keepalive": 0}, "positive"),
    ("llrp://host", {"report_every": 0}, "report_every"),
    ("llrp://host", {"tls_cert": "a.pem"}, "go together"),
    ("llrps://host", {"tls_ca": "/nonexistent/ca.pem"}, "TLS files"),
])
def test_settings_and_urls_refused_at_start(url: str, settings: dict[str, Any], why: str) -> None:
    with pytest.raises(DriverConfigError, match=why):
        open_driver("llrp", url, **settings)


def test_more_antennas_than_the_reader_has_is_reported_not_read() -> None:
    with LlrpReaderSimulator(scenario()) as sim, reading(sim, antennas=[1, 6]) as run:
        assert wait_for(lambda: "the reader has 4" in (run.driver.last_error or ""))
        assert not run.reads and sim.state.rospecs == {}


def test_rejected_command_is_a_counted_error_and_retried() -> None:
    with LlrpReaderSimulator(scenario()) as sim:
        sim.state.rospecs[1] = ([1], 1)  # another client's ROSpec: deleted first, then ours
        with reading(sim) as run:
            assert run.more()
            assert run.driver.counters.command_errors == 0
            assert sim.state.rospecs == {1: ([1], 1)}


# -- kitledger-agent decode --protocol llrp -------------------------------------------------


def run_decode(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               text: str) -> tuple[int, list[dict[str, Any]], str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    code = fieldtools.decode_main(["--protocol", "llrp"])
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_decode_prints_each_tag_of_a_captured_report(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    report = llrp.encode_report(7, [(DOOR, 2, -51, 1_700_000_000_000_000), (DESK, 1, -70, 5)])
    capture = "\n".join([
        "# Wireshark: copy as hex stream",
        llrp.connection_event(0, 1_700_000_000_000_000).hex(" "),
        "de ad",  # stray bytes
        report.hex(),
        llrp.keepalive(8).hex(":"),
        llrp.status_response(llrp.ADD_ROSPEC, 3, 101, "bad antenna").hex(),
        llrp.keepalive(9).hex()[:12],  # cut off by the capture's end
    ])
    code, lines, _ = run_decode(monkeypatch, capsys, capture)
    assert code == 0
    event, door, desk, keepalive, failed, summary = lines
    assert event["message"] == "READER_EVENT_NOTIFICATION" and event["connection_attempt"] == 0
    assert door == {"offset": 34, "message_id": 7, "kind": "tag", "epc": DOOR.hex().upper(),
                    "uri": "urn:epc:id:sgtin:0614141.812345.6789", "rssi_dbm": -51,
                    "antenna": 2, "first_seen_us": 1_700_000_000_000_000}
    assert desk["antenna"] == 1 and desk["first_seen_us"] == 5
    assert keepalive["message"] == "KEEPALIVE"
    assert (failed["status"], failed["error"]) == (101, "bad antenna")
    assert summary == {"summary": True, "frames": 4, "tags": 2, "bad_checksum": 0,
                       "malformed": 0, "garbage_bytes": 8}


def test_decode_reports_a_malformed_report_and_refuses_non_hex(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    report = bytearray(llrp.encode_report(7, [(DOOR, 2, -51, 1)]))
    report[12:14] = b"\x01\x00"  # TagReportData claims 256 bytes
    code, lines, _ = run_decode(monkeypatch, capsys, report.hex())
    assert code == 0 and lines[0]["kind"] == "malformed" and "overruns" in lines[0]["error"]
    assert lines[-1]["malformed"] == 1
    code, _, err = run_decode(monkeypatch, capsys, "04 3e zz")
    assert code == 2 and "not hex" in err


def test_kitledger_sim_serves_an_llrp_reader() -> None:
    import subprocess
    sim_bin = str(Path(sys.executable).parent / "kitledger-sim")
    process = subprocess.Popen([sim_bin, "--protocol", "llrp", "--rate", "200", "--tag",
                                "urn:epc:id:giai:0614141.5678", "--duration", "20"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        started = json.loads(process.stdout.readline())
        assert started["protocol"] == "llrp" and started["url"].startswith("llrp://127.0.0.1:")
        driver = open_driver("llrp", started["url"], **FAST)
        assert isinstance(driver, LlrpDriver)
        run = Reading(driver)
        assert run.more(20)
        run.stop()
        assert {r.epc_hex for r in run.reads} == {"3414257BF40000000000162E"}
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0
