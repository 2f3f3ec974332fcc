"""Real small filesystems for the disk tests: a tmpfs of a few megabytes, an ext4 image on a
loop device (which the kernel can be told to remount read-only, as it does a failing card),
and a filler file that leaves exactly as much room as a test wants.

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the tests are skipped with the
reason, never faked: a full disk is the one fault these tests are about.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reader_agent.agent_support import read

PAGE = 4096


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def mount_or_skip(*command: str) -> None:
    done = _run(*command)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a test filesystem here ({' '.join(command[:3])}: "
                    f"{done.stderr.strip() or done.returncode}); the disk tests need root")


def unmount(directory: Path) -> None:
    if _run("umount", str(directory)).returncode != 0:
        _run("umount", "-l", str(directory))  # something still holds it: detach it anyway


def tmpfs(directory: Path, size_bytes: int) -> Iterator[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    mount_or_skip("mount", "-t", "tmpfs", "-o", f"size={size_bytes}", "tmpfs", str(directory))
    try:
        yield directory
    finally:
        unmount(directory)


def ext4_image(directory: Path, image: Path, size_bytes: int) -> Iterator[Path]:
    """An ext4 filesystem (no reserved blocks: root cannot write past "full") on a loop device,
    mounted with errors=remount-ro."""
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is not installed: cannot make the ext4 test filesystem")
    with image.open("wb") as handle:
        handle.truncate(size_bytes)
    made = _run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    if made.returncode != 0:
        pytest.skip(f"mkfs.ext4 failed: {made.stderr.strip()}")
    directory.mkdir(parents=True, exist_ok=True)
    mount_or_skip("mount", "-o", "loop,errors=remount-ro", str(image), str(directory))
    try:
        yield directory
    finally:
        unmount(directory)


def loop_device_of(directory: Path) -> str:
    """`loopN` of the filesystem mounted at `directory`."""
    for line in Path("/proc/mounts").read_text().splitlines():
        device, target = line.split()[:2]
        if target == str(directory):
            return Path(device).name
    raise AssertionError(f"{directory} is not mounted")


def fail_ext4(directory: Path) -> None:
    """Make the kernel record an ext4 error, which (errors=remount-ro) turns the mounted
    filesystem read-only with the agent's files open: what a card's I/O errors do."""
    Path(f"/sys/fs/ext4/{loop_device_of(directory)}/trigger_fs_error").write_text("1")


def free_bytes(directory: Path) -> int:
    stat = os.statvfs(directory)
    return stat.f_bavail * stat.f_frsize


def fill(directory: Path, leave: int = 0, name: str = "filler") -> Path:
    """Grow `directory/name` until the filesystem has at most `leave` bytes free (to the page);
    with leave=0, until a write fails for lack of space."""
    path = directory / name
    with path.open("ab", buffering=0) as handle:
        extra = free_bytes(directory) - leave
        if extra >= PAGE:  # where the filesystem's own blocks refuse, page by page below
            with contextlib.suppress(OSError):
                os.posix_fallocate(handle.fileno(), handle.seek(0, os.SEEK_END),
                                   extra - extra % PAGE)
        while free_bytes(directory) > leave:
            try:
                handle.write(b"\0" * PAGE)
            except OSError:
                break
    return path


class FeedSource:
    """A read source the test feeds tag numbers into, stamped with the real monotonic clock."""

    def __init__(self) -> None:
        self.connected = True
        self.last_error: str | None = None
        self._tags: queue.Queue[int] = queue.Queue()
        self._closed = threading.Event()

    def feed(self, tags: range | list[int]) -> None:
        for n in tags:
            self._tags.put(n)

    def reads(self) -> Any:
        while not self._closed.is_set():
            try:
                n = self._tags.get(timeout=0.05)
            except queue.Empty:
                continue
            yield read(n, time.monotonic(), rssi=-40)

    def close(self) -> None:
        self._closed.set()
