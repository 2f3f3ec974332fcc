"""Writing tags at the desk: the write commands byte for byte, GS1 encoding against epcpy, the
survey/write/read-back cycle over a real pty for every family that can write, locking after
the write (a locked tag refuses a rewrite with Gen2 "memory locked"), the refusals (no tag, two
tags, someone's asset, a family that cannot lock), and `kitledger-agent write-tag` registering
the EPC written with the real API over HTTP, never showing the access password."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from epcpy.epc_schemes import GIAI, GRAI
from epcpy.epc_schemes.giai import GIAIFilterValue
from epcpy.epc_schemes.grai import GRAIFilterValue
from reader_agent.commission import CommissionError, access_password, asset_epc, commission
from reader_agent.drivers import CommandFailed, WriteUnsupported, open_driver
from reader_agent.drivers.settings import TagLocked
from reader_agent.protocol import EncodeError, chafon, r200, r2000
from reader_agent.protocol import thingmagic as tm
from reader_agent.protocol.framing import LOCK_EPC_AND_ACCESS
from sqlmodel import Session

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Agency, Scope, Site
from hardware.simulator import ReaderSimulator, Scenario, TagSpec
from tests.fixtures.live_app import served
from tests.reader_agent.codec_oracle import frame_is_valid, tm_crc_reference

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
BLANK = bytes.fromhex("E28011606000020D4C1A2B3C")  # a chip-default EPC: not GS1
OTHER = bytes.fromhex("E28011606000020D4C1A2B3D")
RADIO_URI = "urn:epc:id:giai:0614141.5678"
CASE_URI = "urn:epc:id:grai:0614141.12345.5678"
FAST = {"watchdog": 1.0, "command_timeout": 0.5, "reconnect_initial": 0.05}
WRITERS = ["thingmagic", "r200", "r2000", "chafon"]
LOCKERS = ["thingmagic", "r200", "r2000"]
PASSWORD = 0x5EC0DE42
PASSWORD_HEX = "5EC0DE42"
SECRET = "s" * 40


def desk(protocol: str, *epcs: bytes) -> Scenario:
    return Scenario(tags=tuple(TagSpec(epc, {1: -40 - 5 * i}) for i, epc in enumerate(epcs)),
                    protocol=protocol, reads_per_second=200)


def epcpy_hex(uri: str, filter_value: int) -> str:
    if ":giai:" in uri:
        return GIAI(uri).hex(binary_coding_scheme=GIAI.BinaryCodingScheme.GIAI_96,
                             filter_value=GIAIFilterValue(str(filter_value)))
    return GRAI(uri).hex(binary_coding_scheme=GRAI.BinaryCodingScheme.GRAI_96,
                         filter_value=GRAIFilterValue(str(filter_value)))


def test_thingmagic_write_tag_data_is_the_documented_frame() -> None:
    assert tm.cmd_write_tag_data(3, 0, bytes.fromhex("00EE")) == bytes.fromhex(
        "FF0A2403E800000000000300EE589D")
    with pytest.raises(EncodeError):
        tm.cmd_write_tag_data(1, 1, b"\x30")  # half a word
    with pytest.raises(EncodeError):
        tm.cmd_write_tag_data(4, 1, b"\x30\x00")


def test_r200_write_memory_layout() -> None:
    frame = r200.cmd_write_memory(1, 1, bytes.fromhex("3000") + BLANK, access_password=0x1234)
    assert frame[:3] == bytes.fromhex("BB0049") and frame[3:5] == (9 + 14).to_bytes(2, "big")
    params = frame[5:-2]
    assert params[:9] == bytes.fromhex("00001234" "01" "0001" "0007")
    assert params[9:] == bytes.fromhex("3000") + BLANK
    assert r200.decode(frame).frame == frame
    with pytest.raises(EncodeError):
        r200.cmd_write_memory(1, 1, b"")
    with pytest.raises(EncodeError):
        r200.cmd_write_memory(1, 0x10000, b"\x00\x00")


def test_thingmagic_lock_tag_layout() -> None:
    frame = tm.cmd_lock_tag(LOCK_EPC_AND_ACCESS, LOCK_EPC_AND_ACCESS, PASSWORD)
    # FF, LEN 11, opcode 0x25, timeout 1000 ms, option 0, password, mask 0x00A0, action 0x00A0
    assert frame[:-2] == bytes.fromhex("FF0B2503E800" + PASSWORD_HEX + "00A000A0")
    assert tm_crc_reference(frame[1:-2]) == int.from_bytes(frame[-2:], "big")
    assert tm.cmd_get_temperature() == bytes.fromhex("FF00721D7D")
    assert tm_crc_reference(bytes.fromhex("0072")) == 0x1D7D
    with pytest.raises(EncodeError):
        tm.cmd_lock_tag(0x20, 0x80, PASSWORD)  # an action outside its mask
    with pytest.raises(EncodeError):
        tm.cmd_lock_tag(0x400, 0, PASSWORD)  # wider than 10 bits


def test_r200_lock_layout() -> None:
    frame = r200.cmd_lock(LOCK_EPC_AND_ACCESS, LOCK_EPC_AND_ACCESS, PASSWORD)
    # password, then the 20-bit payload mask 0x0A0 << 10 | action 0x0A0 in three bytes
    assert frame[:-2] == bytes.fromhex("BB00820007" + PASSWORD_HEX + "0280A0")
    assert frame_is_valid("r200", frame)
    with pytest.raises(EncodeError):
        r200.cmd_lock(0x20, 0, 1 << 32)


def test_r2000_write_lock_and_temperature_layouts() -> None:
    frame = r2000.cmd_write(1, 1, bytes.fromhex("3000") + BLANK, access_password=PASSWORD)
    assert frame[:4] == bytes.fromhex("A018FF82")  # Len 3 + 21 data bytes, broadcast
    assert frame[4:-1] == bytes.fromhex(PASSWORD_HEX + "01" "01" "07" "3000") + BLANK
    assert frame_is_valid("r2000", frame)
    assert r2000.cmd_lock("epc", r2000.LOCK_LOCK, PASSWORD) == r2000.encode_frame(
        0xFF, 0x83, bytes.fromhex(PASSWORD_HEX + "0301"))
    assert r2000.cmd_get_temperature(0x01) == bytes.fromhex("A003017BE1")
    assert r2000.parse_temperature(b"\x01\x2a") == 42
    assert r2000.parse_temperature(b"\x00\x05") == -5
    answer = r2000.encode_access_result(0x82, BLANK, r2000.CODE_PASSWORD)
    assert frame_is_valid("r2000", answer)
    assert r2000.access_result(r2000.parse(answer).data) == r2000.CODE_PASSWORD
    with pytest.raises(EncodeError):
        r2000.cmd_write(1, 0x100, b"\x00\x00")
    with pytest.raises(EncodeError):
        r2000.cmd_lock("tid-and-more", 1, 0)


def test_chafon_write_epc_layout() -> None:
    frame = chafon.cmd_write_epc(BLANK, access_password=PASSWORD)
    # Len (4 + 17 data), broadcast, 0x04, EPC words, password, EPC, CRC low byte first
    assert frame[:-2] == bytes.fromhex("15FF0406" + PASSWORD_HEX) + BLANK
    assert frame_is_valid("chafon", frame)
    with pytest.raises(EncodeError):
        chafon.cmd_write_epc(b"\x30")


@pytest.mark.parametrize("text", ["", "1234567", "123456789", "0000000g", "00000000",
                                  "1234\x0067", "\uff11" * 8])
def test_access_passwords_are_eight_hex_digits_not_zero(text: str) -> None:
    with pytest.raises(CommissionError) as caught:
        access_password(text)
    assert text not in str(caught.value) or not text


@pytest.mark.parametrize(("uri", "filter_value"), [(RADIO_URI, 3), (CASE_URI, 3),
                                                   ("urn:epc:id:grai:012345678901..77", 1),
                                                   ("urn:epc:id:giai:123456.0", 0)])
def test_asset_epcs_agree_with_epcpy(uri: str, filter_value: int) -> None:
    assert asset_epc(uri, filter_value).hex().upper() == epcpy_hex(uri, filter_value)


@pytest.mark.parametrize("uri", ["urn:epc:id:sgtin:0614141.812345.6789",
                                 "urn:epc:id:sscc:0614141.1234567890", "giai:0614141.5678",
                                 "urn:epc:id:giai:0614141.99999999999999999999999"])
def test_only_giai_and_grai_uris_are_commissioned(uri: str) -> None:
    with pytest.raises(CommissionError):
        asset_epc(uri)


@pytest.mark.parametrize("protocol", WRITERS)
@pytest.mark.parametrize("uri", [RADIO_URI, CASE_URI])
def test_a_blank_tag_is_written_and_read_back(protocol: str, uri: str) -> None:
    epc = asset_epc(uri, 1)
    with ReaderSimulator(scenario=desk(protocol, BLANK)) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        try:
            done = commission(driver, epc, seconds=0.5)
        finally:
            driver.release()
        assert (done.epc, done.previous, done.uri) == (epc, BLANK, uri)
        assert done.reads_after > 0
        assert [t.epc for t in sim.scenario.tags] == [epc]  # the tag itself now holds it
        assert sim.stats["writes"] == 1


@pytest.mark.parametrize("protocol", WRITERS)
def test_two_tags_on_the_desk_are_refused_and_nothing_is_written(protocol: str) -> None:
    with ReaderSimulator(scenario=desk(protocol, BLANK, OTHER)) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        with pytest.raises(CommissionError, match="2 tags"):
            commission(driver, asset_epc(RADIO_URI), seconds=0.5)
        driver.release()
        assert sim.stats["writes"] == 0


@pytest.mark.parametrize("protocol", WRITERS)
def test_an_empty_desk_is_refused(protocol: str) -> None:
    with ReaderSimulator(scenario=desk(protocol)) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        with pytest.raises(CommissionError, match="0 tags"):
            commission(driver, asset_epc(RADIO_URI), seconds=0.3)
        driver.release()


def test_a_tag_carrying_an_asset_epc_is_not_overwritten_unless_asked() -> None:
    someone = asset_epc(CASE_URI)
    with ReaderSimulator(scenario=desk("r200", someone)) as sim:
        driver = open_driver("r200", sim.port_path, **FAST)
        with pytest.raises(CommissionError, match="grai"):
            commission(driver, asset_epc(RADIO_URI), seconds=0.3)
        assert sim.stats["writes"] == 0
        done = commission(driver, asset_epc(RADIO_URI), overwrite=True, seconds=0.3)
        driver.release()
        assert done.previous == someone and sim.stats["writes"] == 1


def test_a_write_the_tag_does_not_keep_fails_verification() -> None:
    """The reader says "written" but the tag still answers with its old EPC (it left the
    field, or a second tag took the write): the read-back catches it."""
    with ReaderSimulator(scenario=desk("thingmagic", BLANK)) as sim:
        sim.model.rewrite = lambda tag, epc: None  # the write reaches no tag's memory
        driver = open_driver("thingmagic", sim.port_path, **FAST)
        with pytest.raises(CommissionError, match="read back"):
            commission(driver, asset_epc(RADIO_URI), seconds=0.3)
        driver.release()


@pytest.mark.parametrize("protocol", WRITERS)
def test_a_write_answer_lost_to_a_bad_checksum_is_settled_by_the_read_back(
        protocol: str) -> None:
    """The reader wrote the tag but its answer arrived corrupted (dropped by the checksum):
    the read-back shows the new EPC, so the commissioning stands; a write that did not happen
    and whose answer is lost fails on the read-back instead."""
    epc = asset_epc(RADIO_URI, 1)
    with ReaderSimulator(scenario=desk(protocol, BLANK)) as sim:
        handle = sim.model.handle
        write_commands = {0x24, 0x49, 0x82, 0x04}

        def corrupt_write_answers(frame: bytes, now: float) -> list[bytes]:
            command = frame[3] if protocol == "r2000" else frame[2]
            answers = handle(frame, now)
            if command in write_commands and answers:
                last = answers[-1]
                answers[-1] = last[:-2] + bytes((last[-2] ^ 0x5A,)) + last[-1:]
            return answers

        sim.model.handle = corrupt_write_answers  # type: ignore[method-assign]
        driver = open_driver(protocol, sim.port_path, **FAST)
        try:
            done = commission(driver, epc, seconds=0.4)
            assert done.epc == epc and driver.counters.bad_checksum >= 1
            sim.model.rewrite = lambda tag, new: None  # now the writes reach no tag
            with pytest.raises(CommissionError, match="read back"):
                commission(driver, asset_epc(CASE_URI, 1), overwrite=True, seconds=0.4)
        finally:
            driver.release()


@pytest.mark.parametrize("protocol", LOCKERS)
def test_a_locked_tag_refuses_a_rewrite_with_memory_locked(protocol: str) -> None:
    """Write, verify and lock; then a second commissioning (even with --overwrite) is refused
    by the tag itself, and the agent says so in words."""
    first, second = asset_epc(RADIO_URI, 1), asset_epc(CASE_URI, 1)
    with ReaderSimulator(scenario=desk(protocol, BLANK)) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        try:
            done = commission(driver, first, seconds=0.4, lock_password=PASSWORD)
            assert done.locked and sim.model.locked == {first: PASSWORD}
            assert sim.model.passwords == {first: PASSWORD}
            with pytest.raises(TagLocked, match="memory is locked"):
                commission(driver, second, overwrite=True, seconds=0.4)
            # Nor can the password be changed without knowing it.
            with pytest.raises(TagLocked):
                driver.lock_epc(0x11111111)
        finally:
            driver.release()
        assert [t.epc for t in sim.scenario.tags] == [first]


@pytest.mark.parametrize("protocol", WRITERS)
def test_a_tag_the_scenario_locked_is_not_written(protocol: str) -> None:
    scenario = Scenario(tags=(TagSpec(BLANK, {1: -45}, locked=True),), protocol=protocol)
    with ReaderSimulator(scenario=scenario) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        with pytest.raises(TagLocked):
            commission(driver, asset_epc(RADIO_URI), seconds=0.4)
        driver.release()
        assert sim.stats["writes"] == 0 and [t.epc for t in sim.scenario.tags] == [BLANK]


@pytest.mark.parametrize("protocol", LOCKERS)
def test_a_write_with_no_tag_left_in_the_field_is_a_clear_failure(protocol: str) -> None:
    """The survey saw one tag, but it left before the write: the reader's "no tag"."""
    with ReaderSimulator(scenario=desk(protocol)) as sim:
        driver = open_driver(protocol, sim.port_path, **FAST)
        with pytest.raises(CommandFailed, match="no tag"):
            driver.write_epc(asset_epc(RADIO_URI))
        with pytest.raises(CommandFailed, match="no tag"):
            driver.lock_epc(PASSWORD)
        driver.release()


