"""The driver loop every reader family shares: open the port by URL, configure, run inventory,
route frames (tag reads out, command answers to the waiting command), and recover.

Recovery policy: a serial error (unplugged adapter, pty closed) closes the port and reopens
it with capped exponential backoff, then reconfigures; silence longer than `watchdog` while
inventory runs, or a boot message from the reader, means the reader reset: reconfigure on the
same port. Neither needs a restart of the process. One thread iterates `reads()`; `close()`
may be called from any thread and takes effect within `read_timeout`.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar

import serial

from reader_agent.drivers.settings import (
    CommandFailed,
    CommandTimeout,
    DriverCounters,
    DriverError,
    ReaderSettings,
    WriteUnsupported,
)
from reader_agent.outage import Outage
from reader_agent.protocol import MAX_EPC_BYTES, Codec, MalformedFrame, ReaderReply, get_codec
from reader_agent.protocol.framing import (
    ACCESS_PASSWORD_WORD,
    BANK_EPC,
    BANK_RESERVED,
    LOCK_EPC_AND_ACCESS,
)
from reader_agent.reads import TagRead

log = logging.getLogger(__name__)

PortFactory = Callable[..., serial.Serial]
MAX_BACKLOG = 10_000
"""Tag reads that arrive while a command waits for its answer are held here; a reader streams
at most ~1,100 reads/s, so this covers several seconds of commands before dropping."""


PC_WORD = 1
"""The EPC bank holds StoredCRC (word 0), the PC word (1), then the EPC (from word 2)."""
PC_LENGTH_SHIFT = 11
"""The PC word's top five bits count the EPC's 16-bit words; the rest stay 0 for a GS1 EPC."""
QUIET_AFTER_STOP = 0.25
DRAIN_LIMIT = 5.0
"""A ThingMagic module sends its buffered reads for up to about two seconds after a stop."""


class ReaderDriver(ABC):
    """Base of the per-family drivers. Subclasses provide `_configure` and `_start_inventory`
    and may react to replies in `_on_reply`."""

    protocol: ClassVar[str]
    can_write: ClassVar[bool] = False
    """True for families whose EPC write command is documented to us byte for byte."""
    can_lock: ClassVar[bool] = False
    """True for families whose lock command (and a write to the reserved bank) is documented."""
    reads_temperature: ClassVar[bool] = False
    """True for families with a temperature command (`_refresh_temperature`)."""

    def __init__(self, url: str, settings: ReaderSettings | None = None, *,
                 port_factory: PortFactory = serial.serial_for_url,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.settings = settings or ReaderSettings()
        self._validate(self.settings)  # config errors surface at start, not as endless retries
        self._codec: Codec = get_codec(self.protocol)
        self._port_factory = port_factory
        self._clock = clock
        self._port: serial.Serial | None = None
        self._stream = self._codec.stream()
        self._backlog: collections.deque[TagRead] = collections.deque()
        self._closed = threading.Event()
        self._counters = DriverCounters()
        self._ever_opened = False
        self._retry_delay = self.settings.reconnect_initial
        self._last_rx = 0.0
        self._last_frame = 0.0
        self.connected = False
        self.last_error: str | None = None
        self.reader_info: bytes = b""
        self.temperature_c: float | None = None
        """The reader's own temperature (degrees Celsius) as last read; None if never read."""
        self._temperature_at = float("-inf")
        # An unplugged reader is retried every few seconds all night: one line per outage.
        self._outage = Outage(log, f"reader {url}")

    # -- public ---------------------------------------------------------------------------

    @property
    def down_since(self) -> float | None:
        """When (monotonic) the reader stopped reading, while it is down; None while up."""
        return None if self.connected else self._outage.since

    @property
    def counters(self) -> DriverCounters:
        """A snapshot: stream counters merged into the driver's own."""
        snap = DriverCounters(**self._counters.as_dict())
        stream = self._stream.counters
        snap.frames_ok, snap.bad_checksum = stream.frames_ok, stream.bad_checksum
        snap.garbage_bytes, snap.resyncs = stream.garbage_bytes, stream.resyncs
        return snap

    def reads(self) -> Iterator[TagRead]:
        """Yield tag reads until `close()`; reconnects and reconfigures as needed."""
        try:
            while not self._closed.is_set():
                if self._port is None and not self._open():
                    continue
                if not self.connected:
                    self._bring_up()
                while self._backlog:
                    yield self._backlog.popleft()
                for item in self._poll():
                    if isinstance(item, TagRead):
                        self._counters.reads += 1
                        yield item
                    else:
                        self._dispatch(item)
                if self.connected and self._temperature_due():
                    self._temperature_at = self._clock()
                    try:
                        self._refresh_temperature()
                    except DriverError as exc:
                        self._restart(f"{type(exc).__name__}: {exc}")
                limit = self._silence_limit()
                if self.connected and self._clock() - self._last_frame > limit:
                    self._restart(f"no frame for {limit:.1f} s")
        finally:
            if self._port is not None and self.connected:
                # Best effort: a module left streaming floods the next host's first commands.
                with contextlib.suppress(DriverError):
                    self._send_stop()
            self._drop_port(None)

    # -- desk operations: one at a time from the caller's thread, never while reads() runs --

    def survey(self, seconds: float) -> dict[bytes, int]:
        """Run inventory for `seconds` and count the reads of each EPC, then stop it and
        drain the line. Opens and configures the reader on first use; raises DriverError."""
        self._ready()
        self._start_inventory()
        counts: dict[bytes, int] = {}
        deadline = self._clock() + seconds
        while self._clock() < deadline:
            for item in self._poll():
                if isinstance(item, TagRead):
                    counts[item.epc] = counts.get(item.epc, 0) + 1
                else:
                    self._on_reply(item)
        self._send_stop()
        self._drain()
        while self._backlog:  # reads that arrived while a command waited for its answer
            epc = self._backlog.popleft().epc
            counts[epc] = counts.get(epc, 0) + 1
        return counts

    def write_epc(self, epc: bytes, current: bytes | None = None) -> None:
        """Write `epc` and a PC word giving its length to the EPC bank from word 1, on
        whichever tag answers: the caller makes sure only one is in the field (`current`,
        the EPC surveyed, is for LLRP readers, which can select by it; these commands
        cannot)."""
        if not self.can_write:
            raise WriteUnsupported(f"{self.protocol} readers: no documented command writes a "
                                   "tag's EPC")
        if len(epc) % 2 or not 2 <= len(epc) <= MAX_EPC_BYTES:
            raise WriteUnsupported(f"an EPC of {len(epc)} bytes is not 1..31 whole words")
        self._ready()
        pc = (len(epc) // 2) << PC_LENGTH_SHIFT
        self._write_memory(BANK_EPC, PC_WORD, pc.to_bytes(2, "big") + epc)

    def lock_epc(self, access_password: int) -> None:
        """Give the tag in the field `access_password` and lock its EPC bank (rewrites then
        need the password) and its access password (which can then be neither read nor
        changed). A zero password would lock nothing: a Gen2 tag whose password is zero
        grants every access, so it is refused. The password is never logged."""
        if not self.can_lock:
            raise WriteUnsupported(f"{self.protocol} readers: no documented command locks a tag")
        if not 0 < access_password <= 0xFFFFFFFF:
            raise WriteUnsupported("the access password must be a non-zero 32-bit value")
        self._ready()
        self._write_memory(BANK_RESERVED, ACCESS_PASSWORD_WORD, access_password.to_bytes(4, "big"))
        self._lock(LOCK_EPC_AND_ACCESS, LOCK_EPC_AND_ACCESS, access_password)

    def release(self) -> None:
        """Close the port after desk operations (reads() closes it itself)."""
        self._drop_port(None)

    def _ready(self) -> None:
        """Open the port once (no retries: a person is waiting) and configure the reader."""
        if self._port is None:
            try:
                self._port = self._port_factory(
                    self.url, baudrate=self.settings.baudrate,
                    timeout=self.settings.read_timeout, write_timeout=1.0)
            except (serial.SerialException, OSError) as exc:
                raise CommandTimeout(f"cannot open {self.url}: {exc}") from None
            self._stream.clear()
        if not self.connected:
            self._configure()
            self.connected = True

    def _drain(self, *, hold: bool = False) -> None:
        """Read until the line has been quiet for QUIET_AFTER_STOP (the reader finished its
        round or flushed its buffered reads after a stop), or DRAIN_LIMIT seconds passed.
        With `hold`, the tag reads that arrive meanwhile are kept for `reads()`."""
        start = quiet_since = self._clock()
        while self._clock() - quiet_since < QUIET_AFTER_STOP:
            if self._clock() - start > DRAIN_LIMIT:
                raise CommandTimeout("the reader kept sending after inventory was stopped")
            items = self._poll()
            if items:
                quiet_since = self._clock()
            if hold:
                for item in items:
                    if isinstance(item, TagRead):
                        self._hold(item)

    def _dispatch(self, reply: ReaderReply) -> None:
        try:
            if self._on_reply(reply):
                self._restart("reader announced a reset")
        except DriverError as exc:
            self._restart(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> ReaderDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- family hooks ---------------------------------------------------------------------

    def _validate(self, settings: ReaderSettings) -> None:  # noqa: B027 -- optional hook
        """Refuse settings this reader family cannot apply (raise DriverConfigError)."""

    @abstractmethod
    def _configure(self) -> None:
        """Bring the reader to a known state and apply region, power and antennas."""

    @abstractmethod
    def _start_inventory(self) -> None:
        """Start continuous inventory."""

    def _send_stop(self) -> None:  # noqa: B027 -- optional hook
        """Ask the reader to stop continuous inventory (sent on close, not awaited)."""

    def _write_memory(self, bank: int, word_address: int, data: bytes) -> None:
        """Write `data` to `bank` from `word_address` (families with `can_write`)."""
        raise WriteUnsupported(f"{self.protocol} readers cannot write tags")

    def _lock(self, mask: int, action: int, access_password: int) -> None:
        """Apply a Gen2 lock (mask and action bits of `protocol.framing`; `can_lock`)."""
        raise WriteUnsupported(f"{self.protocol} readers cannot lock tags")

    def _refresh_temperature(self) -> None:  # noqa: B027 -- optional hook
        """Read (or ask for) the reader's temperature: called every `temperature_interval`
        while reading, for families with `reads_temperature`."""

    def _temperature_due(self) -> bool:
        interval = self.settings.temperature_interval
        return (self.reads_temperature and interval > 0
                and self._clock() - self._temperature_at >= interval)

    def _on_reply(self, reply: ReaderReply) -> bool:
        """React to a non-tag frame during inventory; True means "reader reset: reconfigure"."""
        if not reply.ok and reply.kind == "error":
            self._counters.command_errors += 1
            self.last_error = f"reader status {reply.code:#06x} on {reply.command:#04x}"
        return False

    def _answers(self, reply: ReaderReply, command: int) -> bool:
        return reply.command == command and reply.kind in ("response", "error", "event")

    def _silence_limit(self) -> float:
        """Seconds without any frame, while inventory runs, that mean the reader reset."""
        return self.settings.watchdog

    # -- helpers for the families ---------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        if self._port is None:
            raise CommandTimeout("port is closed")
        try:
            self._port.write(frame)
        except (serial.SerialException, OSError) as exc:
            self._drop_port(f"serial error: {exc}")
            raise CommandTimeout(f"port lost while sending: {exc}") from None

    def _transact(self, frame: bytes, command: int, *, check: bool = True,
                  timeout: float | None = None) -> ReaderReply:
        """Send a command and wait for its answer among streamed frames."""
        self._send(frame)
        deadline = self._clock() + (timeout or self.settings.command_timeout)
        while self._clock() < deadline and not self._closed.is_set():
            if self._port is None:
                raise CommandTimeout(f"port lost while waiting for {command:#04x}")
            for item in self._poll():
                if isinstance(item, TagRead):
                    self._hold(item)
                elif self._answers(item, command):
                    if check and not item.ok:
                        raise CommandFailed(command, item.code)
                    return item
        raise CommandTimeout(f"no answer to command {command:#04x} within the timeout")

    def _hold(self, read: TagRead) -> None:
        if len(self._backlog) >= MAX_BACKLOG:
            self._backlog.popleft()
            self._counters.backlog_dropped += 1
        self._counters.reads += 1
        self._backlog.append(read)

    # -- internals ------------------------------------------------------------------------

    def _poll(self) -> list[TagRead | ReaderReply]:
        """One read from the port: parsed frames, or [] on timeout; drops the port on error."""
        port = self._port
        if port is None:
            return []
        try:
            chunk = port.read(max(1, port.in_waiting))
        except (serial.SerialException, OSError) as exc:
            self._drop_port(f"serial error: {exc}")
            return []
        now = self._clock()
        if chunk:
            self._last_rx = now
            frames = self._stream.feed(chunk)
        elif self._stream.pending and now - self._last_rx > self.settings.inter_byte_timeout:
            frames = self._stream.flush_stale()
        else:
            return []
        out: list[TagRead | ReaderReply] = []
        for frame in frames:
            try:
                out += self._codec.parse_all(frame, now)
            except MalformedFrame as exc:
                self._counters.malformed += 1
                self.last_error = str(exc)
        if frames:
            self._last_frame = now
        return out

    def _open(self) -> bool:
        """Open the port, waiting with capped backoff while it does not exist."""
        while not self._closed.is_set():
            try:
                self._port = self._port_factory(
                    self.url, baudrate=self.settings.baudrate,
                    timeout=self.settings.read_timeout, write_timeout=1.0)
            except (serial.SerialException, OSError) as exc:
                self._wait_retry(f"{type(exc).__name__}: {exc}")
                continue
            if self._ever_opened:
                self._counters.reconnects += 1
            self._ever_opened = True
            self._stream.clear()
            return True
        return False

    def _bring_up(self) -> None:
        """Configure and start inventory; on failure keep the port and retry after backoff."""
        try:
            self._configure()
            self._start_inventory()
        except DriverError as exc:
            self._counters.command_errors += 1
            self._wait_retry(f"{type(exc).__name__}: {exc}")
            return
        self.connected = True
        self._retry_delay = self.settings.reconnect_initial
        self._last_frame = self._clock()
        if self._outage.recover(f"{self.protocol} reading") is None:
            log.info("reader %s (%s) reading", self.url, self.protocol)

    def _wait_retry(self, why: str) -> None:
        self.last_error = why
        self._outage.fail(f"not ready ({why}); retrying, backoff capped at "
                          f"{self.settings.reconnect_max:g} s", logging.WARNING)
        self._closed.wait(self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, self.settings.reconnect_max)

    def _restart(self, why: str) -> None:
        self._outage.fail(f"{why}; reconfiguring", logging.WARNING)
        self._counters.restarts += 1
        self.last_error = why
        self.connected = False

    def _drop_port(self, why: str | None) -> None:
        if why:
            self.last_error = why
        self.connected = False
        port, self._port = self._port, None
        if port is not None:
            # The device may already be gone; there is nothing left to release then.
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()
