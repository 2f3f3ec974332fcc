"""The running agent: reader -> pipeline -> sign -> outbox -> MQTT, until SIGTERM or SIGINT.

Threads: one iterates the reader driver (blocking serial I/O) into a bounded queue; paho runs
its own network thread; a child process signs bursts (`signing_worker`); everything else
happens in the loop here, one turn at a time: take the queued reads, run the pipeline, sign the
new observations and commit them to the outbox (group commit: one fsync per SIGN_BATCH slice),
take the API's acks (deleting the rows they cover) and hand the next rows to paho within both
windows (`reader_agent.delivery`), show decisions, and now and then publish health (which
carries the driver's line counters: garbage bytes, resyncs, bad checksums, reconnects).

Disk: before storing, the loop asks `reader_agent.disk` (statvfs at a bounded rate) whether
the outbox's filesystem is low, full or read-only. Full or read-only: new observations are
refused and counted (`refused_disk`), never half-stored, while what is stored keeps being
published and deleted; the agent keeps running and takes reads again by itself when space
returns. A change of disk state is logged once and published in a health message at once.

Shutdown: stop the reader, process what is queued (those reads were accepted, so they are
stored), give the API a moment to acknowledge what is out, publish "offline", close the
outbox. Whatever the API has not acknowledged stays in the outbox and is sent again on the
next start.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from typing import Any, Final, Protocol

from reader_agent.config import AgentConfig
from reader_agent.decisions import DecisionIndicator
from reader_agent.delivery import Delivery
from reader_agent.disk import MB, DiskState, DiskWatch
from reader_agent.errors import ConfigError, OutboxDiskError, OutboxFull, OutboxReadOnly
from reader_agent.identity import load_or_create_key
from reader_agent.outage import Outage
from reader_agent.outbox import Outbox
from reader_agent.pipeline import ReadPipeline
from reader_agent.publisher import Publisher, Topics
from reader_agent.reads import TagRead
from reader_agent.signer import ObservationSigner
from reader_agent.signing_worker import SigningWorker

MAX_QUEUED_READS: Final = 100_000
"""Reads waiting for the loop: 90 s of the fastest reader. When full the reader thread blocks
(the codec then counts what the serial line overflows) rather than growing without bound."""

MAX_READS_PER_TURN: Final = 5_000
"""Reads taken per loop turn, so acks, publishing and health keep their turn under a flood."""

SIGN_BATCH: Final = 256
"""Observations signed and committed per outbox transaction. A burst (a replay, a crowded
portal) is committed in such slices with publishing in between, so PUBACKs keep flowing while
the rest is signed; one fsync per slice costs a few microseconds per observation."""

TICK_S: Final = 0.05
"""Longest wait for a read; sets how late a departure or session timeout can be noticed."""

READER_DOWN_AFTER_S: Final = 5.0
"""How long the RFID reader must have been down before health says it is disconnected."""

log = logging.getLogger("reader_agent.agent")


class ReadSource(Protocol):
    connected: bool
    last_error: str | None

    def reads(self) -> Any: ...
    def close(self) -> None: ...


def open_source(config: AgentConfig) -> ReadSource:
    """The configured reader driver (or capture replay)."""
    if config.protocol == "replay":
        from reader_agent.replay import ReplaySource
        return ReplaySource.from_settings(config.port, config.driver_settings)
    from reader_agent.drivers import DriverError, open_driver
    try:
        driver: ReadSource = open_driver(config.protocol, config.port, **config.driver_settings)
    except DriverError as exc:
        raise ConfigError(f"[reader] {exc}") from None
    return driver


class ReaderAgent:
    """One reader's agent process."""

    def __init__(self, config: AgentConfig, source: ReadSource | None = None) -> None:
        self.config = config
        key = load_or_create_key(config.key_file)
        self.signer = ObservationSigner(config.reader_id, key)
        # Forked first: before the outbox is open and before any thread runs.
        self.signing = SigningWorker(self.signer)
        try:
            self.outbox = Outbox(config.outbox_path, config.outbox_max_rows,
                                 config.outbox_alarm_fraction)
            # A fresh prefix per boot: session ids never repeat across restarts.
            self.pipeline = ReadPipeline(config.pipeline,
                                         f"{config.reader_id}-{secrets.token_hex(4)}")
            self.publisher = Publisher(config.mqtt, Topics.for_reader(
                config.agency, config.site, config.reader_id),
                DecisionIndicator(config.indicator))
            self.source = source or open_source(config)
        except BaseException:
            self.signing.close()
            raise
        self.reads: queue.Queue[TagRead] = queue.Queue(MAX_QUEUED_READS)
        self.stopping = threading.Event()
        self.refused_outbox_full = 0
        self.refused_disk = 0
        self.observations = 0
        self.delivery = Delivery(self.outbox, self.publisher, config.mqtt, config.reader_id,
                                 key)
        self._alarm_logged = False
        self._outbox_full = Outage(log, "outbox full: new observations refused")
        self._source_outage = Outage(log, "reader source failed")
        self.disk = DiskWatch(config.outbox_path.parent, config.disk_warn_mb * MB,
                              config.disk_floor_mb * MB)
        self._appended_bytes = 0
        self._health_due = self.disk.poll() is not DiskState.OK  # says so at start

    def _pump_reads(self) -> None:
        while not self.stopping.is_set():
            try:
                for read in self.source.reads():
                    while not self.stopping.is_set():
                        try:
                            self.reads.put(read, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                return  # the source ended (a capture replayed to its end)
            except Exception as exc:  # a driver bug must not stop the agent silently
                self.source.last_error = f"{type(exc).__name__}: {exc}"
                self._source_outage.fail(f"{self.source.last_error}; retrying", exc=exc)
                self.stopping.wait(1.0)

    def _take_reads(self) -> list[TagRead]:
        try:
            batch = [self.reads.get(timeout=TICK_S)]
        except queue.Empty:
            return []
        while len(batch) < MAX_READS_PER_TURN:
            try:
                batch.append(self.reads.get_nowait())
            except queue.Empty:
                break
        return batch

    def _store(self, reads: list[TagRead], now: float) -> None:
        before = self.disk.state  # polled every turn (statvfs at most once a second)
        if self.disk.poll(self._appended_bytes) is not before:
            self._health_due = True
        self._appended_bytes = 0
        found = self.pipeline.feed_many(reads)
        found.extend(self.pipeline.tick(now))
        if not found:
            return
        if self.disk.refusing:
            self.refused_disk += len(found)
            return
        free = self.outbox.free_rows()
        if len(found) > free:
            self.refused_outbox_full += len(found) - free
            self._outbox_full.fail(f"{self.outbox.depth} rows; {self.refused_outbox_full} "
                                   "refused so far", logging.ERROR)
            found = found[:free]
        elif self._outbox_full.active:
            self._outbox_full.recover(f"{self.refused_outbox_full} refused in all")
        stored = 0
        signed = self.signing.sign_slices(found, self.outbox.next_seq, SIGN_BATCH)
        for rows in signed:
            try:
                self.outbox.append(rows)
            except OutboxFull:  # cannot happen after free_rows(); counted all the same
                self.refused_outbox_full += len(found) - stored
                signed.close()
                return
            except OutboxDiskError:  # counted, logged and retried by the outbox
                self.refused_disk += len(found) - stored
                self._health_due = True
                signed.close()
                return
            stored += len(rows)
            self.observations += len(rows)
            self._appended_bytes += sum(len(envelope) for _, envelope in rows)
            self._deliver()  # keep the in-flight window full during a long burst
        if self.outbox.alarm != self._alarm_logged:
            self._alarm_logged = self.outbox.alarm
            log.warning("outbox alarm %s: %d of %d rows", "ON" if self._alarm_logged else "off",
                        self.outbox.depth, self.outbox.max_rows)

    def disk_state(self) -> DiskState:
        """The filesystem's state, or worse when a write failed that statvfs did not foresee."""
        fault = self.outbox.fault
        if isinstance(fault, OutboxReadOnly):
            return DiskState.READ_ONLY
        if fault is not None and not self.disk.refusing:
            return DiskState.FULL  # no room after all (inodes, a quota) or the card fails
        return self.disk.state

    def _deliver(self) -> None:
        self.delivery.step(time.monotonic())
        self.publisher.show_decisions()

    def _reader_connected(self, now: float) -> bool:
        """Connected, or down for less than READER_DOWN_AFTER_S: a watchdog restart or a glitch
        that the driver rides out in a moment must not raise the API's `reader_down`."""
        if self.source.connected:
            return True
        since = getattr(self.source, "down_since", None)  # drivers say; a capture replay not
        return since is not None and now - since < READER_DOWN_AFTER_S

    def health(self, reads_per_s: float) -> dict[str, Any]:
        # Drivers count line faults (garbage bytes, resyncs, bad checksums, reconnects);
        # a capture replay has no such counters.
        counters = getattr(self.source, "counters", None)
        return {
            "reader": self.config.reader_id,
            "reader_connected": self._reader_connected(time.monotonic()),
            "mqtt_connected": self.publisher.connected,
            "last_error": self.source.last_error or self.publisher.last_error,
            "reads_per_s": round(reads_per_s, 1),
            "reader_counters": counters.as_dict() if counters is not None else {},
            # The reader's own temperature where its family reports one (ThingMagic, R2000).
            "temperature_c": getattr(self.source, "temperature_c", None),
            "reads_total": self.pipeline.reads_in,
            "drops": self.pipeline.counters.snapshot(),
            "observations_total": self.observations,
            "observations_invalid": self.signer.invalid,
            "refused_outbox_full": self.refused_outbox_full,
            "refused_disk": self.refused_disk,
            "disk_state": self.disk_state().value,
            "disk_free_bytes": self.disk.free_bytes,
            "disk_warn_bytes": self.disk.warn_bytes,
            "disk_floor_bytes": self.disk.floor_bytes,
            "outbox_disk_errors": self.outbox.disk_errors,
            "outbox_error": None if self.outbox.fault is None else str(self.outbox.fault),
            "outbox_acks_deferred": self.outbox.acks_deferred,
            "outbox_depth": self.outbox.depth,
            "outbox_max": self.outbox.max_rows,
            "outbox_alarm": self.outbox.alarm,
            "outbox_quarantined": self.outbox.quarantined,
            "next_seq": self.outbox.next_seq,
            "inflight": self.publisher.inflight,
            "acked_through": self.delivery.acked_through,
            "unacked": self.delivery.unacked,
            "resends": self.delivery.resends,
            "acks_rejected": self.delivery.acks_rejected + self.publisher.acks_dropped,
            "lost_reported": self.delivery.lost_reported,
            "decisions_shown": self.publisher.decisions_shown,
            "decisions_rejected": self.publisher.decisions_rejected,
            "answers_refused": self.publisher.answers_refused,
        }

    def run(self) -> None:
        """Run until `stopping` is set (the signal handlers set it)."""
        self.publisher.start()
        reader = threading.Thread(target=self._pump_reads, name="reader", daemon=True)
        reader.start()
        interval = self.config.mqtt.health_interval_s
        last_health, reads_at_health = time.monotonic(), 0
        try:
            while not self.stopping.is_set():
                self._store(self._take_reads(), time.monotonic())
                self._deliver()
                now = time.monotonic()
                if now - last_health >= interval or self._health_due:
                    rate = (self.pipeline.reads_in - reads_at_health) / max(now - last_health,
                                                                             TICK_S)
                    self.publisher.publish_health(json.dumps(self.health(rate)).encode())
                    last_health, reads_at_health = now, self.pipeline.reads_in
                    self._health_due = False
        finally:
            self._shutdown(reader)

    def _shutdown(self, reader: threading.Thread) -> None:
        self.stopping.set()
        self.source.close()
        reader.join(timeout=2.0)
        while not self.reads.empty():
            self._store(self._take_reads(), time.monotonic())
        deadline = time.monotonic() + 2.0
        while self.delivery.unacked and time.monotonic() < deadline:
            self._deliver()
            time.sleep(0.02)
        self.publisher.stop()
        log.info("stopped: %d rows left in the outbox for the next start", self.outbox.depth)
        self.outbox.close()
        self.signing.close()
