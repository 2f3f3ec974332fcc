"""What each decision at a desk means, in words: "session opened by pc-adams", "co-signed by
sgt-dane", "checked out to dc-carter, co-signed by sgt-dane", "refused because …".

A decision row keeps only what the reader was told ("session open" for every badge read). The
story is in the reads it answered: a badge read carries the session it opened, joined or
closed (the agent's badge sessions, `reader_agent.pipeline.sessions`), so replaying a
session's badge reads in order tells opener from co-signer from the tap that closed it, and
who held the session when kit was checked out. Badges are named only for the desk's own
agency (the rules refuse any other's badge as "not ours" and so does this page).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, NamedTuple

from sqlmodel import Session, col, select

from api.custody.rules import NOT_OURS
from api.db import among
from api.models import Asset, Badge, Decision, IngestedObservation
from api.scoping import asset_visible
from api.web.session import WebUser

BADGE_LOOKBACK_READS: Final = 5000
"""How far back (in a reader's sequence numbers) a shown read's session is looked for: a
session lasts minutes, so its opening badge is a few hundred reads back at most; a row whose
session began further back still shows, only without who opened it."""


class FeedLine(NamedTuple):
    """One decision as the desk shows it: `what` names the asset, or the kind of tag;
    `words` says what happened."""

    decision_id: int
    decision: str
    what: str
    words: str
    created_at: datetime


class BadgeRead(NamedTuple):
    """A stored read, as far as the story needs it."""

    seq: int
    epc_hex: str
    kind: str
    session: str | None


@dataclass(slots=True)
class SessionStory:
    """One session's badge reads replayed: who was in it, and what each badge read did."""

    people: list[str] = field(default_factory=list)
    events: dict[int, str] = field(default_factory=dict)
    joined_at: dict[str, int] = field(default_factory=dict)

    def at(self, seq: int) -> list[str]:
        """Who was in the session when read `seq` was made (opener first)."""
        return [p for p in self.people if self.joined_at[p] < seq]


def feed_lines(session: Session, user: WebUser, reader_id: str,
               decisions: list[Decision]) -> list[FeedLine]:
    """`decisions` at `reader_id` (one of the user's agency's readers) in words."""
    reads = _reads(session, reader_id, [d.seq for d in decisions])
    sessions = {r.session for r in reads.values() if r.session}
    badge_reads = _badge_reads(session, reader_id, sessions, reads)
    people = _badge_holders(session, user.caller.agency_id,
                            {r.epc_hex for r in (*reads.values(), *badge_reads)})
    badging = replay_sessions(badge_reads, people)
    visible = _visible(session, user, {d.asset_id for d in decisions if d.asset_id})
    return [_line(d, reads.get(d.seq), badging, people, visible) for d in decisions]


def _line(d: Decision, read: BadgeRead | None, badging: dict[str, SessionStory],
          people: dict[str, str], visible: set[str]) -> FeedLine:
    assert d.id is not None
    refused = d.decision != "accept"
    story = badging.get(read.session or "") if read else None
    if d.asset_id in visible:
        words = f"refused because {d.reason}" if refused else d.reason
        if not refused and d.action == "check_out" and story and read:
            words = _checked_out(story.at(read.seq)) or words
        elif not refused and d.action == "check_in":
            words = "checked in"
        return FeedLine(d.id, d.decision, d.asset_id or "", words, d.created_at)
    if d.asset_id or d.reason == NOT_OURS:  # its verdict, nothing of the asset
        return FeedLine(d.id, d.decision, "tag", f"refused because {NOT_OURS}" if refused else "",
                        d.created_at)
    if refused:
        return FeedLine(d.id, d.decision, "staff badge", f"refused because {d.reason}",
                        d.created_at)
    words = story.events.get(read.seq, "") if story and read else ""
    who = people.get(read.epc_hex) if read else None
    return FeedLine(d.id, d.decision, "staff badge",
                    words or (f"badge of {who}" if who else "badge read"), d.created_at)


def _checked_out(people: list[str]) -> str:
    if not people:
        return ""
    words = f"checked out to {people[0]}"
    return words + (f", co-signed by {', '.join(people[1:])}" if people[1:] else "")


def replay_sessions(badge_reads: Iterable[BadgeRead],
                    people: dict[str, str]) -> dict[str, SessionStory]:
    """Each session's badge reads in order: the first opens it, a new badge joins it as a
    co-signer, a badge already in it closes it (a tap out, a timeout or the next officer)."""
    stories: dict[str, SessionStory] = {}
    for read in sorted(badge_reads):
        person = people.get(read.epc_hex)
        if person is None or read.session is None:
            continue
        story = stories.setdefault(read.session, SessionStory())
        if person in story.people:
            story.events[read.seq] = f"session closed ({', '.join(story.people)})"
        elif story.people:
            story.events[read.seq] = f"co-signed by {person}"
        else:
            story.events[read.seq] = f"session opened by {person}"
        if person not in story.people:
            story.people.append(person)
            story.joined_at[person] = read.seq
    return stories


def _reads(session: Session, reader_id: str, seqs: list[int]) -> dict[int, BadgeRead]:
    if not seqs:
        return {}
    rows = session.exec(select(
        IngestedObservation.seq, IngestedObservation.epc_hex, IngestedObservation.kind,
        IngestedObservation.session,
    ).where(IngestedObservation.device_id == reader_id,
            among(col(IngestedObservation.seq), seqs, session)))
    return {row[0]: BadgeRead(*row) for row in rows}


def _badge_reads(session: Session, reader_id: str, sessions: set[str],
                 reads: dict[int, BadgeRead]) -> list[BadgeRead]:
    if not sessions:
        return []
    lowest, highest = min(reads), max(reads)
    rows = session.exec(select(
        IngestedObservation.seq, IngestedObservation.epc_hex, IngestedObservation.kind,
        IngestedObservation.session,
    ).where(IngestedObservation.device_id == reader_id, IngestedObservation.kind == "badge",
            col(IngestedObservation.seq) >= lowest - BADGE_LOOKBACK_READS,
            col(IngestedObservation.seq) <= highest,
            among(col(IngestedObservation.session), sessions, session)))
    return [BadgeRead(*row) for row in rows]


def _badge_holders(session: Session, agency_id: str, epcs: set[str]) -> dict[str, str]:
    """Badge EPC -> its holder's id, for the agency's own people only."""
    if not epcs:
        return {}
    rows = session.exec(select(Badge.epc_hex, Badge.person_id).where(
        Badge.agency_id == agency_id, among(col(Badge.epc_hex), epcs, session)))
    return dict(rows.all())


def _visible(session: Session, user: WebUser, named: set[str]) -> set[str]:
    if not named:
        return set()
    return set(session.exec(select(Asset.id).where(
        among(col(Asset.id), named, session), asset_visible(user.caller))))
