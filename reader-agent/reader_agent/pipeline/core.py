"""The read pipeline: tag reads in, observations out. Pure, no I/O, time passed in.

Per read, in order: antenna -> zone (unknown antenna dropped), the antenna's RSSI floor, then
presence. A tag arrives after `min_reads` reads within `debounce_s`; further reads of a present
tag are duplicates unless they claim it into a newly opened badge session or cross the portal
(seen in the inside zone, then the outside one within `portal_window_s`: direction "out"; the
reverse: "in"). `tick(now)` reports departures after `depart_after_s` of silence and closes idle
sessions. Both tables are OrderedDicts kept in last-seen order, so a tick only looks at the
entries that have actually expired. The hot path is a duplicate read: a few dict operations.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from ledger.core.bounds import EPC_WORD_BYTES, MAX_EPC_BYTES
from reader_agent.config import PipelineSettings
from reader_agent.pipeline.model import DropCounters, DropReason, PipelineObservation
from reader_agent.pipeline.sessions import BadgeSession, BadgeSessions
from reader_agent.reads import TagRead

MAX_TRACKED_TAGS: Final = 50_000
"""Present plus pending tags. A packed store room holds a few thousand tagged items; beyond
this the reader is flooded (or attacked) and new tags are dropped, counted, as `table_full`."""


class _Tag:
    __slots__ = ("antenna", "badge", "last_seen", "rssi", "session", "zone", "zone_seen")

    def __init__(self, antenna: int, zone: str, rssi: int | None, now: float, badge: bool) -> None:
        self.antenna, self.zone, self.rssi, self.badge = antenna, zone, rssi, badge
        self.last_seen = self.zone_seen = now
        self.session: str | None = None


class ReadPipeline:
    """State of one reader's read pipeline."""

    def __init__(self, settings: PipelineSettings, session_prefix: str) -> None:
        self._zones = {n: (a.zone, a.rssi_floor) for n, a in settings.antennas.items()}
        self._s = settings
        self._present: OrderedDict[bytes, _Tag] = OrderedDict()
        self._pending: OrderedDict[bytes, list[float]] = OrderedDict()  # epc -> [first, count]
        self.sessions = BadgeSessions(
            session_prefix, settings.session_timeout_s, settings.cosign_window_s
        )
        self.counters = DropCounters()
        self.reads_in = 0

    @property
    def present_count(self) -> int:
        return len(self._present)

    def feed_many(self, reads: Iterable[TagRead]) -> list[PipelineObservation]:
        out: list[PipelineObservation] = []
        feed = self.feed
        for read in reads:
            feed(read, out)
        return out

    def feed(self, read: TagRead, out: list[PipelineObservation]) -> None:
        """Process one read, appending any observations it causes to `out`."""
        self.reads_in += 1
        drops = self.counters.by_reason
        zone_floor = self._zones.get(read.antenna)
        if zone_floor is None:
            drops[DropReason.UNKNOWN_ANTENNA] += 1
            return
        zone, floor = zone_floor
        rssi = read.rssi_dbm
        if rssi is not None and rssi < floor:
            drops[DropReason.BELOW_RSSI_FLOOR] += 1
            return
        epc, now = read.epc, read.monotonic
        tag = self._present.get(epc)
        if tag is None:
            self._candidate(read, zone, out)
            return
        self._present.move_to_end(epc)
        tag.last_seen = now
        tag.antenna, tag.rssi = read.antenna, rssi
        before = len(out)
        if zone != tag.zone:
            self._zone_change(epc, tag, zone, now, out)
        else:
            tag.zone_seen = now
        if not tag.badge and self.sessions.current is not None:
            self._claim(epc, tag, now, out)
        if len(out) > before:
            self.counters.accepted += 1
        else:
            drops[DropReason.DUPLICATE] += 1

    def _candidate(self, read: TagRead, zone: str, out: list[PipelineObservation]) -> None:
        epc, now = read.epc, read.monotonic
        drops = self.counters.by_reason
        if not 0 < len(epc) <= MAX_EPC_BYTES or len(epc) % EPC_WORD_BYTES:
            drops[DropReason.BAD_EPC] += 1
            return
        pending = self._pending.get(epc)
        if pending is None or now - pending[0] > self._s.debounce_s:
            if pending is None and len(self._present) + len(self._pending) >= MAX_TRACKED_TAGS:
                drops[DropReason.TABLE_FULL] += 1
                return
            pending = self._pending[epc] = [now, 0.0]
            self._pending.move_to_end(epc)
        pending[1] += 1
        if pending[1] < self._s.min_reads:
            drops[DropReason.DEBOUNCING] += 1
            return
        del self._pending[epc]
        self._arrive(read, zone, out)
        self.counters.accepted += 1

    def _is_badge(self, epc: bytes) -> bool:
        return epc in self._s.badge_epcs or any(epc.startswith(p) for p in self._s.badge_prefixes)

    def _arrive(self, read: TagRead, zone: str, out: list[PipelineObservation]) -> None:
        epc, now, rssi = read.epc, read.monotonic, read.rssi_dbm
        tag = _Tag(read.antenna, zone, rssi, now, self._is_badge(epc))
        self._present[epc] = tag
        if tag.badge:
            self._close_expired(now, out)
            for badge, badged in self.sessions.badge_arrived(epc, read.antenna, zone, now):
                out.append(PipelineObservation(
                    "badge", badge, read.antenna, rssi, zone, now, session=badged.session_id))
            return
        session = self._active_session(now, out)
        if session is not None:
            tag.session = session.session_id
            session.last_activity = now
        out.append(PipelineObservation(
            "arrive", epc, read.antenna, rssi, zone, now, session=tag.session))

    def _claim(self, epc: bytes, tag: _Tag, now: float, out: list[PipelineObservation]) -> None:
        session = self._active_session(now, out)
        if session is None or tag.session == session.session_id:
            return
        tag.session = session.session_id
        session.last_activity = now
        out.append(PipelineObservation(
            "read", epc, tag.antenna, tag.rssi, tag.zone, now, session=tag.session))

    def _zone_change(
        self, epc: bytes, tag: _Tag, zone: str, now: float, out: list[PipelineObservation]
    ) -> None:
        inside, outside = self._s.portal_inside, self._s.portal_outside
        crossed = now - tag.zone_seen <= self._s.portal_window_s
        previous, tag.zone, tag.zone_seen = tag.zone, zone, now
        if not crossed or inside is None:
            return
        if previous == inside and zone == outside:
            direction: str = "out"
        elif previous == outside and zone == inside:
            direction = "in"
        else:
            return
        out.append(PipelineObservation(
            "read", epc, tag.antenna, tag.rssi, zone, now, session=tag.session,
            direction="out" if direction == "out" else "in"))

    def _active_session(self, now: float, out: list[PipelineObservation]) -> BadgeSession | None:
        self._close_expired(now, out)
        return self.sessions.active(now)

    def _close_expired(self, now: float, out: list[PipelineObservation]) -> None:
        closed = self.sessions.expire(now)
        if closed is not None:
            out.append(PipelineObservation(
                "badge", closed.badge, closed.antenna, None, closed.zone, now,
                session=closed.session_id))

    def tick(self, now: float) -> list[PipelineObservation]:
        """Departures, expired debounce candidates and idle sessions as of `now`."""
        out: list[PipelineObservation] = []
        horizon = now - self._s.depart_after_s
        present = self._present
        while present:
            epc, tag = next(iter(present.items()))
            if tag.last_seen > horizon:
                break
            del present[epc]
            if not tag.badge:
                out.append(PipelineObservation(
                    "depart", epc, tag.antenna, tag.rssi, tag.zone, now, session=tag.session))
        pending, window = self._pending, self._s.debounce_s
        while pending:
            epc, (first, _count) = next(iter(pending.items()))
            if now - first <= window:
                break
            del pending[epc]
        self._close_expired(now, out)
        return out