def test_chafon_cannot_lock_and_refuses_before_touching_the_tag() -> None:
    with ReaderSimulator(scenario=desk("chafon", BLANK)) as sim:
        driver = open_driver("chafon", sim.port_path, **FAST)
        with pytest.raises(CommissionError, match="cannot lock"):
            commission(driver, asset_epc(RADIO_URI), seconds=0.3, lock_password=PASSWORD)
        with pytest.raises(WriteUnsupported):
            driver.lock_epc(PASSWORD)
        assert sim.stats["commands"] == 0


@pytest.mark.parametrize("password", [0, 1 << 32, -1])
def test_a_zero_or_oversized_access_password_is_refused(password: int) -> None:
    with ReaderSimulator(scenario=desk("r200", BLANK)) as sim:
        driver = open_driver("r200", sim.port_path, **FAST)
        with pytest.raises(WriteUnsupported):
            driver.lock_epc(password)
        assert sim.stats["commands"] == 0


# -- the command line, registering with the real API over HTTP ------------------------------


class LiveApi:
    def __init__(self, url: str, key: str) -> None:
        self.url, self.key = url, key

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, self.url + path, timeout=10,
                             headers={"Authorization": f"Bearer {self.key}"}, **kwargs)


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[LiveApi]:
    """The API app served by uvicorn on a loopback port, on a migrated SQLite database."""
    settings = load_settings(environment="test", secret_key=SECRET,
                             database_url=f"sqlite:///{tmp_path / 'api.db'}")
    engine = make_engine(settings)
    upgrade(engine)
    with Session(engine) as session:
        session.add(Agency(id="north", name="North"))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        _, key = create_api_client(session, agency_id="north", name="desk",
                                   scopes=[Scope.ASSETS_WRITE, Scope.ASSETS_READ, Scope.ADMIN],
                                   server_secret=SECRET, now=datetime.now(UTC))
        session.commit()
    with served(create_app(settings, engine)) as url:
        api = LiveApi(url, key)
        assert api.call("POST", "/v1/asset-classes",
                        json={"id": "radio", "name": "Radio"}).status_code == 201
        yield api
    engine.dispose()


