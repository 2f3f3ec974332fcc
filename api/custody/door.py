"""The evidence room's door: a reader of role `door` whose staff-badge reads are its access
log (who entered, by which door, when), kept apart from custody.

A badge read at a door moves no kit and makes no custody event, so it is not in the Merkle
log: it is an operational record, like a refusal. Each row keeps the hash of the signed
observation it came from, so an entry can still be tied to the door reader's own signature.
The door answers the badge (admitted, or refused: not ours, holder not active), and a refused
badge is logged too, since a refused attempt at an evidence room is what an inspector asks
about first.
"""

from __future__ import annotations

from sqlmodel import Session

from api.custody.reads import VerifiedRead
from api.custody.rules import NOT_OURS, PersonView, ReaderView, Ruling, Verdict
from api.models.evidence import EvidenceRoomAccess
from api.models.registry import ReaderRole

ADMITTED = "entry logged"


def decide_door(reader: ReaderView, person: PersonView | None) -> Ruling:
    """A staff badge at a door: its own agency's active people are let in; a badge that is
    none of theirs (another agency's or nobody's: badges are each agency's own) is not."""
    if person is None or person.agency_id != reader.agency_id:
        return Ruling(verdict=Verdict.REFUSE, reason=NOT_OURS)
    if not person.active:
        return Ruling(verdict=Verdict.REFUSE, reason="badge holder is not active")
    return Ruling(verdict=Verdict.ACCEPT, reason=ADMITTED)


def log_entry(session: Session, item: VerifiedRead, reader: ReaderView,
              person: PersonView | None) -> Ruling:
    """Rule on a badge at a door (`person` None: not one of the agency's badges) and add its
    access-log row."""
    assert reader.role == ReaderRole.DOOR
    ruling = decide_door(reader, person)
    admitted = ruling.verdict == Verdict.ACCEPT
    ours = person is not None and person.agency_id == reader.agency_id
    session.add(EvidenceRoomAccess(
        agency_id=reader.agency_id, reader_id=reader.reader_id, site_id=reader.site_id,
        person_id=person.person_id if ours and person is not None else None,
        admitted=admitted, reason=ruling.reason, observation_hash=item.envelope_hash,
        read_at=item.observed_at))
    return ruling
