"""Which reads of a batch wait for their badge, and which are ruled on without waiting.

The look-ups themselves are in `api.custody.pending`; this is the batch's bookkeeping around
them, kept so that each question is asked of the database at most once a batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlmodel import Session

from api.custody import pending
from api.custody.reads import VerifiedRead


class HoldBook:
    """A batch's held-read bookkeeping.

    `refilled`: devices some of whose missing numbers arrived in this batch -> the lowest of
    them (None: not known, as in the periodic scan, so any badge may have reads held).
    """

    def __init__(self, refilled: Mapping[str, int] | None = None) -> None:
        self.refilled = refilled
        self._forced: set[tuple[str, int]] = set()
        """(reader, seq) of reads to rule on now, never held again (their wait is over)."""
        self._ruled: dict[str, set[int]] = {}
        """Reader id -> the numbers of its reads ruled on in this batch, so far: a look-up
        for held reads leaves them out (their answers are not stored until the flush)."""
        self._recent_gaps: dict[str, int | None] = {}
        """Device id -> `pending.first_recent_gap`, looked up once a batch (ruling on reads
        opens and closes no gaps): with two workers, every read ahead of its badge asks."""
        self.opened: list[VerifiedRead] = []
        """Badges that let someone into a session: reads held for it are ruled on next."""
        self.refused: list[VerifiedRead] = []
        """Badges refused with a session id: reads held for it are ruled on (refused) next."""

    def ruling_on(self, reads: Iterable[VerifiedRead], *, forced: bool) -> None:
        """`reads` are about to be ruled on in this batch; `forced`: without holding any."""
        for item in reads:
            key = item.reader.reader_id
            self._ruled.setdefault(key, set()).add(item.observation.seq)
            if forced:
                self._forced.add((key, item.observation.seq))

    def ruled(self, reader_id: str) -> set[int]:
        """The numbers of `reader_id`'s reads ruled on in this batch."""
        return self._ruled.get(reader_id, set())

    def forced(self, reader_id: str, seq: int) -> bool:
        return (reader_id, seq) in self._forced

    def awaiting_earlier(
        self, session: Session, device_id: str, seq: int, now: datetime
    ) -> bool:
        """Whether a number below `seq` of `device_id` went missing lately and has not
        arrived: a read may wait for it, in case it is the read's badge."""
        if device_id not in self._recent_gaps:
            self._recent_gaps[device_id] = pending.first_recent_gap(session, device_id, now)
        first = self._recent_gaps[device_id]
        return first is not None and first < seq

    def may_have_held(self, badge: VerifiedRead) -> bool:
        """Whether reads after `badge` can be stored already. Had any arrived before it, the
        badge's number would have been missing then, so it arrived now as a refill: a badge
        that is not (the usual case, in order) has nothing held, and the look-up is skipped."""
        if self.refilled is None:
            return True
        lowest = self.refilled.get(badge.reader.reader_id)
        return lowest is not None and badge.observation.seq >= lowest
