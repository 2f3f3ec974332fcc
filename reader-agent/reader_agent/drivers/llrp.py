"""Driver for LLRP fixed readers (Impinj Speedway/R700, Zebra FX-series) over TCP or TLS.

    [reader]
    protocol = "llrp"
    port = "llrp://10.0.4.20"            # TCP 5084; llrps://... is TLS on 5085
    [reader.settings]
    zones = { door = [1, 2], desk = [3] }  # one ROSpec per zone (or antennas = [1, 2, 3])
    power_dbm = 27.0

Set-up on every connection, because a reader keeps ROSpecs across connections and a rebooted
one has none: wait for the reader's ConnectionAttemptEvent, read its capabilities (model,
firmware, antenna count, power table), set keepalives and the events watched (antenna,
ROSpec, reader exception), read which antennas are connected, delete every ROSpec, then add
and enable one ROSpec per zone reporting EPC, antenna, peak RSSI and first-seen time.

Recovery: a connection that ends (reader reboot, TCP reset, CLOSE event), a stream out of
step, a command unanswered within `command_timeout` (a slow reader), or silence longer than
`keepalive` x `keepalive_misses` (a half-open connection after a network cut: the reader
sends a KEEPALIVE every `keepalive` seconds, so silence means the path is gone even though
the socket looks open) closes the socket and reconnects with capped exponential backoff, then
sets the reader up again. The interface is the serial drivers': `reads()`, `close()`,
`connected`, `last_error`, `reader_info`, `counters`.

Desk operations (`kitledger-agent write-tag`), never while `reads()` runs: `survey`,
`write_epc` and `lock_epc` as the serial drivers have them, through an AccessSpec whose
C1G2TargetTag selects the tag by the EPC it answered with (so, unlike the serial commands, a
second tag in the field is never written by mistake), run once and reported with its OpSpec
results. LLRP defines no temperature report, so `temperature_c` stays None.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from reader_agent.drivers.settings import (
    MAX_ANTENNAS,
    CommandFailed,
    CommandTimeout,
    DriverConfigError,
    DriverError,
    TagLocked,
    WriteUnsupported,
)
from reader_agent.outage import Outage
from reader_agent.protocol import MAX_EPC_BYTES, MalformedFrame, llrp
from reader_agent.protocol.framing import (
    ACCESS_PASSWORD_WORD,
    BANK_EPC,
    BANK_RESERVED,
    LOCK_EPC_AND_ACCESS,
)
from reader_agent.reads import TagRead

log = logging.getLogger(__name__)

MAX_BACKLOG: Final = 10_000
"""Tag reads held while a command waits for its answer (as the serial drivers hold them)."""
MAX_ZONES: Final = 16
RECV_BYTES: Final = 256 * 1024
Connector = Callable[[tuple[str, int], float], socket.socket]
ACCESS_SPEC_ID: Final = 0x4B4C
"""The AccessSpec the desk operations add (and delete again)."""
ACCESS_WAIT: Final = 3.0
"""Seconds an enabled AccessSpec may take to find its tag and report, beyond the command
timeout; then no tag answered."""


class ConnectionLost(DriverError):
    """The connection ended or cannot be trusted any more; the driver reconnects."""


@dataclass(frozen=True, slots=True)
class LlrpSettings:
    """The `[reader.settings]` an LLRP reader takes. Times are seconds."""

    antennas: tuple[int, ...] = (1,)
    zones: tuple[tuple[str, tuple[int, ...]], ...] = ()
    """(zone, antennas) pairs, one ROSpec each; empty: one ROSpec over `antennas`."""
    power_dbm: float | None = None
    """Transmit power; None leaves the reader's own setting."""
    report_every: int = 1
    """Tags per RO_ACCESS_REPORT. 1 reports each read at once; more saves messages but holds
    reads until that many are seen."""
    keepalive: float = 2.0
    keepalive_misses: int = 3
    connect_timeout: float = 3.0
    command_timeout: float = 3.0
    reconnect_initial: float = 0.2
    reconnect_max: float = 30.0
    read_timeout: float = 0.05
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None

    def __post_init__(self) -> None:
        every = [a for _, ants in self.rospec_zones() for a in ants]
        if not every or any(not isinstance(a, int) or not 1 <= a <= MAX_ANTENNAS for a in every):
            raise DriverConfigError(f"antennas must be ports 1..{MAX_ANTENNAS}: {every}")
        if len(set(every)) != len(every):
            raise DriverConfigError(f"an antenna belongs to one zone only: {every}")
        if len(self.zones) > MAX_ZONES:
            raise DriverConfigError(f"at most {MAX_ZONES} zones")
        if self.power_dbm is not None and not 0 <= self.power_dbm <= 33:
            raise DriverConfigError(f"power_dbm {self.power_dbm} outside 0..33")
        if not 1 <= self.report_every <= 1000 or not 1 <= self.keepalive_misses <= 100:
            raise DriverConfigError("report_every must be 1..1000, keepalive_misses 1..100")
        timings = (self.keepalive, self.connect_timeout, self.command_timeout,
                   self.reconnect_initial, self.reconnect_max, self.read_timeout)
        if any(t <= 0 or t > 3600 for t in timings):
            raise DriverConfigError("timeouts must be positive and below an hour")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise DriverConfigError("tls_cert and tls_key go together")

    def rospec_zones(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        return self.zones or (("all", tuple(self.antennas)),)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> LlrpSettings:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise DriverConfigError(f"unknown LLRP reader settings {unknown}; "
                                    f"known: {sorted(known)}")
        values = dict(values)
        if "antennas" in values:
            values["antennas"] = tuple(values["antennas"])
        if "zones" in values:
            zones = values["zones"]
            if not isinstance(zones, Mapping) or not all(
                    isinstance(k, str) and isinstance(v, list | tuple) for k, v in zones.items()):
                raise DriverConfigError("zones must map a zone name to a list of antennas")
            values["zones"] = tuple((name, tuple(ants)) for name, ants in zones.items())
        try:
            return cls(**values)
        except TypeError as exc:
            raise DriverConfigError(str(exc)) from None


@dataclass(slots=True)
class LlrpCounters:
    """Health figures of one LLRP driver since it was created (they survive reconnects)."""

    messages: int = 0
    reads: int = 0
    malformed: int = 0
    keepalives: int = 0
    keepalive_timeouts: int = 0
    connection_losses: int = 0
    reconnects: int = 0
    rospecs_added: int = 0
    command_errors: int = 0
    command_timeouts: int = 0
    antenna_faults: int = 0
    antennas_down: int = 0
    reader_exceptions: int = 0
    backlog_dropped: int = 0
    last_reconnect_ms: int = 0
    """Time from losing the connection to reading again, for the last reconnect."""

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def parse_url(url: str) -> tuple[str, int, bool]:
    """(host, port, tls) of `llrp://host[:port]` or `llrps://host[:port]`."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DriverConfigError(f"bad LLRP reader URL {url[:80]!r}: {exc}") from None
    if parts.scheme not in ("llrp", "llrps") or not parts.hostname or parts.path not in ("", "/"):
        raise DriverConfigError(f"an LLRP reader is llrp://host[:port] or llrps://host[:port], "
                                f"not {url[:80]!r}")
    tls = parts.scheme == "llrps"
    return parts.hostname, port or (llrp.TLS_PORT if tls else llrp.PORT), tls


class LlrpDriver:
    """One LLRP reader: `for read in driver.reads(): ...` until `close()`."""

    protocol: ClassVar[str] = "llrp"
    can_write: ClassVar[bool] = True
    can_lock: ClassVar[bool] = True
    temperature_c: None = None

    def __init__(self, url: str, settings: LlrpSettings | None = None, *,
                 connector: Connector = socket.create_connection,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.settings = settings or LlrpSettings()
        self.host, self.port, self.tls = parse_url(url)
        self._tls_context = self._make_tls_context() if self.tls else None
        self._connector = connector
        self._clock = clock
        self._sock: socket.socket | None = None
        self._stream = llrp.MessageStream()
        self._backlog: collections.deque[TagRead] = collections.deque()
        self._closed = threading.Event()
        self._counters = LlrpCounters()
        self._message_id = 0
        self._retry_delay = self.settings.reconnect_initial
        self._last_rx = 0.0
        self._lost_at: float | None = None
        self._ever_connected = False
        self.connected = False
        self.last_error: str | None = None
        self.reader_info = b""
        self.antennas: dict[int, bool] = {}
        """Antenna -> connected, as the reader last said (properties and antenna events)."""
        self._access_reports: list[bytes] | None = None
        """While a desk operation waits for its AccessSpec: the reports that arrived."""
        self._written: bytes | None = None
        self._outage = Outage(log, f"LLRP reader {self.host}:{self.port}")

    # -- public ---------------------------------------------------------------------------

    @property
    def down_since(self) -> float | None:
        """When (monotonic) the reader stopped reading, while it is down; None while up."""
        return None if self.connected else self._outage.since

    @property
    def counters(self) -> LlrpCounters:
        snap = LlrpCounters(**self._counters.as_dict())
        snap.antennas_down = sum(not up for up in self.antennas.values())
        return snap

    def reads(self) -> Iterator[TagRead]:
        """Yield tag reads until `close()`; reconnects and sets the reader up again as needed."""
        try:
            while not self._closed.is_set():
                if not self.connected and not self._bring_up():
                    continue
                while self._backlog:
                    yield self._backlog.popleft()
                try:
                    for read in self._poll():
                        self._counters.reads += 1
                        yield read
                    self._check_keepalive()
                except DriverError as exc:
                    self._lose(str(exc))
        finally:
            self._goodbye()

    def close(self) -> None:
        self._closed.set()

    # -- desk operations: one at a time from the caller's thread, never while reads() runs --

    def survey(self, seconds: float) -> dict[bytes, int]:
        """Count the reads of each EPC for `seconds`; connects and sets up on first use."""
        self._ready()
        counts: dict[bytes, int] = {}
        deadline = self._clock() + seconds
        while self._clock() < deadline:
            reads = [*self._backlog, *self._poll()]
            self._backlog.clear()
            for read in reads:
                counts[read.epc] = counts.get(read.epc, 0) + 1
        return counts

    def write_epc(self, epc: bytes, current: bytes | None = None) -> None:
        """Write PC + `epc` to the EPC bank from word 1 of the tag answering with `current`
        (None: the first tag the reader inventories)."""
        if len(epc) % 2 or not 2 <= len(epc) <= MAX_EPC_BYTES:
            raise WriteUnsupported(f"an EPC of {len(epc)} bytes is not 1..31 whole words")
        pc = ((len(epc) // 2) << 11).to_bytes(2, "big")
        self._access([llrp.OpSpec(1, 0, BANK_EPC, 1, pc + epc)], current)
        self._written = epc

    def lock_epc(self, access_password: int) -> None:
        """Give the tag just written `access_password`, then lock its EPC bank and access
        password (see `ReaderDriver.lock_epc`), in one AccessSpec."""
        if not 0 < access_password <= 0xFFFFFFFF:
            raise WriteUnsupported("the access password must be a non-zero 32-bit value")
        self._access([
            llrp.OpSpec(1, 0, BANK_RESERVED, ACCESS_PASSWORD_WORD,
                        access_password.to_bytes(4, "big")),
            llrp.OpSpec(2, access_password, lock_mask=LOCK_EPC_AND_ACCESS,
                        lock_action=LOCK_EPC_AND_ACCESS),
        ], self._written)

    def release(self) -> None:
        """Leave the reader after desk operations (reads() does this itself)."""
        self._goodbye()

    def _ready(self) -> None:
        if self.connected:
            return
        try:
            self._open()
            self._await_connection_event()
            self._configure()
        except DriverError:
            self._drop("set-up failed")
            raise
        self.connected = True

    def _access(self, ops: list[llrp.OpSpec], target: bytes | None) -> None:
        """Run `ops` through an AccessSpec on the tag answering with `target`; raise on any
        OpSpec failure, or when no tag answered."""
        self._ready()
        self._transact(llrp.DELETE_ACCESSSPEC, functools.partial(
            llrp.accessspec_command, llrp.DELETE_ACCESSSPEC, access_spec_id=0))
        self._transact(llrp.ADD_ACCESSSPEC, functools.partial(
            llrp.add_accessspec, access_spec_id=ACCESS_SPEC_ID, target=target, ops=ops))
        self._access_reports = []
        try:
            self._transact(llrp.ENABLE_ACCESSSPEC, functools.partial(
                llrp.accessspec_command, llrp.ENABLE_ACCESSSPEC, access_spec_id=ACCESS_SPEC_ID))
            results = self._await_access()
        finally:
            self._access_reports = None
            # Reads held meanwhile saw the tag before the operation: stale for a read-back.
            self._backlog.clear()
            with contextlib.suppress(CommandFailed):  # gone already after its one operation
                self._transact(llrp.DELETE_ACCESSSPEC, functools.partial(
                    llrp.accessspec_command, llrp.DELETE_ACCESSSPEC,
                    access_spec_id=ACCESS_SPEC_ID))
        for result in results:
            if result.result == llrp.OP_SUCCESS:
                continue
            if result.kind == "write" and result.result == llrp.WRITE_MEMORY_LOCKED:
                raise TagLocked(llrp.ADD_ACCESSSPEC, result.result)
            texts = llrp.WRITE_RESULTS if result.kind == "write" else llrp.LOCK_RESULTS
            raise CommandFailed(llrp.ADD_ACCESSSPEC, result.result,
                                f"{result.kind} OpSpec {result.op_id}: "
                                f"{texts.get(result.result, 'unknown result')}")
        if len(results) != len(ops):
            raise CommandFailed(llrp.ADD_ACCESSSPEC, 0, f"{len(results)} of {len(ops)} "
                                "OpSpecs reported")

    def _await_access(self) -> list[llrp.OpResult]:
        deadline = self._clock() + self.settings.command_timeout + ACCESS_WAIT
        reports = self._access_reports if self._access_reports is not None else []
        while True:
            while reports:
                try:
                    results = llrp.access_results(reports.pop(0), ACCESS_SPEC_ID)
                except MalformedFrame as exc:
                    self._counters.malformed += 1
                    self.last_error = f"malformed RO_ACCESS_REPORT: {exc}"
                    continue
                if results:
                    return results
            if self._clock() >= deadline or self._closed.is_set():
                raise CommandFailed(llrp.ADD_ACCESSSPEC, 0, "no tag answered the AccessSpec "
                                    "(no tag on the reader, or not the one surveyed)")
            self._poll()  # reports land in `reports` through _route

    def __enter__(self) -> LlrpDriver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection -----------------------------------------------------------------------

    def _make_tls_context(self) -> ssl.SSLContext:
        try:
            context = ssl.create_default_context(cafile=self.settings.tls_ca)
            if self.settings.tls_cert is not None:
                context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise DriverConfigError(f"LLRP TLS files: {exc}") from None
        return context

    def _open(self) -> None:
        timeout = self.settings.connect_timeout
        try:
            sock = self._connector((self.host, self.port), timeout)
        except OSError as exc:
            raise ConnectionLost(f"cannot connect: {exc}") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._tls_context is not None:
                sock.settimeout(timeout)
                sock = self._tls_context.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.settings.read_timeout)
        except (OSError, ssl.SSLError) as exc:
            sock.close()
            raise ConnectionLost(f"TLS handshake failed: {exc}") from None
        self._sock = sock
        self._stream.clear()
        self._last_rx = self._clock()

    def _bring_up(self) -> bool:
        """Connect and set the reader up; on failure wait the backoff and say False."""
        try:
            self._open()
            self._await_connection_event()
            self._configure()
        except DriverError as exc:
            self._drop(str(exc))
            self._wait_retry(str(exc))
            return False
        if self._ever_connected:
            self._counters.reconnects += 1
        self._ever_connected = True
        if self._lost_at is not None:
            self._counters.last_reconnect_ms = round((self._clock() - self._lost_at) * 1000)
            self._lost_at = None
        self.connected = True
        self._retry_delay = self.settings.reconnect_initial
        self._last_rx = self._clock()
        if self._outage.recover("LLRP reading") is None:
            log.info("LLRP reader %s:%d reading (%s)", self.host, self.port,
                     self.reader_info.decode(errors="replace"))
        return True

    def _await_connection_event(self) -> None:
        """The reader speaks first: a ConnectionAttemptEvent saying whether we may stay."""
        deadline = self._clock() + self.settings.connect_timeout
        while self._clock() < deadline and not self._closed.is_set():
            for frame in self._receive():
                if llrp.header(frame).type != llrp.READER_EVENT_NOTIFICATION:
                    continue
                event = llrp.describe(self._decode(frame))
                status = event.get("connection_attempt")
                if status == llrp.CONNECTION_SUCCESS:
                    return
                if status is not None:
                    raise ConnectionLost(f"reader refused the connection (status {status}: "
                                         "another client is connected)")
        self._counters.command_timeouts += 1
        raise CommandTimeout("no ConnectionAttemptEvent from the reader")

    def _configure(self) -> None:
        settings = self.settings
        reply = self._transact(llrp.GET_READER_CAPABILITIES, llrp.get_reader_capabilities)
        capabilities = llrp.parse_capabilities(reply.message)
        self.reader_info = capabilities.summary.encode()
        zones = settings.rospec_zones()
        used = sorted(a for _, ants in zones for a in ants)
        if used[-1] > capabilities.max_antennas:
            raise DriverConfigError(f"antenna {used[-1]} configured; the reader has "
                                    f"{capabilities.max_antennas}")
        index = (None if settings.power_dbm is None
                 else llrp.power_index(capabilities.power_table, settings.power_dbm))
        keepalive_ms = round(settings.keepalive * 1000)
        self._transact(llrp.SET_READER_CONFIG, lambda mid: llrp.set_reader_config(
            mid, keepalive_ms=keepalive_ms, power_index=index, antennas=used))
        reply = self._transact(llrp.GET_READER_CONFIG, llrp.get_antenna_properties)
        self.antennas = {a: up for a, up in llrp.antennas_connected(reply.message).items()
                         if a in used}
        for antenna, up in sorted(self.antennas.items()):
            if not up:
                self._counters.antenna_faults += 1
                log.warning("LLRP reader %s: antenna %d is not connected", self.host, antenna)
        # A reader keeps ROSpecs across connections: ours from before a cut, or another
        # client's. Start from none, then add one per zone (the step users find missing).
        self._transact(llrp.DELETE_ROSPEC,
                       lambda mid: llrp.rospec_command(llrp.DELETE_ROSPEC, mid, 0))
        for rospec_id, (_, antennas) in enumerate(zones, 1):
            self._transact(llrp.ADD_ROSPEC, functools.partial(
                llrp.add_rospec, rospec_id=rospec_id, antennas=antennas,
                report_every=settings.report_every))
            self._transact(llrp.ENABLE_ROSPEC, functools.partial(
                llrp.rospec_command, llrp.ENABLE_ROSPEC, rospec_id=rospec_id))
            self._counters.rospecs_added += 1

    def _lose(self, why: str) -> None:
        self._counters.connection_losses += 1
        self._drop(why)
        self._outage.fail(f"{why}; reconnecting", logging.WARNING)

    def _drop(self, why: str) -> None:
        self.last_error = why
        if self.connected or self._lost_at is None:
            self._lost_at = self._clock()
        self.connected = False
        sock, self._sock = self._sock, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _wait_retry(self, why: str) -> None:
        self._outage.fail(f"not ready ({why}); retrying, backoff capped at "
                          f"{self.settings.reconnect_max:g} s", logging.WARNING)
        self._closed.wait(self._retry_delay)
        self._retry_delay = min(self._retry_delay * 2, self.settings.reconnect_max)

    def _goodbye(self) -> None:
        """Best effort on close: leave the reader without our ROSpecs, say goodbye, and wait
        (at most the command timeout) for the reader's answer before closing the socket.
        Closing at once would reset the connection while reports are still arriving, and
        the reader may then never read the goodbye; reads arriving meanwhile are not kept."""
        if self._sock is not None and self.connected:
            with contextlib.suppress(DriverError):
                self._send(llrp.rospec_command(llrp.DELETE_ROSPEC, self._next_id(), 0))
                goodbye = self._next_id()
                self._send(llrp.close_connection(goodbye))
                deadline = self._clock() + self.settings.command_timeout
                while self._clock() < deadline:
                    heads = [llrp.header(frame) for frame in self._receive()]
                    if any(head.type == llrp.CLOSE_CONNECTION_RESPONSE and
                           head.message_id == goodbye for head in heads):
                        break
        self._drop("closed")

    # -- messages -------------------------------------------------------------------------

    def _next_id(self) -> int:
        self._message_id = (self._message_id + 1) & 0xFFFFFFFF
        return self._message_id

    def _send(self, data: bytes) -> None:
        if self._sock is None:
            raise ConnectionLost("not connected")
        try:
            self._sock.sendall(data)
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionLost(f"send failed: {exc}") from None

    def _receive(self) -> list[bytes]:
        """Whole messages from one socket read ([] on timeout); raises ConnectionLost."""
        if self._sock is None:
            raise ConnectionLost("not connected")
        try:
            data = self._sock.recv(RECV_BYTES)
        except TimeoutError:
            return []
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionLost(f"connection lost: {exc}") from None
        if not data:
            raise ConnectionLost("the reader closed the connection")
        self._last_rx = self._clock()
        try:
            frames = self._stream.feed(data)
        except MalformedFrame as exc:
            self._counters.malformed += 1
            raise ConnectionLost(str(exc)) from None
        self._counters.messages += len(frames)
        return frames

    def _decode(self, frame: bytes) -> llrp.Reply:
        try:
            return llrp.decode_message(frame)
        except MalformedFrame as exc:
            self._counters.malformed += 1
            raise ConnectionLost(f"undecodable LLRP message: {exc}") from None

    def _transact(self, request: int, build: Callable[[int], bytes]) -> llrp.Reply:
        """Send a request and wait for its response; reads arriving meanwhile are held."""
        message_id = self._next_id()
        self._send(build(message_id))
        expected = llrp.response_type(request)
        deadline = self._clock() + self.settings.command_timeout
        while self._clock() < deadline and not self._closed.is_set():
            reply: llrp.Reply | None = None
            # Every message of the read is routed, also those after the response: a reader
            # may send a report in the same segment (an AccessSpec's results, tag reads).
            for frame in self._receive():
                head = llrp.header(frame)
                if reply is None and head.type in (expected, llrp.ERROR_MESSAGE) and \
                        head.message_id == message_id:
                    reply = self._decode(frame)
                    continue
                for read in self._route(frame, head):
                    self._hold(read)
            if reply is not None:
                code, description = llrp.status_of(reply.message)
                if code != llrp.STATUS_SUCCESS:
                    self._counters.command_errors += 1
                    raise CommandFailed(request, max(code, 0), description[:120])
                return reply
        if not self._closed.is_set():
            self._counters.command_timeouts += 1
        raise CommandTimeout(f"no answer to LLRP message {request} within "
                             f"{self.settings.command_timeout:g} s")

    def _hold(self, read: TagRead) -> None:
        if len(self._backlog) >= MAX_BACKLOG:
            self._backlog.popleft()
            self._counters.backlog_dropped += 1
        self._counters.reads += 1
        self._backlog.append(read)

    def _poll(self) -> list[TagRead]:
        out: list[TagRead] = []
        for frame in self._receive():
            out.extend(self._route(frame, llrp.header(frame)))
        return out

    def _route(self, frame: bytes, head: llrp.Header) -> list[TagRead]:
        """Tag reads of a report; keepalives answered; events applied."""
        if head.type == llrp.RO_ACCESS_REPORT:
            if self._access_reports is not None:
                self._access_reports.append(frame)
            try:
                return llrp.parse_report(frame, self._clock())
            except MalformedFrame as exc:
                # Framing held (the next header was valid), so only this report is lost.
                self._counters.malformed += 1
                self.last_error = f"malformed RO_ACCESS_REPORT: {exc}"
                return []
        if head.type == llrp.KEEPALIVE:
            self._counters.keepalives += 1
            self._send(llrp.keepalive_ack(head.message_id))
        elif head.type == llrp.READER_EVENT_NOTIFICATION:
            self._on_event(llrp.describe(self._decode(frame)))
        elif head.type == llrp.ERROR_MESSAGE:
            self._counters.command_errors += 1
            self.last_error = f"reader error: {llrp.describe(self._decode(frame))}"
        return []

    def _on_event(self, event: dict[str, Any]) -> None:
        if "antenna_event" in event:
            kind, antenna = event["antenna_event"]
            up = kind == llrp.ANTENNA_CONNECTED
            if antenna in self.antennas or not up:
                if not up and self.antennas.get(antenna, True):
                    self._counters.antenna_faults += 1
                    log.warning("LLRP reader %s: antenna %d disconnected", self.host, antenna)
                self.antennas[antenna] = up
        if "reader_exception" in event:
            self._counters.reader_exceptions += 1
            self.last_error = f"reader exception: {str(event['reader_exception'])[:120]}"
        if "connection_close" in event:
            raise ConnectionLost("the reader is closing the connection")

    def _check_keepalive(self) -> None:
        silent = self._clock() - self._last_rx
        limit = self.settings.keepalive * self.settings.keepalive_misses
        if silent > limit:
            self._counters.keepalive_timeouts += 1
            raise ConnectionLost(f"no message for {silent:.1f} s (keepalive every "
                                 f"{self.settings.keepalive:g} s): connection half-open")
