"""The reader simulator: a reader model served byte for byte on a pseudo-terminal.

A background thread owns the pty master: it deframes host commands with the family's own
codec, answers them through the model, streams tag reads from the scenario's population at the
scripted rate, and injects faults (split writes, garbage, corrupted and truncated frames,
reader resets, unplug/replug). The driver side opens `port_path`, a symlink that survives
replugs, with pyserial exactly as it opens /dev/ttyUSB0.
"""

from __future__ import annotations

import os
import queue
import random
import select
import shutil
import tempfile
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from reader_agent.protocol import FrameStream

from hardware.simulator.models import MODELS, ReaderModel
from hardware.simulator.scenario import Scenario, TagSpec

TICK = 0.005
BOOT_TIME = 0.2
"""A module takes about 200 ms from power-on to answering (SparkFun Example1)."""
MAX_FRAMES_PER_TICK = 64
"""Caps a catch-up burst after a stall so one tick never floods the pty buffer."""
MAX_GARBAGE_BYTES = 16


class ReaderSimulator:
    """`with ReaderSimulator(protocol="r200", scenario=...) as sim: open(sim.port_path)`."""

    def __init__(self, protocol: str | None = None, scenario: Scenario | None = None, *,
                 link_path: str | Path | None = None) -> None:
        self.scenario = scenario or Scenario()
        self.protocol = protocol or self.scenario.protocol
        self.model: ReaderModel = MODELS[self.protocol]()
        self.model.field = self._field
        self.model.rewrite = self._rewrite
        self._rng = random.Random(self.scenario.seed)  # noqa: S311 -- reproducible faults, not secrets
        self._tmpdir: str | None = None
        if link_path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="kitledger-sim-")
            link_path = Path(self._tmpdir) / "rfid0"
        self.port_path = str(link_path)
        self._commands = FrameStream(self.model.command_decoder)
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._master = self._slave = -1
        self._t0 = 0.0
        self._plugged_at: float | None = None
        self._booted_at = 0.0
        self._next_event = 0
        self._cursor = 0
        self._stream_start = 0.0
        self._streamed = 0
        self._frame_no = 0
        self._boot_message: list[bytes] = []
        self._last_rx = 0.0
        self.stats = {"frames": 0, "tag_reads": 0, "garbage_bytes": 0, "corrupted": 0,
                      "truncated": 0, "dropped_bytes": 0, "resets": 0, "unplugs": 0,
                      "commands": 0, "writes": 0}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> ReaderSimulator:
        self._plug()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="reader-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._unplug()
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def __enter__(self) -> ReaderSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection (thread-safe: run by the simulator thread) ------------------------

    def reset_reader(self) -> None:
        """The module reboots mid-stream: settings lost, inventory stops."""
        self._actions.put(self._do_reset)

    def unplug(self, duration: float = 1.0) -> None:
        """Pull the USB cable: the pty disappears, then a new one appears at `port_path`."""
        self._actions.put(lambda: self._do_unplug(duration))

    def inject(self, data: bytes) -> None:
        """Write raw bytes (garbage, hand-made frames) to the line."""
        self._actions.put(lambda: self._write(data))

    def set_temperature(self, celsius: int) -> None:
        """The module's temperature from now on (what its temperature command answers)."""
        self._actions.put(lambda: setattr(self.model, "temperature_c", celsius))

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    # -- the tag population as the model's writes see it (simulator thread) ---------------

    def _field(self, now: float) -> list[TagSpec]:
        antennas = self.model.antennas
        return [tag for tag in self.scenario.tags
                if tag.present(now) and any(a in antennas for a in tag.rssi)]

    def _rewrite(self, tag: TagSpec, epc: bytes) -> None:
        """A write changed this tag's EPC: it answers with the new one from now on."""
        tags = tuple(replace(t, epc=epc) if t is tag else t for t in self.scenario.tags)
        self.scenario = replace(self.scenario, tags=tags)
        self.stats["writes"] += 1

    # -- pty ------------------------------------------------------------------------------

    def _plug(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no newline translation: frames are binary
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        tmp_link = f"{self.port_path}.{os.getpid()}.tmp"
        os.symlink(os.ttyname(slave), tmp_link)
        os.replace(tmp_link, self.port_path)  # atomic: the driver never sees a half state
        self._commands.clear()

    def _unplug(self) -> None:
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1
        if os.path.lexists(self.port_path):
            os.unlink(self.port_path)

    def _do_unplug(self, duration: float) -> None:
        self.stats["unplugs"] += 1
        self._unplug()
        self.model.power_cycle()
        self._plugged_at = time.monotonic() + duration
        self._booted_at = self._plugged_at + BOOT_TIME
        self._boot_message = []

    def _do_reset(self) -> None:
        self.stats["resets"] += 1
        self._boot_message = self.model.power_cycle()
        self._booted_at = time.monotonic() + BOOT_TIME

    def _write(self, data: bytes) -> None:
        if self._master < 0:
            return
        chunks = [data]
        if self.scenario.faults.split_writes and len(data) > 1:
            cuts = sorted(self._rng.sample(range(1, len(data)), min(3, len(data) - 1)))
            chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        for chunk in chunks:
            try:
                written = os.write(self._master, chunk)
            except (BlockingIOError, OSError):
                written = 0
            # Nobody drains the line (driver away): a real UART drops bytes too.
            self.stats["dropped_bytes"] += len(chunk) - written

    def _emit(self, frames: list[bytes]) -> None:
        faults = self.scenario.faults
        out = bytearray()
        for frame in frames:
            if not frame:
                continue  # a tag held for the round's answer (Chafon)
            self._frame_no += 1
            n = self._frame_no
            if faults.corrupt_every and n % faults.corrupt_every == 0:
                i = self._rng.randrange(1, len(frame))
                flipped = frame[i] ^ (1 << self._rng.randrange(8))
                frame = frame[:i] + bytes((flipped,)) + frame[i + 1 :]
                self.stats["corrupted"] += 1
            if faults.truncate_every and n % faults.truncate_every == 0:
                frame = frame[: self._rng.randrange(1, len(frame))]
                self.stats["truncated"] += 1
            out += frame
            if faults.garbage_every and n % faults.garbage_every == 0:
                out += self._garbage(self._rng.randint(1, MAX_GARBAGE_BYTES))
            self.stats["frames"] += 1
        if out:
            self._write(bytes(out))

    def _garbage(self, count: int) -> bytes:
        # Start byte values are over-represented: they are what stresses a deframer.
        starts = (0xFF, 0xBB, 0x7E, 0xA0, 0xAA, 0xDD)
        data = bytes(self._rng.choice(starts) if self._rng.random() < 0.3
                     else self._rng.randrange(256) for _ in range(count))
        self.stats["garbage_bytes"] += count
        return data

    # -- main loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._actions.empty():
                self._actions.get()()
            now = self.elapsed()
            if self._plugged_at is not None and time.monotonic() >= self._plugged_at:
                self._plugged_at = None
                self._plug()
            if self._master < 0:
                time.sleep(TICK)
                continue
            if self.model.boot_pending and time.monotonic() >= self._booted_at:
                self.model.boot_pending = False
                self._emit(self._boot_message)
            self._run_events(now)
            ready, _, _ = select.select([self._master], [], [], TICK)
            if ready:
                self._receive(now)
                self._last_rx = time.monotonic()
            elif self._commands.pending and self.model.command_gap is not None \
                    and time.monotonic() - self._last_rx > self.model.command_gap:
                self._commands.clear()  # the module gave up on a command cut short
            if self.model.streaming:
                self._stream(self.elapsed())

    def _receive(self, now: float) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return  # EIO while no slave is open: nothing to read
        was_streaming = self.model.streaming
        for frame in self._commands.feed(data):
            self.stats["commands"] += 1
            if not self.model.boot_pending:  # a rebooting module hears nothing
                self._emit(self.model.handle(frame, now))
        if self.model.streaming and not was_streaming:
            self._stream_start, self._streamed = now, 0

    def _run_events(self, now: float) -> None:
        events = self.scenario.events
        while self._next_event < len(events) and events[self._next_event].at <= now:
            event = events[self._next_event]
            self._next_event += 1
            if event.action == "reset":
                self._do_reset()
            elif event.action == "unplug":
                self._do_unplug(event.duration)
            elif event.action == "temperature":
                self.model.temperature_c = round(event.value)
            else:
                self._write(self._garbage(event.count))

    def _stream(self, now: float) -> None:
        model = self.model
        visible = [(tag.epc, ant, rssi) for tag in self.scenario.tags if tag.present(now)
                   for ant, rssi in tag.rssi.items() if ant in model.antennas]
        if not visible:
            self._emit(model.idle(now))
            self._stream_start, self._streamed = now, 0
            return
        due = int((now - self._stream_start) * self.scenario.reads_per_second) - self._streamed
        frames: list[bytes] = []
        for _ in range(min(due, MAX_FRAMES_PER_TICK)):
            epc, antenna, rssi = visible[self._cursor % len(visible)]
            self._cursor += 1
            self._streamed += 1
            frames.append(model.tag_frame(epc, antenna, rssi, now))
            self.stats["tag_reads"] += 1
            if self._cursor % len(visible) == 0:
                frames += model.end_of_round(now)
                if not model.streaming:
                    break
        if due > MAX_FRAMES_PER_TICK:
            self._streamed += due - MAX_FRAMES_PER_TICK  # skip, do not burst, after a stall
        self._emit(frames)
