"""`kitledger-agent decode` and `kitledger-agent epc`: captures in hex and binary, verdicts,
garbage counting, hostile input, and the command line as a field engineer runs it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
from reader_agent import fieldtools
from reader_agent.protocol import get_codec
from reader_agent.protocol import thingmagic as tm

from tests.paths import REPO_ROOT
from tests.reader_agent.codec_oracle import load_vectors

ROOT = REPO_ROOT


def run_decode(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               argv: list[str], stdin: str | bytes) -> tuple[int, list[dict[str, Any]], str]:
    raw = stdin if isinstance(stdin, bytes) else stdin.encode()
    fake = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", fake)
    code = fieldtools.decode_main(argv)
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


@pytest.mark.parametrize("protocol", ["thingmagic", "r200", "r2000", "chafon"])
def test_decode_replays_the_captured_hex_dumps(protocol: str, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    vectors = load_vectors(protocol)
    code, lines, _ = run_decode(monkeypatch, capsys, ["--protocol", protocol],
                                vectors["capture"]["text"])
    assert code == 0
    frames = [line for line in lines[:-1] if line["checksum"] == "ok"]
    assert [f["hex"] for f in frames] == [v["hex"] for v in vectors["responses"]]
    assert [f["kind"] for f in frames] == [v["kind"] for v in vectors["responses"]]
    summary = lines[-1]
    assert summary["summary"] and summary["frames"] == len(vectors["responses"])
    assert summary["garbage_bytes"] > 0


def test_decode_reports_tag_fields_rejects_and_garbage(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tag = tm.encode_tag_record(bytes.fromhex("3074257BF7194E4000001A85"), rssi_dbm=-47,
                               antenna=2, frequency_khz=902_750)
    bad = bytearray(tag)
    bad[20] ^= 0x40
    capture = b"\x01\x02" + tag + bytes(bad) + b"\xff\x05"
    code, lines, _ = run_decode(monkeypatch, capsys, ["--protocol", "m6e", "--binary"], capture)
    assert code == 0
    first = lines[0]
    assert first["kind"] == "tag" and first["offset"] == 2 and first["checksum"] == "ok"
    assert first["uri"] == "urn:epc:id:sgtin:0614141.812345.6789"
    assert (first["rssi_dbm"], first["antenna"], first["frequency_khz"]) == (-47, 2, 902_750)
    rejected = [line for line in lines if line.get("kind") == "rejected"]
    assert rejected and rejected[0]["offset"] == 2 + len(tag)
    summary = lines[-1]
    assert summary["frames"] == 1 and summary["bad_checksum"] >= 1
    assert summary["garbage_bytes"] == len(capture) - len(tag)


def test_decode_hex_text_tolerates_separators_and_comments(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    text = "# capture from desk 3\nFF:00:22:04:00 # keep-alive\n0x84 0xE0\n\n"
    code, lines, _ = run_decode(monkeypatch, capsys, ["--protocol", "thingmagic"], text)
    assert code == 0 and lines[0]["kind"] == "keepalive" and lines[-1]["garbage_bytes"] == 0


def test_decode_marks_malformed_frames(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    frame = tm.encode_response(tm.OP_READ_TAG_MULTIPLE, 0, b"\x10\x00\x1b\x00\x00\x01\x00\x81"
                               + bytes(16))
    code, lines, _ = run_decode(monkeypatch, capsys, ["--protocol", "thingmagic"], frame.hex())
    assert code == 0 and lines[0]["kind"] == "malformed" and lines[-1]["malformed"] == 1


@pytest.mark.parametrize(("argv", "stdin"), [
    (["--protocol", "thingmagic"], "FF 0G\n"),
    (["--protocol", "thingmagic"], "F" * (fieldtools.MAX_LINE_CHARS + 1)),
    (["--protocol", "lux"], "04FF011BB4"),
])
def test_decode_refuses_unusable_input(argv: list[str], stdin: str,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_decode(monkeypatch, capsys, argv, stdin)
    assert code == 2 and err.startswith("kitledger-agent decode:")


def test_decode_capture_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fieldtools, "MAX_CAPTURE_BYTES", 100)
    chunks = fieldtools._binary_chunks(io.BytesIO(bytes(150)))
    with pytest.raises(fieldtools.CaptureError):
        list(fieldtools.decode_capture(get_codec("r200"), chunks))


@pytest.mark.parametrize(("argv", "expected"), [
    (["3074257BF7194E4000001A85"], "urn:epc:id:sgtin:0614141.812345.6789"),
    (["30 74 25 7B F7 19 4E 40 00 00 1A 85"], "urn:epc:id:sgtin:0614141.812345.6789"),
    (["e2801160600002054cc2096f"], "urn:epc:raw:96.xE2801160600002054CC2096F"),
    (["urn:epc:id:giai:0614141.5678"], "3414257BF40000000000162E"),
])
def test_epc_command(argv: list[str], expected: str,
                     capsys: pytest.CaptureFixture[str]) -> None:
    assert fieldtools.epc_main(argv) == 0
    assert capsys.readouterr().out.strip() == expected


def test_epc_command_json_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert fieldtools.epc_main(["--json", "3474257BF40000000000162E"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["scheme"] == "giai-96" and shown["filter"] == 3 and shown["gs1"]
    for bad in ("xyz", "", "00" * 63, "urn:epc:id:giai:0614141.05678"):
        assert fieldtools.epc_main([bad]) == 2
        assert "kitledger-agent epc:" in capsys.readouterr().err


def test_entry_point_dispatches_to_field_tools() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reader_agent", "decode", "--protocol", "r2000"],
        input="A0 03 01 72 EA 00 A0 04 01 74 10 D7", capture_output=True, text=True,
        timeout=30, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line.get("command") for line in lines[:-1]] == [0x72, 0x74]
    proc = subprocess.run([sys.executable, "-m", "reader_agent", "epc",
                           "3374257BF40C0E400000162E"], capture_output=True, text=True,
                          timeout=30, cwd=ROOT)
    assert proc.stdout.strip() == "urn:epc:id:grai:0614141.12345.5678"
