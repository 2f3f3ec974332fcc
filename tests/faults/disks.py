"""Outbox disks for the disk-full and read-only faults: each agent's outbox directory on a
small file system of its own. A tmpfs, which the disk-full fault fills with a ballast file;
or ext4 on a loop device mounted `errors=remount-ro`, which the read-only fault breaks the way
a failing SD card breaks: an error makes the kernel remount it read-only at once, files open
for writing or not (a plain `mount -o remount,ro` is refused while the outbox is open). Such a
file system stays read-only until it is unmounted, checked and mounted again (`repair`).
Needs root and `mount` (`can_mount` says whether this machine allows it)."""

from __future__ import annotations

import contextlib
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

OUTBOX_FS_BYTES: Final = 64 * 1024 * 1024
"""Each outbox's tmpfs, filled by a ballast file. Above the agent's default free-space floor
(`disk_floor_mb`, 32 MB, under which it refuses new reads) with room for the rows (about 450
bytes each) and the WAL (about 4 MB): the agent runs with the settings it ships with, warning
of low space (under `disk_warn_mb`) all along, until the ballast takes the last byte."""


TMPFS: Final = "tmpfs"
EXT4: Final = "ext4"
"""The kinds of outbox file system (`mount_outboxes`)."""


@dataclass
class OutboxMounts:
    """Each agent's outbox directory on a small file system of its own (needs root and
    mount); for ext4, `images` holds each one's image file, in the order of `paths`."""

    paths: list[Path]
    images: list[Path] = field(default_factory=list)

    def fill(self) -> None:
        for path in self.paths:
            ballast = path / "ballast"
            with contextlib.suppress(OSError), ballast.open("wb", buffering=0) as out:
                while True:
                    out.write(b"\0" * 65536)

    def empty(self) -> None:
        for path in self.paths:
            (path / "ballast").unlink(missing_ok=True)

    def fail(self) -> None:
        """ext4: an error on each file system, which the kernel answers by remounting it
        read-only (`errors=remount-ro`), open files or not."""
        for path in self.paths:
            device = Path(_source(path)).name
            Path(f"/sys/fs/ext4/{device}/trigger_fs_error").write_text("outbox card failing\n")

    def repair(self) -> None:
        """ext4, once nothing has its outbox open: each file system unmounted, checked and
        mounted again, as the operator does for a card that went read-only."""
        for path, image in zip(self.paths, self.images, strict=True):
            _unmount(path)
            checked = subprocess.run(["e2fsck", "-fy", str(image)], capture_output=True,
                                     timeout=60, check=False)
            if checked.returncode >= E2FSCK_UNCORRECTED:
                raise RuntimeError(f"e2fsck left {image} uncorrected: {checked.stdout[-200:]!r}")
            _mount("-o", EXT4_OPTIONS, str(image), str(path))


E2FSCK_UNCORRECTED: Final = 4
"""e2fsck's exit status from which errors were left uncorrected (1 and 2: corrected)."""
EXT4_OPTIONS: Final = "loop,errors=remount-ro"
UNMOUNT_TRIES: Final = 20
"""An unmount refused as busy is tried again (the suite's own reads of the outbox end soon)."""


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=30)


def _source(path: Path) -> str:
    return subprocess.run(["findmnt", "-no", "SOURCE", str(path)], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def _unmount(path: Path) -> None:
    for _ in range(UNMOUNT_TRIES):
        if subprocess.run(["umount", str(path)], capture_output=True, timeout=30,
                          check=False).returncode == 0:
            return
        time.sleep(0.25)
    raise RuntimeError(f"{path} stays busy: cannot unmount it")


def mount_outboxes(folders: list[Path], kind: str = TMPFS) -> OutboxMounts:
    """Before the agents start: mount a file system of `kind` on each of `folders` (an ext4
    image file beside each folder)."""
    mounts = OutboxMounts([])
    for folder in folders:
        folder.mkdir(exist_ok=True)
        if kind == EXT4:
            image = folder.with_name(folder.name + ".ext4")
            with image.open("wb") as out:
                out.truncate(OUTBOX_FS_BYTES)
            subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True,
                           capture_output=True, timeout=60)
            _mount("-o", EXT4_OPTIONS, str(image), str(folder))
            mounts.images.append(image)
        else:
            _mount("-t", "tmpfs", "-o", f"size={OUTBOX_FS_BYTES}", "tmpfs", str(folder))
        mounts.paths.append(folder)
    return mounts


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
