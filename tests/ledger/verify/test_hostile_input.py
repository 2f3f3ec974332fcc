"""`kitledger verify` cannot be crashed or hung by what it is given.

Each input runs through the installed console script and must end, quickly, with exit 2 and
exactly one JSON verdict on stdout (`--json`), a one-line reason and no traceback: a device that
never ends (/dev/zero, as a path and as standard input), a FIFO nobody writes to, a directory, a
server trickling a byte every two seconds (a real HTTP server on loopback), a malformed trust
file. The corpus (tests/vectors/bundles/) holds the hostile bundles themselves: an unprintable
agency, a non-hex contract, an oversize observation line.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.paths import VECTORS_DIR

KITLEDGER = Path(sys.executable).with_name("kitledger")
CORPUS = VECTORS_DIR / "bundles"
QUICK_S = 10.0
"""A refusal takes well under a second; this leaves room for a loaded machine."""


def verify(*args: str, stdin: Any = subprocess.DEVNULL, timeout: float = QUICK_S
           ) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    done = subprocess.run([str(KITLEDGER), "verify", *args, "--json"], stdin=stdin,
                          capture_output=True, timeout=timeout, check=False)
    took = time.monotonic() - started
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1, done.stdout
    verdict = json.loads(lines[0])
    assert verdict["verdict"] in {"valid", "invalid", "unusable", "unreachable", "unpinned"}
    return done.returncode, verdict, took


def assert_unusable(code: int, verdict: dict[str, Any], phrase: str) -> None:
    assert (code, verdict["verdict"]) == (2, "unusable"), verdict
    assert phrase in verdict["reason"] and "\n" not in verdict["reason"], verdict


def test_dev_zero_is_refused_at_once_as_a_path_and_as_standard_input() -> None:
    code, verdict, took = verify("/dev/zero", "--offline")
    assert_unusable(code, verdict, "not a regular file")
    with open("/dev/zero", "rb") as zero:
        code, verdict, took = verify("-", "--offline", stdin=zero)
    assert_unusable(code, verdict, "no line break")
    assert took < QUICK_S


def test_a_fifo_without_a_writer_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "bundle.fifo"
    os.mkfifo(fifo)
    code, verdict, _took = verify(str(fifo), "--offline")
    assert_unusable(code, verdict, "not a regular file")


def test_a_trust_file_that_is_a_fifo_or_a_device_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "trust.fifo"
    os.mkfifo(fifo)
    for trust in (str(fifo), "/dev/zero"):
        code, verdict, _took = verify(str(CORPUS / "valid.jsonl"), "--offline", "--trust", trust)
        assert_unusable(code, verdict, "not a regular file")


def test_a_directory_and_a_missing_file_are_unusable(tmp_path: Path) -> None:
    assert_unusable(*verify(str(tmp_path), "--offline")[:2], "not a regular file")
    assert_unusable(*verify(str(tmp_path / "missing.jsonl"), "--offline")[:2], "No such file")


def test_standard_input_carries_a_bundle() -> None:
    with (CORPUS / "valid.jsonl").open("rb") as bundle:
        code, verdict, _took = verify("-", "--offline", "--no-state", "--trust",
                                      str(CORPUS / "trust.toml"), stdin=bundle)
    assert (code, verdict["verdict"]) == (0, "valid"), verdict


class TricklingServer:
    """Answers every request with a bundle-sized Content-Length, then one byte every 2 s."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/v1/audit/bundles"
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.listener.settimeout(0.5)
        while not self.stopped.is_set():
            try:
                connection, _address = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._trickle, args=(connection,), daemon=True).start()

    def _trickle(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)
            try:
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\n"
                                   b"Content-Length: 100000\r\n\r\n")
                while not self.stopped.wait(2.0):
                    connection.sendall(b"{")
            except OSError:
                return  # the verifier hung up, as it should

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.listener.close()


@pytest.fixture
def trickling() -> Iterator[TricklingServer]:
    server = TricklingServer()
    yield server
    server.close()


def test_a_trickling_server_is_cut_off_at_the_download_deadline(trickling: TricklingServer
                                                                 ) -> None:
    code, verdict, took = verify(trickling.url, "--offline", "--download-timeout", "3",
                                 timeout=30)
    assert_unusable(code, verdict, "not finished within 3 s")
    assert 2.5 < took < 12, took


@pytest.mark.parametrize(("text", "phrase"), [
    (b"version = 1\n[[log]]\nagency = 'a'\npublic_keys = ['00']\n", "64 hex digits"),
    (b"version = 1\n[[log]]\nagency = 'a'\npublic_keys = ['" + b"0" * 64 + b"']\nextra = 1\n",
     "unknown key 'extra'"),
    (b"version = 2\n[[log]]\n", "version 2"),
    (b"not toml [", "not TOML"),
    (b"#" * (64 * 1024 + 1), "exceeds"),
])
def test_a_malformed_trust_file_is_unusable(tmp_path: Path, text: bytes, phrase: str) -> None:
    trust = tmp_path / "trust.toml"
    trust.write_bytes(text)
    code, verdict, _took = verify(str(CORPUS / "valid.jsonl"), "--offline", "--trust",
                                  str(trust))
    assert_unusable(code, verdict, phrase)


def test_usage_errors_and_hostile_bundles_answer_with_one_verdict() -> None:
    code, verdict, _took = verify(str(CORPUS / "valid.jsonl"), "--offline", "--chain-id", "x")
    assert_unusable(code, verdict, "--chain-id")
    code, verdict, _took = verify(str(CORPUS / "valid.jsonl"), "--offline",
                                  "--download-timeout", "0")
    assert_unusable(code, verdict, "--download-timeout")
    for name, phrase in (("header-agency-unprintable.jsonl", "agency"),
                         ("header-contract-not-hex.jsonl", "contract"),
                         ("observation-line-oversize.jsonl", "observation line exceeds")):
        assert_unusable(*verify(str(CORPUS / name), "--offline")[:2], phrase)
