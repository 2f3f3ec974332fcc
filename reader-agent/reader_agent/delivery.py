"""Delivery of outbox rows to the API, end to end: rows leave the outbox only when the API says
it has committed them.

A broker's PUBACK says the broker has a message, not that anyone stored it: a broker that
crashes before saving its queue, or a shared-subscription member that dies holding messages,
loses them. So the API answers every committed batch with an ack on this reader's acks topic
(`reader_agent.acks`): `through`, the highest number it holds with nothing missing below, and
`missing`, the holes it has waited a while for. Here:

- Release. A row is deleted when `through` covers it (`Outbox.release_through`), never sooner.
- Window. At most `unacked_max` rows are sent and not covered by `through`; separately, at
  most `inflight_window` await their PUBACK (`Publisher.window_free`).
- Re-send. Everything above `through` is sent again, in order and packed as usual, on every
  (re)connection and when `through` has not moved for `ack_timeout_s` while rows are out; the
  timeout doubles while nothing moves, up to `ack_timeout_max_s`, and resets on progress.
  Only connected: a row is never handed to paho to queue in RAM while the broker is away.
- Missing. Ranges the API asks for are sent at once from the outbox. Numbers no longer held
  are answered with a `LostRange` signed by the reader's key (`ledger.core.lost`), so the API
  can close them as lost at reader and `through` can move on.
- Hostile acks. A malformed, oversized or impossible ack (`through` beyond anything handed
  out) is counted in `acks_rejected`, logged the first time, and changes nothing. An old ack
  (a replay, or one from a slower API node) is harmless: `through` only moves forward.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.envelope import sign_envelope
from ledger.core.lost import LostRange
from ledger.core.records import format_time
from reader_agent.acks import Ack, AckError, parse_ack
from reader_agent.config import MqttSettings
from reader_agent.outbox import Outbox
from reader_agent.publisher import Publisher

MAX_MISSING_ROWS: Final = 5000
"""Rows sent per turn in answer to `missing` requests: a request for more is answered in part,
and the API asks again for what is still missing."""

log = logging.getLogger("reader_agent.delivery")


class Delivery:
    """Moves rows from `outbox` through `publisher`; call `step(now)` once a loop turn."""

    def __init__(self, outbox: Outbox, publisher: Publisher, settings: MqttSettings,
                 device: str, key: Ed25519PrivateKey) -> None:
        self.outbox, self.publisher, self.settings = outbox, publisher, settings
        self._device, self._key = device, key
        self.sent_up_to = outbox.acked_through  # the highest row handed to paho this pass
        self.timeout_s = settings.ack_timeout_s
        self._deadline: float | None = None  # re-send when `through` has not moved by then
        self._connections = 0
        self._missing: list[tuple[int, int]] = []
        self.acks_rejected = 0
        self.resends = 0
        self.lost_reported = 0

    @property
    def acked_through(self) -> int:
        return self.outbox.acked_through

    @property
    def unacked(self) -> int:
        """Rows sent and not yet covered by the API's `through`."""
        return max(0, self.sent_up_to - self.acked_through)

    def step(self, now: float) -> None:
        publisher = self.publisher
        publisher.take_acknowledged()
        self.outbox.retry_release()  # a release the disk refused earlier, if it may write now
        for payload in publisher.take_acks():
            self._take_ack(payload, now)
        if publisher.connections != self._connections:
            self._connections = publisher.connections
            self._rewind(now, "connected")
        elif self._deadline is not None and now >= self._deadline:
            self.timeout_s = min(2 * self.timeout_s, self.settings.ack_timeout_max_s)
            self._rewind(now, "no ack progress")
        if publisher.connected:
            self._answer_missing()
            self._send(now)

    def _take_ack(self, payload: bytes, now: float) -> None:
        try:
            ack = parse_ack(payload, self.outbox.next_seq)
        except AckError as exc:
            self.acks_rejected += 1
            if self.acks_rejected == 1:  # a flood must not flood the log: counted in health
                log.warning("ack rejected: %s (further rejections are only counted)", exc)
            return
        self._apply(ack, now)

    def _apply(self, ack: Ack, now: float) -> None:
        if ack.through > self.acked_through:
            self.outbox.release_through(ack.through)
            self.sent_up_to = max(self.sent_up_to, ack.through)
            self.timeout_s = self.settings.ack_timeout_s
            self._deadline = now + self.timeout_s if self.unacked else None
        for first, last in ack.missing:
            if first > self.acked_through and (first, last) not in self._missing:
                self._missing.append((first, last))

    def _rewind(self, now: float, why: str) -> None:
        """Send everything above `through` again, from the first row after it."""
        if self.sent_up_to > self.acked_through:
            self.resends += 1
            log.info("re-sending from seq %d (%s; %d rows out)", self.acked_through + 1, why,
                     self.unacked)
        self.sent_up_to = self.acked_through
        self._deadline = None

    def _send(self, now: float) -> None:
        room = min(self.publisher.window_free, self.settings.unacked_max - self.unacked)
        if room <= 0:
            return
        rows = self.outbox.pending(self.sent_up_to, room)
        taken = self.publisher.publish_rows(rows)
        if taken:
            self.sent_up_to = rows[taken - 1][0]
            if self._deadline is None:
                self._deadline = now + self.timeout_s

    def _answer_missing(self) -> None:
        """Send the rows the API asked for; sign a `LostRange` for what is no longer here."""
        budget = MAX_MISSING_ROWS
        while self._missing and budget > 0 and self.publisher.window_free > 0:
            first, last = self._missing.pop(0)
            first = max(first, self.acked_through + 1)
            if first > last:
                continue
            rows = self.outbox.rows_between(first, last, min(budget, self.publisher.window_free))
            expected = first
            for seq, _ in rows:
                if seq > expected:
                    self._report_lost(expected, seq - 1)
                expected = seq + 1
            if not rows or len(rows) < min(budget, self.publisher.window_free):
                if expected <= last:  # nothing held from `expected` to `last`
                    self._report_lost(expected, last)
            elif expected <= last:
                self._missing.insert(0, (expected, last))  # the rest next turn
            budget -= self.publisher.publish_rows(rows)

    def _report_lost(self, first: int, last: int) -> None:
        reason = self.outbox.lost_reason(first, last)
        record = LostRange(self._device, first, last, reason,
                           format_time(datetime.now(UTC))).to_record()
        if self.publisher.publish_envelope(sign_envelope(record, self._key).to_bytes()):
            self.lost_reported += last - first + 1
            log.warning("told the API seqs %d..%d are lost here: %s", first, last, reason)
