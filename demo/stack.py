"""The child processes of one `kitledger up`: each in its own session with its own log file,
started in order and stopped in reverse, the whole process group of each.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

START_TIMEOUT_S: Final = 60.0
"""Longest wait for the API to answer /readyz or a simulator to link its port."""
STOP_TIMEOUT_S: Final = 15.0
"""Grace given to each child after SIGTERM before its process group is killed."""


class StackError(Exception):
    """A part of the stack did not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Stack:
    """The child processes of one `kitledger up`, started in order and stopped in reverse."""

    def __init__(self, run_dir: Path, env: dict[str, str]) -> None:
        self.run_dir = run_dir
        self.env = env
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, argv: list[str], log_name: str | None = None) -> None:
        log = open(self.run_dir / f"{log_name or name}.log", "ab")  # noqa: SIM115 - child owns it
        # Its own session: Ctrl-C reaches only us, and we stop each group (with grandchildren
        # such as serve's ingest workers) in a known order.
        process = subprocess.Popen(  # noqa: S603 - our own executables, fixed arguments
            argv, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.children.append((name, process))

    def dead_child(self) -> str | None:
        return next((name for name, p in self.children if p.poll() is not None), None)

    def stop(self) -> None:
        for _, process in reversed(self.children):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, process in reversed(self.children):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
            _signal_group(process, signal.SIGKILL)  # leftovers of the group, or a stuck leader
            process.wait()
        self.children.clear()


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def wait_until(what: str, ready: Callable[[], bool], stack: Stack) -> None:
    """Poll `ready` until it holds; StackError if a child dies first or START_TIMEOUT_S passes."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if (dead := stack.dead_child()) is not None:
            raise StackError(f"{dead} exited while waiting for {what}; see its log in "
                             f"{stack.run_dir}")
        if time.monotonic() > deadline:
            raise StackError(f"timed out waiting for {what}")
        time.sleep(0.1)
