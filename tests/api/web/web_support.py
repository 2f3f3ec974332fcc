"""The web tests' running stack and paths, shared by the web test modules."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.paths import REPO_ROOT

ROOT = REPO_ROOT
KITLEDGER = str(Path(sys.executable).parent / "kitledger")
SCREENSHOTS = Path(os.environ.get("KITLEDGER_SCREENSHOTS") or
                   tempfile.mkdtemp(prefix="kitledger-screenshots-"))
"""Where the page tests save their screenshots: a temporary directory, so a test run leaves
the checkout as it was; `KITLEDGER_SCREENSHOTS=docs/screenshots` refreshes the documented
ones."""
DAY_TIMEOUT_S = 150.0
"""The scripted day ends about 50 s after the readers start; generous for a loaded machine."""


class RunningStack:
    """The `kitledger up` process, its printed demo keys, and REST helpers."""

    def __init__(self, process: subprocess.Popen[str], url: str, run_dir: Path) -> None:
        self.process = process
        self.url = url
        self.run_dir = run_dir
        self.keys: dict[str, str] = {}
        self.lines: list[str] = []

    def read_until(self, pattern: str, timeout: float) -> str:
        """Read printed lines until one matches `pattern`."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError(f"kitledger up ended: {self.lines[-20:]}")
            self.lines.append(line.rstrip("\n"))
            if match := re.search(r"sign in as (\S+): (\S+)", line):
                self.keys[match.group(1)] = match.group(2)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in {timeout}s: {self.lines[-20:]}")

    def get(self, path: str, agency: str = "metpolice") -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {self.keys[agency]}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def post(self, path: str, body: dict[str, Any], agency: str = "metpolice") -> Any:
        request = urllib.request.Request(
            self.url + path, data=json.dumps(body).encode(), method="POST", headers={
                "Authorization": f"Bearer {self.keys[agency]}",
                "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read())

    def wait_for(self, check: Any, timeout: float = DAY_TIMEOUT_S) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(1.0)
        raise AssertionError(f"timed out; last output {self.lines[-10:]}")


def publish_read(stack: RunningStack, reader_id: str, epc_hex: str, **fields: Any) -> int:
    """Publish one signed read as the demo reader `reader_id`'s agent would: its own key,
    the stack's broker, the next sequence number. Returns that number."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from reader_agent.identity import load_key

    from demo.seed import DEMO_AGENCY, DEMO_SITE
    from tests.api.api_support import RegisteredReader

    conf = (stack.run_dir / "mosquitto" / "mosquitto.conf").read_text()
    port = int(re.search(r"^listener (\d+)", conf, re.MULTILINE).group(1))  # type: ignore[union-attr]
    database = sqlite3.connect(f"file:{stack.run_dir / 'kitledger.db'}?mode=ro", uri=True)
    try:
        (last,) = database.execute("SELECT max(seq) FROM observation WHERE device_id = ?",
                                   (reader_id,)).fetchone()
    finally:
        database.close()
    reader = RegisteredReader(reader_id, DEMO_AGENCY, DEMO_SITE,
                              load_key(stack.run_dir / "readers" / reader_id / "reader.key"))
    seq = (last or 0) + 1
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{reader_id}",
                         protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(reader.topic, reader.signed(seq, epc_hex, **fields), qos=1) \
            .wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()
    return seq