def write_tag(sim: ReaderSimulator, *args: str, key: str = "",
              password: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KITLEDGER_API_KEY": key, "KITLEDGER_TAG_ACCESS_PASSWORD": password}
    return subprocess.run([AGENT, "write-tag", "--protocol", sim.protocol, "--port",
                           sim.port_path, "--seconds", "0.5", *args],
                          capture_output=True, text=True, timeout=60, env=env)


def test_write_tag_command_writes_verifies_and_registers(live_api: LiveApi) -> None:
    with ReaderSimulator(scenario=desk("r200", BLANK)) as sim:
        result = write_tag(sim, "--uri", RADIO_URI, "--filter", "1", "--register",
                           live_api.url, "--asset-id", "R-17", "--class-id", "radio",
                           "--site", "north-store", key=live_api.key)
        assert result.returncode == 0, result.stderr
        written = asset_epc(RADIO_URI, 1).hex().upper()
        assert f'"epc": "{written}"' in result.stdout and '"registered": "R-17"' in result.stdout
        assert live_api.key not in result.stdout + result.stderr
        asset = live_api.call("GET", "/v1/assets/R-17").json()
        assert (asset["epc_hex"], asset["epc_uri"]) == (written, RADIO_URI)

        # A second asset with the same EPC: the tag is rewritten but the registry refuses.
        result = write_tag(sim, "--uri", RADIO_URI, "--filter", "1", "--overwrite",
                           "--register", live_api.url, "--asset-id", "R-18",
                           "--class-id", "radio", "--site", "north-store", key=live_api.key)
        assert result.returncode == 1 and "registry refused" in result.stderr
        assert live_api.call("GET", "/v1/assets/R-18").status_code == 404


def test_write_tag_command_refuses_bad_arguments() -> None:
    with ReaderSimulator(scenario=desk("r200", BLANK)) as sim:
        no_key = write_tag(sim, "--uri", RADIO_URI, "--register", "http://127.0.0.1:9",
                           "--asset-id", "A", "--class-id", "c", "--site", "s")
        assert no_key.returncode == 2 and "KITLEDGER_API_KEY" in no_key.stderr
        sgtin = write_tag(sim, "--uri", "urn:epc:id:sgtin:0614141.812345.6789")
        assert sgtin.returncode == 2 and "GIAI or GRAI" in sgtin.stderr
        no_password = write_tag(sim, "--uri", RADIO_URI, "--lock")
        assert no_password.returncode == 2
        assert "KITLEDGER_TAG_ACCESS_PASSWORD" in no_password.stderr
        zero = write_tag(sim, "--uri", RADIO_URI, "--lock", password="00000000")
        assert zero.returncode == 2 and "must not be zero" in zero.stderr
        short = write_tag(sim, "--uri", RADIO_URI, "--lock", password="5EC0DE")
        assert short.returncode == 2 and "5EC0DE" not in short.stderr
        chafon_lock = subprocess.run(
            [AGENT, "write-tag", "--protocol", "chafon", "--port", sim.port_path, "--uri",
             RADIO_URI, "--seconds", "0.2", "--lock"], capture_output=True, text=True,
            timeout=60, env={**os.environ, "KITLEDGER_TAG_ACCESS_PASSWORD": PASSWORD_HEX})
        assert chafon_lock.returncode == 1 and "cannot lock" in chafon_lock.stderr
        assert sim.stats["writes"] == 0


def test_write_tag_command_locks_and_never_shows_the_password() -> None:
    with ReaderSimulator(scenario=desk("thingmagic", BLANK)) as sim:
        done = write_tag(sim, "--uri", RADIO_URI, "--lock", password=PASSWORD_HEX)
        assert done.returncode == 0, done.stderr
        assert '"locked": true' in done.stdout
        again = write_tag(sim, "--uri", CASE_URI, "--overwrite", password=PASSWORD_HEX)
        assert again.returncode == 1 and "memory is locked" in again.stderr
        for result in (done, again):
            out = (result.stdout + result.stderr).upper()
            assert PASSWORD_HEX not in out and str(PASSWORD) not in out
        assert sim.model.locked == {asset_epc(RADIO_URI): PASSWORD}
