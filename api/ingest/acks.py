"""End-to-end acknowledgements: after each committed batch, every reader in it is told how far
its numbers are stored, so its agent can delete those outbox rows and re-send the rest.

    kitledger/v1/{agency}/{site}/{reader}/acks   {"v": 1, "through": 41, "missing": [[44, 47]]}

`through`: every number of the reader up to it is accounted for here: stored, refused after its
signature verified (kept in quarantine), or closed as lost at the reader. It is the cursor when
no gap is open, else one below the lowest open gap (`api.ingest.sequence.progress`).
`missing`: open gaps older than MISSING_AFTER_S, at most MAX_MISSING_RANGES, the API asking
for them again. The agent deletes rows only up to `through` (`reader_agent.delivery`).

Every reader of the batch gets one, also a reader whose messages were all replays: a replay
usually means the agent missed the last ack, and this one repairs that. The topic is the
registered reader's own (agency, site, reader), as for decisions. Published at QoS 0: an ack is
a statement of state, repeated after every batch and by the periodic scan, so a lost one costs
only a re-send, while a PUBACK per ack would cost the worker as much as a decision does.

Each ack leaves signed with the reader's agency's answers key, as decisions do
(`api.ingest.answer_signing`, `ledger.core.answers`): a header line before this JSON, checked
by an agent that pins the key. The broker's ACL also keeps other clients off acks topics.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from sqlmodel import Session

from api.ingest import sequence
from api.ingest.checks import ReaderKey
from api.ingest.topics import ACKS, ReaderTopic

ACK_VERSION: Final = 1

MISSING_AFTER_S: Final = 3.0
"""A gap is asked for once it is this old: longer than two workers of a shared subscription
take to store neighbouring numbers (milliseconds), shorter than the agent's first re-send
timeout (5 s), so a hole is usually filled by a request rather than a whole re-send."""

MAX_MISSING_RANGES: Final = 16
"""Ranges one ack asks for (the agent accepts up to 32); the next ack asks for the rest."""


@dataclass(frozen=True, slots=True)
class AckMessage:
    """One ack for a reader's acks topic."""

    topic: str
    payload: bytes


def ack_payload(progress: sequence.Progress) -> bytes:
    """The wire form: {"v", "through", "missing"} (missing left out when empty)."""
    body: dict[str, object] = {"v": ACK_VERSION, "through": progress.through}
    if progress.missing:
        body["missing"] = [list(span) for span in progress.missing]
    return json.dumps(body, separators=(",", ":")).encode()


def ack_messages(
    session: Session, readers: Mapping[str, ReaderKey], now: datetime,
) -> list[AckMessage]:
    """The acks for `readers` (device id -> registered reader), read in `session`'s
    transaction: two statements however many readers."""
    found = sequence.progress(session, readers.keys(), now - timedelta(seconds=MISSING_AFTER_S),
                              MAX_MISSING_RANGES)
    return [
        AckMessage(ReaderTopic(reader.agency_id, reader.site_id, reader.reader_id).topic(ACKS),
                   ack_payload(found[device_id]))
        for device_id, reader in readers.items()
    ]


MISSING_SCAN_S: Final = 10.0
"""Seconds between scans for old gaps of readers that have sent nothing since: the agent
answers a request at once, so asking every ten seconds is plenty."""

MAX_SCANNED_READERS: Final = 1000
"""Readers asked per scan (those with the oldest gaps first); the rest at the next scan."""


def old_gap_acks(session: Session, now: datetime) -> list[AckMessage]:
    """Acks asking every active reader with a gap older than MISSING_AFTER_S for it, even if
    the reader sends nothing new (then no batch would ask): at most MAX_SCANNED_READERS."""
    readers = {reader.reader_id: reader for reader in sequence.readers_with_old_gaps(
        session, now - timedelta(seconds=MISSING_AFTER_S), MAX_SCANNED_READERS)}
    return ack_messages(session, readers, now) if readers else []
