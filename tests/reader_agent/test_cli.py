"""The installed `kitledger-agent` command as a real subprocess: `decode` (hex text on stdin,
`--binary`, a garbage-laden capture), `epc`, `enroll`, and configuration errors at `run`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reader_agent.epc import encode_pure_uri
from reader_agent.identity import load_key
from reader_agent.protocol import chafon, r200, r2000
from reader_agent.protocol import thingmagic as tm

from ledger.core.envelope import key_id

AGENT = str(Path(sys.executable).parent / "kitledger-agent")
RADIO = encode_pure_uri("urn:epc:id:giai:0614141.5678")
CAMERA = encode_pure_uri("urn:epc:id:grai:0614141.12345.5678")
HOSTILE = bytes.fromhex("FFBB7EA0FF7EBB00A0FFFF7E")  # start and end byte values in the EPC
GARBAGE = bytes.fromhex("FF FF 00 BB 7E 7E A0 13 37 BB 02 AA DD FF")
ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "thingmagic": lambda epc: tm.encode_tag_record(epc, antenna=2, rssi_dbm=-52),
    "r200": lambda epc: r200.encode_notification(epc, rssi_dbm=-52),
    "r2000": lambda epc: r2000.encode_tag(epc, antenna=2, rssi=-52),
    "chafon": lambda epc: chafon.encode_inventory([(epc, 77)], antenna=2,
                                                  status=chafon.STATUS_MORE),
}


def agent(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([AGENT, *args], input=stdin, capture_output=True, timeout=60)


def lines(result: subprocess.CompletedProcess[bytes]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return [json.loads(line) for line in result.stdout.splitlines()]


def capture(protocol: str) -> bytes:
    """Three tag frames with garbage before, between and after, and one corrupted frame."""
    encode = ENCODERS[protocol]
    corrupted = bytearray(encode(CAMERA))
    corrupted[-1] ^= 0x01
    return (GARBAGE + encode(RADIO) + GARBAGE + encode(HOSTILE) + bytes(corrupted)
            + encode(CAMERA) + GARBAGE[:5])


@pytest.mark.parametrize("protocol", ["thingmagic", "r200", "r2000", "chafon"])
@pytest.mark.parametrize("binary", [False, True], ids=["hex", "binary"])
def test_decode_a_garbage_laden_capture(protocol: str, binary: bool) -> None:
    data = capture(protocol)
    stdin = data if binary else (
        "# captured at the issue desk\n" + " ".join(f"{b:02X}" for b in data) + "\n").encode()
    out = lines(agent("decode", "--protocol", protocol, *(["--binary"] if binary else []),
                      stdin=stdin))
    summary = out[-1]
    tags = [line for line in out if line.get("kind") == "tag"]
    assert [t["epc"] for t in tags] == [RADIO.hex().upper(), HOSTILE.hex().upper(),
                                        CAMERA.hex().upper()]
    assert tags[0]["uri"] == "urn:epc:id:giai:0614141.5678"
    rssi = None if protocol == "chafon" else -52  # Chafon's strength is relative, not dBm
    assert all(t["checksum"] == "ok" and t["rssi_dbm"] == rssi for t in tags)
    assert summary["summary"] is True and summary["tags"] == 3
    # Every garbage byte and the corrupted frame's bytes are accounted for, none invented.
    assert summary["garbage_bytes"] >= 2 * len(GARBAGE)
    assert summary["bad_checksum"] + summary["garbage_bytes"] <= len(data)
    for tag in tags:
        assert data[tag["offset"]:].startswith(bytes.fromhex(tag["hex"]))


def test_decode_refuses_non_hex_text_and_unknown_protocols() -> None:
    result = agent("decode", "--protocol", "thingmagic", stdin=b"FF 0G 22\n")
    assert result.returncode == 2 and b"kitledger-agent decode:" in result.stderr
    result = agent("decode", "--protocol", "acme", stdin=b"FF\n")
    assert result.returncode == 2 and b"Traceback" not in result.stderr


@pytest.mark.parametrize(("argument", "expected"), [
    (RADIO.hex(), "urn:epc:id:giai:0614141.5678"),
    (CAMERA.hex().upper(), "urn:epc:id:grai:0614141.12345.5678"),
    ("urn:epc:id:giai:0614141.5678", RADIO.hex().upper()),
])
def test_epc_command(argument: str, expected: str) -> None:
    result = agent("epc", argument)
    assert result.returncode == 0 and result.stdout.decode().strip() == expected


@pytest.mark.parametrize("argument", ["", "XYZ", "30" * 100, "urn:epc:id:giai:notaprefix.1"])
def test_epc_command_refuses_garbage(argument: str) -> None:
    result = agent("epc", argument)
    assert result.returncode == 2 and b"Traceback" not in result.stderr


def test_enroll_makes_the_key_once_and_prints_public_values_only(
        write_config: Callable[..., Path]) -> None:
    config = write_config()
    first, second = agent("enroll", "--config", str(config)), agent("enroll", "--config",
                                                                     str(config))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    record = json.loads(first.stdout)
    assert json.loads(second.stdout) == record  # the key is made once, then reused
    key_file = config.parent / "keys" / "reader.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    key = load_key(key_file)
    assert record["fingerprint"] == key_id(key.public_key())
    assert (record["reader_id"], record["agency"], record["site"]) == ("desk-1", "testforce",
                                                                       "stores")
    assert b"PRIVATE" not in first.stdout + first.stderr + second.stdout + second.stderr


@pytest.mark.parametrize(("change", "message"), [
    (("port = ", "prot = "), b"missing required key 'port'"),
    (("[antennas.1]", "[antennas.x]"), b"antenna number"),
    (('zone = "desk"', 'zone = "desk/#"'), b"MQTT-safe"),
    (("min_reads = 1", "min_reads = 1\nmin_reeds = 2"), b"unknown keys ['min_reeds']"),
    (('role = "issue_desk"', 'role = "canteen"'), b"role"),
])
def test_run_with_a_bad_config_exits_2_naming_the_key(
        write_config: Callable[..., Path], change: tuple[str, str], message: bytes) -> None:
    config = write_config()
    config.write_text(config.read_text().replace(*change, 1))
    result = agent("run", "--config", str(config))
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and b"Traceback" not in result.stderr


def test_run_with_an_unknown_reader_protocol_exits_2(write_config: Callable[..., Path]) -> None:
    result = agent("run", "--config", str(write_config(protocol="acme", settings="")))
    assert result.returncode == 2 and b"unknown reader protocol" in result.stderr


def test_ctrl_c_stops_the_agent_without_a_traceback(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    """SIGINT to the whole process group, as a terminal's Ctrl-C sends it: the agent stops
    cleanly and its signer child, which gets the signal too, prints nothing."""
    (tmp_path / "reads.txt").write_text("# epc antenna rssi\n" + "".join(
        f"3474257BF4000000000016{i:02X} 1 -40\n" for i in range(200)))
    config = write_config(settings="rate = 20")
    agent = subprocess.Popen([AGENT, "run", "--config", str(config)], stderr=subprocess.PIPE,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "outbox.db").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1)  # the signer child is forked before the outbox opens; let reads flow
        os.killpg(agent.pid, signal.SIGINT)
        _out, err = agent.communicate(timeout=30)
    finally:
        if agent.poll() is None:
            os.killpg(agent.pid, signal.SIGKILL)
    text = err.decode(errors="replace")
    assert agent.returncode == 0, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-3000:]
