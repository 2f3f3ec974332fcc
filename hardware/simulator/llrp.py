"""A simulated LLRP fixed reader (an Impinj R700 as the driver sees it) on a loopback TCP port.

It speaks real LLRP 1.1 messages encoded by pyllrp (through `reader_agent.protocol.llrp`):
the ConnectionAttemptEvent on connect, answers to capabilities, configuration and ROSpec
commands, keepalives, antenna events, and RO_ACCESS_REPORTs of the scenario's tag population
on the antennas of each enabled ROSpec at the scripted rate. Like a real reader it keeps its
ROSpecs and configuration across connections (only a reboot clears them), refuses a second
client while one is connected, and closes a client that stops acknowledging keepalives.

Faults, at run time or from the scenario's events: `reboot(duration)` (connection reset, port
closed, configuration lost), `reset_connection()` (a TCP RST, configuration kept),
`cut_network(duration)` (a half-open connection: nothing delivered either way, no FIN, no RST),
`slow(delay)` (every message it sends leaves `delay` seconds late), `inject(data)`. The
scenario's line faults apply to the byte stream: split writes are TCP segments; garbage,
corrupted headers and truncated messages are what a buggy reader or proxy sends, and put the
stream out of step, which a client must survive by reconnecting.
"""

from __future__ import annotations

import collections
import contextlib
import queue
import random
import select
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from pyllrp import pyllrp  # type: ignore[import-untyped]
from reader_agent.protocol import MalformedFrame, llrp
from reader_agent.protocol.framing import (
    ACCESS_PASSWORD_WORD,
    BANK_EPC,
    BANK_RESERVED,
    LOCK_EPC,
)

from hardware.simulator.scenario import Scenario, TagSpec

TICK: Final = 0.005
MAX_REPORTS_PER_TICK: Final = 64
"""Caps a catch-up burst after a stall, as the serial simulator does."""
KEEPALIVE_MISSES: Final = 3
"""Unacknowledged keepalives after which the reader closes the client (as Impinj readers do)."""
MAX_GARBAGE_BYTES: Final = 16
IMPINJ: Final = 25882
R700_MODEL: Final = 2001052
POWER_TABLE: Final = {i: 1000 + 25 * (i - 1) for i in range(1, 82)}
"""Index -> centi-dBm, 10.00 to 30.00 dBm in 0.25 dB steps (an R700's table)."""
ANTENNAS: Final = 4


@dataclass(slots=True)
class ReaderState:
    """What a reader remembers across connections (lost on reboot)."""

    rospecs: dict[int, tuple[list[int], int]] = field(default_factory=dict)
    """ROSpec ID -> (antennas, report every N tags)."""
    enabled: set[int] = field(default_factory=set)
    keepalive_ms: int = 0
    power_index: int | None = None
    antenna_connected: dict[int, bool] = field(
        default_factory=lambda: dict.fromkeys(range(1, ANTENNAS + 1), True))
    access_specs: dict[int, tuple[bytes | None, list[llrp.OpSpec]]] = field(default_factory=dict)
    """AccessSpec ID -> (target EPC or None for any tag, OpSpecs)."""
    access_enabled: set[int] = field(default_factory=set)


