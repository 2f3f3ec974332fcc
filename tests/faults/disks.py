"""Outbox disks for the disk-full and read-only faults: each agent's outbox directory on a
small tmpfs of its own, which the fault fills with a ballast file or remounts read-only.
Needs root and `mount` (`can_mount` says whether this machine allows it)."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

OUTBOX_FS_BYTES: Final = 8 * 1024 * 1024
"""Each outbox's tmpfs: room for its rows (about 450 bytes each), filled by a ballast file."""


@dataclass
class OutboxMounts:
    """Each agent's outbox directory on a small tmpfs of its own (needs root and mount)."""

    paths: list[Path]

    def fill(self) -> None:
        for path in self.paths:
            ballast = path / "ballast"
            with contextlib.suppress(OSError), ballast.open("wb", buffering=0) as out:
                while True:
                    out.write(b"\0" * 65536)

    def empty(self) -> None:
        for path in self.paths:
            (path / "ballast").unlink(missing_ok=True)

    def read_only(self, on: bool) -> None:
        for path in self.paths:
            _mount("-o", f"remount,{'ro' if on else 'rw'}", str(path))


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def mount_outboxes(folders: list[Path]) -> OutboxMounts:
    """Before the agents start: mount a tmpfs on each of `folders`."""
    paths = []
    for folder in folders:
        folder.mkdir(exist_ok=True)
        _mount("-t", "tmpfs", "-o", f"size={OUTBOX_FS_BYTES}", "tmpfs", str(folder))
        paths.append(folder)
    return OutboxMounts(paths)


def unmount_outboxes(mounts: OutboxMounts) -> None:
    for path in mounts.paths:
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True,
                       timeout=30)


def can_mount() -> bool:
    """Whether this machine lets the suite mount a tmpfs (root in a privileged namespace)."""
    if shutil.which("mount") is None:
        return False
    probe = Path("/tmp") / f"kitledger-mount-probe-{random.getrandbits(32):08x}"
    probe.mkdir()
    try:
        _mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, OSError):
        return False
    finally:
        subprocess.run(["umount", str(probe)], check=False, capture_output=True, timeout=30)
        with contextlib.suppress(OSError):
            probe.rmdir()
    return True
