"""A real anvil node (from `contracts/node_modules`) on a free port, restartable with its state.

Interval mining (`--block-time`), never automine: an automining anvil stalls when a burst of
transactions arrives at once.
The address space is capped so a runaway node fails instead of eating the shared machine.
"""

from __future__ import annotations

import resource
import signal
import subprocess
from pathlib import Path

from tests.fixtures.ports import free_port, wait_for_port
from tests.paths import REPO_ROOT

REPO = REPO_ROOT
ANVIL_DIR = REPO / "contracts" / "node_modules" / "@foundry-rs"
MEMORY_CAP_BYTES = 2 * 1024**3


def anvil_binary() -> Path:
    """The anvil binary npm installed; a missing one is a broken checkout, not a skip."""
    found = sorted(ANVIL_DIR.glob("anvil-*/bin/anvil"))
    if not found:
        raise FileNotFoundError(f"no anvil under {ANVIL_DIR}: run `cd contracts && npm ci`")
    return found[0]


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP_BYTES, MEMORY_CAP_BYTES))


class AnvilNode:
    """One anvil process; `stop()` then `start()` keeps the port and the chain (via --state)."""

    def __init__(self, data_dir: Path, block_time: float = 0.2, chain_id: int = 31337,
                 extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.state = data_dir / "anvil-state.json"
        self.block_time = block_time
        self.chain_id = chain_id
        self.extra = extra or []
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        if self._process is not None:
            return
        args = [str(anvil_binary()), "--port", str(self.port), "--silent",
                "--chain-id", str(self.chain_id), *self.extra]
        if "--init" not in self.extra:  # anvil refuses --state together with --init
            args += ["--state", str(self.state)]
        if self.block_time > 0:
            args += ["--block-time", str(self.block_time)]
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_cap_memory
        )
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def stop(self) -> None:
        """Graceful stop: anvil writes its state file on SIGTERM (the pool is lost)."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Crash stop (SIGKILL): the state file keeps only what was last dumped to it."""
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._process = None
