"""One `kitledger up` for the web tests: a real broker, API, anchorer, readers and agents.
(The browser is the session's one, `tests.fixtures.browser`.)

The stack runs once per session (its scripted day takes about a minute); the page tests read
what the day produced, and `test_up.py` (collected last) stops it with SIGINT and checks
that nothing is left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest

from tests.api.web.web_support import KITLEDGER, ROOT, RunningStack
from tests.fixtures.ports import free_port


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    run_dir = tmp_path_factory.mktemp("up") / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KITLEDGER_")}
    process = subprocess.Popen(
        [KITLEDGER, "up", "--run-dir", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT)
    running = RunningStack(process, f"http://127.0.0.1:{port}", run_dir)
    try:
        running.read_until(r"Ctrl-C stops everything", 120)
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture(scope="session")
def day_done(stack: RunningStack) -> RunningStack:
    """The stack once the scripted day's last act (the portal alert) has been decided."""
    stack.wait_for(lambda: any(a["kind"] == "unauthorised_removal"
                               for a in stack.get("/v1/alerts")))
    return stack


@pytest.fixture(scope="session")
def inventory_taken(day_done: RunningStack) -> int:
    """A sampled inventory of the store by the return desk, completed (logged): its id."""
    opened = day_done.post("/v1/inventories", {
        "site": "hq-stores", "reader": "return-desk", "officer": "sgt-dane", "mode": "sampled",
        "confidence_bp": 9_000, "margin_bp": 2_000})
    return int(day_done.post(f"/v1/inventories/{opened['id']}/complete", {})["id"])
