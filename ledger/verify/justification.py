"""Verifier check that an event's reads justify it, beyond being signed reads in the bundle.

What a bundle can prove about the reads an event cites (`observations`, by envelope hash):

- each was made by the reader the event names (`reader`): an event citing reads names its
  reader, and a read by another reader is another place's evidence;
- each was made within `ledger.core.read_window` of the event's time (at most `MAX_READ_AGE`
  before it, `MAX_READ_AHEAD` after it): ingest accepts no read outside that window;
- the event cites at least one read that is not a badge read (the asset's own tag), and all the
  tag reads cited by one asset's events name the same EPC: an asset's tag;
- a badge read is cited only by an event that names authorisers (`authorised_by`), and is not
  a read of the asset's tag.

What it cannot prove until reader registrations and asset tags are log records: that the EPC is
the asset's registered tag (only that it never changes), that the reader is of the site and
role the action needs, and which authoriser a badge read belongs to (authorisers are
commitments to person ids; badges are not committed).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.core.read_window import MAX_READ_AGE, MAX_READ_AHEAD
from ledger.core.records import CustodyEvent, Observation, parse_time

BADGE_KIND = "badge"


class Justification:
    """The asset tags seen so far, event by event in leaf order."""

    def __init__(self, known: Mapping[bytes, Observation]) -> None:
        self._known = known
        self._tags: dict[str, tuple[str, int]] = {}
        """asset -> (EPC of its first cited tag read, the leaf that cited it)."""
        self._times: dict[str, datetime] = {}

    def _time(self, text: str) -> datetime:
        moment = self._times.get(text)
        if moment is None:
            if len(self._times) > 4096:  # events made together share times; bound the memory
                self._times.clear()
            moment = self._times[text] = parse_time(text)
        return moment

    def reason(self, event: CustodyEvent, leaf: int) -> str | None:
        """Why the reads `event` (at `leaf`) cites do not justify it, or None. References
        missing from the bundle are the caller's failure, not checked here."""
        reads = [(ref, self._known[bytes.fromhex(ref)]) for ref in event.observations
                 if bytes.fromhex(ref) in self._known]
        if not reads:
            return None
        if event.reader is None:
            return f"cites observation {reads[0][0]} but names no reader"
        at = self._time(event.time)
        tags = 0
        for ref, read in reads:
            short = ref[:16]
            if read.device != event.reader:
                return (f"expected observation {short}… by the event's reader "
                        f"{event.reader!r}, found one by {read.device!r}")
            observed = self._time(read.time)
            if observed < at - MAX_READ_AGE:
                return (f"observation {short}… made {read.time}, more than "
                        f"{MAX_READ_AGE.days} days before the event ({event.time})")
            if observed > at + MAX_READ_AHEAD:
                return (f"observation {short}… made {read.time}, more than "
                        f"{int(MAX_READ_AHEAD.total_seconds())} s after the event ({event.time})")
            if read.kind == BADGE_KIND:
                if not event.authorised_by:
                    return f"cites badge read {short}… but names no authoriser"
                continue
            tags += 1
            first = self._tags.setdefault(event.asset, (read.epc, leaf))
            if read.epc != first[0]:
                return (f"expected a read of the asset's tag {first[0]} (cited at leaf "
                        f"{first[1]}), observation {short}… reads {read.epc}")
        if tags == 0:
            return "cites only badge reads, no read of the asset's tag"
        tag = self._tags[event.asset][0]
        for ref, read in reads:
            if read.kind == BADGE_KIND and read.epc == tag:
                return f"badge read {ref[:16]}… is of the asset's own tag {tag}"
        return None
