"""A read source that replays a text capture of tag reads, paced in real time.

Selected with `protocol = "replay"`; `port` names the capture file. One read per line::

    # EPC_HEX  ANTENNA  RSSI_DBM
    E28011700000020A1B2C3D4E  1  -52

Settings: `rate` (reads per second, default 100) and `repeat` (start over at the end, default
false). Field engineers use it to replay what a site saw; the fault tests use it to drive a
real agent process with a known stream. Malformed lines are skipped and counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from reader_agent.errors import ConfigError
from reader_agent.reads import TagRead

MAX_LINE_CHARS: Final = 256
"""An EPC of 496 bits is 124 hex characters; a line beyond this is not a read."""

MAX_RATE: Final = 100_000.0
"""Far above any reader (about 1,100 reads/s) yet enough to stress the agent."""


class ReplaySource:
    """Same surface as a reader driver: `reads()`, `close()`, `connected`, `last_error`."""

    def __init__(self, path: Path, *, rate: float = 100.0, repeat: bool = False) -> None:
        if not 0 < rate <= MAX_RATE:
            raise ConfigError(f"replay rate {rate} is outside 0..{MAX_RATE}")
        self.path, self.rate, self.repeat = path, rate, repeat
        self.connected = False
        self.last_error: str | None = None
        self.bad_lines = 0
        self._closed = threading.Event()

    @classmethod
    def from_settings(cls, path: str, settings: dict[str, Any]) -> ReplaySource:
        unknown = set(settings) - {"rate", "repeat"}
        if unknown:
            raise ConfigError(f"[reader.settings] unknown keys for replay: {sorted(unknown)}")
        rate, repeat = settings.get("rate", 100.0), settings.get("repeat", False)
        if not isinstance(rate, int | float) or not isinstance(repeat, bool):
            raise ConfigError("[reader.settings] replay needs rate (number) and repeat (bool)")
        return cls(Path(path), rate=float(rate), repeat=repeat)

    def _parse(self, line: str) -> tuple[bytes, int, int | None] | None:
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            return None
        try:
            epc = bytes.fromhex(fields[0])
            antenna = int(fields[1])
            rssi = int(fields[2]) if len(fields) > 2 else None
        except (ValueError, IndexError):
            self.bad_lines += 1
            return None
        if len(fields) > 3 or len(line) > MAX_LINE_CHARS:
            self.bad_lines += 1
            return None
        return epc, antenna, rssi

    def reads(self) -> Iterator[TagRead]:
        interval = 1.0 / self.rate
        while not self._closed.is_set():
            try:
                handle = self.path.open("r", encoding="utf-8", errors="replace")
            except OSError as exc:
                self.last_error, self.connected = f"cannot open capture: {exc.strerror}", False
                return
            self.connected = True
            next_at = time.monotonic()
            with handle:
                for line in handle:
                    if self._closed.is_set():
                        return
                    parsed = self._parse(line[: MAX_LINE_CHARS + 1])
                    if parsed is None:
                        continue
                    next_at += interval
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        self._closed.wait(delay)
                    yield TagRead(parsed[0], parsed[1], parsed[2], time.monotonic())
            if not self.repeat:
                self.connected = False
                return

    def close(self) -> None:
        self._closed.set()
