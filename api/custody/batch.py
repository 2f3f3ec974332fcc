"""One batch of custody rulings as a unit of work, in the spirit of Trillian's SequenceBatch.

A `CustodyBatch` lives for one write transaction (the log writer's lock already claimed):
it loads what the rules read once (`facts`), queues what they change (`writes`), keeps the
bookkeeping of reads held for a badge (`holds`) and gathers the answers owed to readers
(`answers`). `flush()` stores every change, each table once; the caller stores the answers
(how a reader is answered is not the rules' business) and commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from sqlmodel import Session

from api.custody.facts import BatchFacts
from api.custody.holding import HoldBook
from api.custody.reads import Answer
from api.custody.writes import CustodyWrites

DESK_SESSION_TIMEOUT: Final = timedelta(minutes=5)
"""A desk's badge session ends this long after its last read: long enough to scan a kit
trolley, short enough that the next officer at the desk cannot take kit on it."""


class CustodyBatch:
    """The custody rules' state and queued writes for one transaction at time `now`."""

    def __init__(
        self, session: Session, now: datetime, *,
        session_timeout: timedelta = DESK_SESSION_TIMEOUT,
    ) -> None:
        self.session = session
        self.now = now
        self.session_timeout = session_timeout
        """A desk session idle this long is closed."""
        self.facts = BatchFacts(session)
        self.writes = CustodyWrites(session)
        self.holds = HoldBook()
        self.answers: list[Answer] = []
        """The answers owed to readers, in the order the reads were ruled on."""

    def flush(self) -> list[Answer]:
        """Store the queued changes in the transaction; return the answers to store."""
        self.writes.flush(self.now)
        return self.answers