class LlrpReaderSimulator:
    """`with LlrpReaderSimulator(scenario) as sim: open_driver("llrp", sim.url)`."""

    def __init__(self, scenario: Scenario | None = None, *, host: str = "127.0.0.1",
                 port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.scenario = scenario or Scenario(protocol="llrp")
        self.host = host
        self.port = port
        self._tls = tls
        self.state = ReaderState()
        self._rng = random.Random(self.scenario.seed)  # noqa: S311 -- reproducible faults
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._inbox = llrp.MessageStream()
        self._outbox: collections.deque[tuple[float, bytes]] = collections.deque()
        self._t0 = 0.0
        self._down_until = 0.0
        self._cut_until = 0.0
        self._delay = 0.0
        self._message_id = 1000
        self._next_keepalive = 0.0
        self._unacked = 0
        self._next_event = 0
        self._cursor = 0
        self._stream_start = 0.0
        self._streamed = 0
        self._pending: dict[int, list[bytes]] = {}
        self._templates: dict[tuple[bytes, int, int], bytes] = {}
        self._frame_no = 0
        self.passwords: dict[bytes, int] = {}
        """Tags' access passwords by EPC: tag memory, so it survives a reader reboot."""
        self.locked: dict[bytes, int] = {}
        """Locked EPC banks: EPC -> the access password a rewrite needs."""
        self.stats = {"connections": 0, "refused": 0, "commands": 0, "reports": 0,
                      "tag_reads": 0, "keepalives": 0, "keepalive_acks": 0, "reboots": 0,
                      "resets": 0, "cuts": 0, "dropped_clients": 0, "garbage_bytes": 0,
                      "corrupted": 0, "truncated": 0, "bad_commands": 0,
                      "access_specs_run": 0, "writes": 0}

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{'llrps' if self._tls else 'llrp'}://{self.host}:{self.port}"

    def start(self) -> LlrpReaderSimulator:
        self._listen()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="llrp-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._drop_client(reset=False)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> LlrpReaderSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def elapsed(self) -> float:
        return time.monotonic() - self._t0

    @property
    def connected(self) -> bool:
        return self._client is not None

    # -- faults (run by the simulator thread) ---------------------------------------------

    def reboot(self, duration: float = 0.5) -> None:
        """Power cycle: the connection is reset, the port refuses for `duration`, and the
        ROSpecs, keepalive and power settings are gone."""
        self._actions.put(lambda: self._do_reboot(duration))

    def reset_connection(self) -> None:
        """The reader (or a firewall) resets the TCP connection; the reader keeps its state."""
        self._actions.put(self._do_reset)

    def cut_network(self, duration: float = 1.0) -> None:
        """Nothing passes either way for `duration` and neither side is told: a half-open
        connection, found only by keepalives that stop arriving."""
        self._actions.put(lambda: self._do_cut(duration))

    def slow(self, delay: float) -> None:
        """Every message the reader sends from now leaves `delay` seconds late (0: normal)."""
        self._actions.put(lambda: setattr(self, "_delay", delay))

    def set_antenna(self, antenna: int, connected: bool) -> None:
        """Unplug or replug an antenna cable: an AntennaEvent, and no reads on it meanwhile."""
        self._actions.put(lambda: self._do_antenna(antenna, connected))

    def inject(self, data: bytes) -> None:
        self._actions.put(lambda: self._send_raw(data))

    # -- sockets --------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(4)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener

    def _accept(self) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except (BlockingIOError, OSError):
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is not None:
            conn.settimeout(2.0)
            try:
                conn = self._tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return
        conn.setblocking(False)
        now_us = time.time_ns() // 1000
        if self._client is not None:
            # LLRP allows one client: the newcomer is told why and closed.
            self.stats["refused"] += 1
            with contextlib.suppress(OSError):
                conn.setblocking(True)
                conn.sendall(llrp.connection_event(self._next_id(), now_us,
                                                   llrp.CONNECTION_CLIENT_EXISTS))
            conn.close()
            return
        self.stats["connections"] += 1
        self._client = conn
        self._inbox.clear()
        self._outbox.clear()
        self._unacked = 0
        self._next_keepalive = time.monotonic() + self.state.keepalive_ms / 1000
        self._send(llrp.connection_event(self._next_id(), now_us))

    def _drop_client(self, *, reset: bool) -> None:
        client, self._client = self._client, None
        self._outbox.clear()
        self._pending.clear()
        if client is None:
            return
        if reset:
            with contextlib.suppress(OSError):
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            client.close()

    def _next_id(self) -> int:
        self._message_id += 1
        return self._message_id

    def _send(self, message: bytes) -> None:
        """Queue a message; it leaves after the slow-reader delay, through the line faults."""
        self._outbox.append((time.monotonic() + self._delay, message))

    def _flush(self, now: float) -> None:
        out = bytearray()
        while self._outbox and self._outbox[0][0] <= now:
            out += self._faulty(self._outbox.popleft()[1])
        if out:
            self._send_raw(bytes(out))

    def _faulty(self, message: bytes) -> bytes:
        faults = self.scenario.faults
        self._frame_no += 1
        n = self._frame_no
        if faults.corrupt_every and n % faults.corrupt_every == 0:
            # In the header: TCP delivers payload bytes intact, and LLRP has no checksum that
            # could catch a payload corrupted by the reader itself.
            i = self._rng.randrange(llrp.HEADER_LEN)
            message = message[:i] + bytes((message[i] ^ 1 << self._rng.randrange(8),)) + \
                message[i + 1 :]
            self.stats["corrupted"] += 1
        if faults.truncate_every and n % faults.truncate_every == 0:
            message = message[: self._rng.randrange(1, len(message))]
            self.stats["truncated"] += 1
        if faults.garbage_every and n % faults.garbage_every == 0:
            count = self._rng.randint(1, MAX_GARBAGE_BYTES)
            self.stats["garbage_bytes"] += count
            message += self._rng.randbytes(count)
        return message

    def _send_raw(self, data: bytes) -> None:
        client = self._client
        if client is None or time.monotonic() < self._cut_until:
            return
        pieces = [data]
        if self.scenario.faults.split_writes and len(data) > 1:
            cuts = sorted(self._rng.sample(range(1, len(data)), min(3, len(data) - 1)))
            pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        try:
            client.setblocking(True)
            client.settimeout(1.0)
            for piece in pieces:
                client.sendall(piece)
            client.setblocking(False)
        except OSError:
            self._drop_client(reset=False)  # the client went away (or stopped reading for 1 s)

    def _receive(self) -> None:
        client = self._client
        if client is None:
            return
        try:
            data = client.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop_client(reset=False)
            return
        try:
            frames = self._inbox.feed(data)
        except MalformedFrame:
            self.stats["bad_commands"] += 1
            self._drop_client(reset=True)
            return
        for frame in frames:
            self.stats["commands"] += 1
            self._handle(frame)

    # -- the reader -----------------------------------------------------------------------

    def _handle(self, frame: bytes) -> None:
        try:
            reply = llrp.decode_message(frame)
        except MalformedFrame as exc:
            self.stats["bad_commands"] += 1
            head = llrp.header(frame)
            self._send(llrp.error_message(head.message_id, 100, str(exc)[:100]))
            return
        kind, mid, message = reply
        if kind == llrp.KEEPALIVE_ACK:
            self.stats["keepalive_acks"] += 1
            self._unacked = 0
        elif kind == llrp.GET_READER_CAPABILITIES:
            self._send(llrp.capabilities_response(
                mid, manufacturer=IMPINJ, model=R700_MODEL, firmware="8.4.1.240",
                antennas=ANTENNAS, power_table=POWER_TABLE))
        elif kind == llrp.GET_READER_CONFIG:
            self._send(llrp.antenna_properties_response(mid, self.state.antenna_connected))
        elif kind == llrp.SET_READER_CONFIG:
            self._send(self._set_config(mid, message))
        elif kind == llrp.ADD_ROSPEC:
            self._send(self._add_rospec(mid, message))
        elif kind in (llrp.DELETE_ROSPEC, llrp.ENABLE_ROSPEC, llrp.DISABLE_ROSPEC,
                      llrp.START_ROSPEC, llrp.STOP_ROSPEC):
            self._send(self._rospec_command(kind, mid, int(message.ROSpecID)))
        elif kind == llrp.ADD_ACCESSSPEC:
            self._send(self._add_accessspec(mid, message))
        elif kind in (llrp.DELETE_ACCESSSPEC, llrp.ENABLE_ACCESSSPEC, llrp.DISABLE_ACCESSSPEC):
            self._send(self._accessspec_command(kind, mid, int(message.AccessSpecID)))
        elif kind == llrp.CLOSE_CONNECTION:
            self._send(llrp.status_response(kind, mid))
            self._flush(float("inf"))
            self._drop_client(reset=False)
        else:
            self._send(llrp.error_message(mid, 109, f"unsupported message {reply.name}"))

    def _set_config(self, mid: int, message: Any) -> bytes:
        spec = message.getFirstParameterByClass(pyllrp.KeepaliveSpec_Parameter)
        if spec is not None:
            self.state.keepalive_ms = int(spec.PeriodicTriggerValue) if \
                spec.KeepaliveTriggerType == 1 else 0
            self._next_keepalive = time.monotonic() + self.state.keepalive_ms / 1000
        for transmitter in message.getAllParametersByClass(pyllrp.RFTransmitter_Parameter):
            if int(transmitter.TransmitPower) not in POWER_TABLE:
                return llrp.status_response(llrp.SET_READER_CONFIG, mid, 101,
                                            f"no power index {transmitter.TransmitPower}")
            self.state.power_index = int(transmitter.TransmitPower)
        return llrp.status_response(llrp.SET_READER_CONFIG, mid)

    def _add_rospec(self, mid: int, message: Any) -> bytes:
        rospec = message.getFirstParameterByClass(pyllrp.ROSpec_Parameter)
        rospec_id = int(rospec.ROSpecID)
        if rospec_id == 0 or rospec_id in self.state.rospecs:
            return llrp.status_response(llrp.ADD_ROSPEC, mid, 101,
                                        f"ROSpec {rospec_id} is zero or exists")
        antennas: list[int] = []
        for ai_spec in rospec.getAllParametersByClass(pyllrp.AISpec_Parameter):
            antennas.extend(int(a) for a in ai_spec.AntennaIDs)
        if any(not 0 <= a <= ANTENNAS for a in antennas):
            return llrp.status_response(llrp.ADD_ROSPEC, mid, 101, f"antennas {antennas}")
        report = rospec.getFirstParameterByClass(pyllrp.ROReportSpec_Parameter)
        every = max(1, int(report.N)) if report is not None else 1
        if 0 in antennas:
            antennas = list(range(1, ANTENNAS + 1))
        self.state.rospecs[rospec_id] = (antennas, every)
        return llrp.status_response(llrp.ADD_ROSPEC, mid)

    def _rospec_command(self, kind: int, mid: int, rospec_id: int) -> bytes:
        ids = list(self.state.rospecs) if rospec_id == 0 else [rospec_id]
        if rospec_id and rospec_id not in self.state.rospecs:
            return llrp.status_response(kind, mid, 101, f"no ROSpec {rospec_id}")
        for one in ids:
            if kind == llrp.DELETE_ROSPEC:
                self.state.rospecs.pop(one, None)
            if kind in (llrp.DELETE_ROSPEC, llrp.DISABLE_ROSPEC, llrp.STOP_ROSPEC):
                self.state.enabled.discard(one)
            else:  # enable (the start trigger is immediate) or start
                self.state.enabled.add(one)
        return llrp.status_response(kind, mid)

    def _add_accessspec(self, mid: int, message: Any) -> bytes:
        try:
            spec_id, target, ops = llrp.parse_accessspec(message)
        except MalformedFrame as exc:
            return llrp.status_response(llrp.ADD_ACCESSSPEC, mid, 101, str(exc)[:100])
        if spec_id == 0 or spec_id in self.state.access_specs or not ops:
            return llrp.status_response(llrp.ADD_ACCESSSPEC, mid, 101,
                                        f"AccessSpec {spec_id} is zero, exists or does nothing")
        self.state.access_specs[spec_id] = (target, ops)
        return llrp.status_response(llrp.ADD_ACCESSSPEC, mid)

    def _accessspec_command(self, kind: int, mid: int, spec_id: int) -> bytes:
        if spec_id and spec_id not in self.state.access_specs:
            return llrp.status_response(kind, mid, 101, f"no AccessSpec {spec_id}")
        for one in list(self.state.access_specs) if spec_id == 0 else [spec_id]:
            if kind == llrp.ENABLE_ACCESSSPEC:
                self.state.access_enabled.add(one)
            else:
                self.state.access_enabled.discard(one)
            if kind == llrp.DELETE_ACCESSSPEC:
                self.state.access_specs.pop(one, None)
        return llrp.status_response(kind, mid)

    def _run_access(self, now: float) -> None:
        """Each enabled AccessSpec runs once on the first inventoried tag it targets, reports
        its OpSpec results, and is gone (operation count 1)."""
        for spec_id in sorted(self.state.access_enabled):
            target, ops = self.state.access_specs[spec_id]
            seen = [(epc, antenna) for epc, antenna, _, _ in self._visible(now)
                    if target is None or epc == target]
            if not seen:
                continue
            epc, antenna = seen[0]
            tag = next(t for t in self.scenario.tags if t.epc == epc)
            results = self._execute(tag, ops)
            self.stats["access_specs_run"] += 1
            self._send(llrp.encode_access_report(self._next_id(), epc, antenna, spec_id,
                                                 results))
            self.state.access_enabled.discard(spec_id)
            self.state.access_specs.pop(spec_id, None)

    def _execute(self, tag: TagSpec, ops: list[llrp.OpSpec]) -> list[llrp.OpResult]:
        """Run the OpSpecs in order on `tag` until one fails (a reader stops there)."""
        results: list[llrp.OpResult] = []
        for op in ops:
            if op.lock_mask:
                result = self._lock(tag, op)
                results.append(llrp.OpResult(op.op_id, "lock", result, tag.epc))
            else:
                result, tag = self._write(tag, op)
                results.append(llrp.OpResult(op.op_id, "write", result, tag.epc))
            if result != llrp.OP_SUCCESS:
                break
        return results

    def _write(self, tag: TagSpec, op: llrp.OpSpec) -> tuple[int, TagSpec]:
        needed = -1 if tag.locked else self.locked.get(tag.epc)
        if needed is not None and needed != op.access_password:
            return llrp.WRITE_MEMORY_LOCKED, tag
        if op.bank == BANK_RESERVED and op.word == ACCESS_PASSWORD_WORD and len(op.data) == 4:
            self.passwords[tag.epc] = int.from_bytes(op.data, "big")
            return llrp.OP_SUCCESS, tag
        words = int.from_bytes(op.data[:2], "big") >> 11 if len(op.data) >= 2 else 0
        if op.bank != BANK_EPC or op.word != 1 or not words or len(op.data) != 2 + 2 * words:
            return 1, tag  # Tag_Memory_Overrun_Error: outside what is simulated
        written = replace(tag, epc=op.data[2:])
        self.scenario = replace(self.scenario, tags=tuple(
            written if t is tag else t for t in self.scenario.tags))
        self.stats["writes"] += 1
        return llrp.OP_SUCCESS, written

    def _lock(self, tag: TagSpec, op: llrp.OpSpec) -> int:
        if tag.locked or self.passwords.get(tag.epc, 0) != op.access_password:
            return 2  # Nonspecific_Tag_Error: the tag refuses a wrong access password
        if op.lock_mask & LOCK_EPC:
            if op.lock_action & LOCK_EPC:
                self.locked[tag.epc] = op.access_password
            else:
                self.locked.pop(tag.epc, None)
        return llrp.OP_SUCCESS

    def _do_reboot(self, duration: float) -> None:
        self.stats["reboots"] += 1
        self._drop_client(reset=True)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.state = ReaderState()
        self._down_until = time.monotonic() + duration

    def _do_reset(self) -> None:
        self.stats["resets"] += 1
        self._drop_client(reset=True)

    def _do_cut(self, duration: float) -> None:
        self.stats["cuts"] += 1
        self._cut_until = time.monotonic() + duration
        self._outbox.clear()

    def _do_antenna(self, antenna: int, connected: bool) -> None:
        self.state.antenna_connected[antenna] = connected
        self._send(llrp.antenna_event(self._next_id(), time.time_ns() // 1000, antenna,
                                      connected))

    # -- main loop ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            while not self._actions.empty():
                self._actions.get()()
            now = time.monotonic()
            if self._listener is None:
                if now >= self._down_until:
                    self._listen()
                else:
                    time.sleep(TICK)
                    continue
            self._run_events(self.elapsed())
            if now < self._cut_until:  # the network is cut: nothing in, nothing out
                time.sleep(TICK)
                continue
            sockets = [s for s in (self._listener, self._client) if s is not None]
            ready, _, _ = select.select(sockets, [], [], TICK)
            if self._listener in ready:
                self._accept()
            if self._client is not None and (self._client in ready or self._tls_pending()):
                self._receive()
            if self._client is not None:
                self._keepalive(time.monotonic())
                if self.state.access_enabled:
                    self._run_access(self.elapsed())
                self._stream(self.elapsed())
                self._flush(time.monotonic())

    def _tls_pending(self) -> bool:
        return isinstance(self._client, ssl.SSLSocket) and self._client.pending() > 0

    def _keepalive(self, now: float) -> None:
        if not self.state.keepalive_ms or now < self._next_keepalive:
            return
        if self._unacked >= KEEPALIVE_MISSES:
            self.stats["dropped_clients"] += 1
            self._drop_client(reset=True)
            return
        self._next_keepalive = now + self.state.keepalive_ms / 1000
        self._unacked += 1
        self.stats["keepalives"] += 1
        self._send(llrp.keepalive(self._next_id()))

    def _run_events(self, now: float) -> None:
        events = self.scenario.events
        while self._next_event < len(events) and events[self._next_event].at <= now:
            event = events[self._next_event]
            self._next_event += 1
            if event.action == "reset":
                self._do_reboot(event.duration)
            elif event.action == "unplug":
                self._do_cut(event.duration)
            elif event.action == "garbage":
                count = event.count
                self.stats["garbage_bytes"] += count
                self._send_raw(self._rng.randbytes(count))

    def _visible(self, now: float) -> list[tuple[bytes, int, int, int]]:
        """(epc, antenna, rssi, rospec) of every tag an enabled ROSpec can read now."""
        out: list[tuple[bytes, int, int, int]] = []
        for rospec_id in sorted(self.state.enabled):
            antennas = self.state.rospecs[rospec_id][0]
            out.extend((tag.epc, antenna, rssi, rospec_id) for tag in self.scenario.tags
                       if tag.present(now) for antenna, rssi in tag.rssi.items()
                       if antenna in antennas and self.state.antenna_connected.get(antenna))
        return out

    def _stream(self, now: float) -> None:
        visible = self._visible(now) if self.state.enabled else []
        if not visible:
            self._stream_start, self._streamed = now, 0
            return
        due = int((now - self._stream_start) * self.scenario.reads_per_second) - self._streamed
        for _ in range(min(due, MAX_REPORTS_PER_TICK)):
            epc, antenna, rssi, rospec_id = visible[self._cursor % len(visible)]
            self._cursor += 1
            self._streamed += 1
            self.stats["tag_reads"] += 1
            batch = self._pending.setdefault(rospec_id, [])
            batch.append(self._tag_data(epc, antenna, rssi))
            if len(batch) >= self.state.rospecs[rospec_id][1]:
                self._report(self._pending.pop(rospec_id))
        if due > MAX_REPORTS_PER_TICK:
            self._streamed += due - MAX_REPORTS_PER_TICK  # skip, do not burst, after a stall

    def _tag_data(self, epc: bytes, antenna: int, rssi: int) -> bytes:
        """One TagReportData parameter, encoded by pyllrp once per (tag, antenna, RSSI); its
        last 8 bytes, the first-seen time, are then set per read."""
        key = (epc, antenna, rssi)
        template = self._templates.get(key)
        if template is None:
            template = llrp.encode_report(0, [(epc, antenna, rssi, 0)])[llrp.HEADER_LEN :]
            self._templates[key] = template
        return template[:-8] + (time.time_ns() // 1000).to_bytes(8, "big")

    def _report(self, tags: list[bytes]) -> None:
        body = b"".join(tags)
        self.stats["reports"] += 1
        self._send(struct.pack("!HII", 1 << 10 | llrp.RO_ACCESS_REPORT,
                               llrp.HEADER_LEN + len(body), self._next_id()) + body)
