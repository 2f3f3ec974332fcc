"""Ruling on reads: the custody rules applied to a batch, each read in its reader's order.

Every ruling may change an asset (appended to its chain and the Merkle log), raise an alert,
record a refusal, open a desk session and answer the reader; all of it is queued on the
`CustodyBatch` and stored by its `flush()`. A kit read that names a session not open yet may
be held for its badge (`api.custody.pending`): when the badge opens the session, or the
numbers it could have been arrive without it, the held reads are ruled on then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlmodel import Session

from api.custody import door, pending, reservations
from api.custody.batch import DESK_SESSION_TIMEOUT, CustodyBatch
from api.custody.events import AssetRow, CustodyChange, append_change
from api.custody.reads import Answer, RegisteredReader, VerifiedRead
from api.custody.rules import (
    PersonView,
    ReaderView,
    Ruling,
    Verdict,
    decide_asset,
    decide_badge,
)
from api.db import among, table
from api.models.assets import AssetStatus
from api.models.custody import DeskSession
from api.models.registry import Reader, ReaderRole

_READERS = table(Reader)


def rule_on_arrivals(
    batch: CustodyBatch, reads: Sequence[VerifiedRead], refilled: Mapping[str, int]
) -> None:
    """Rule on a batch's new `reads`; then, when missing numbers arrived (`refilled`: device
    -> the lowest of them), on the reads held for a badge that turned out not to be among
    them."""
    batch.holds.refilled = refilled
    _rule_on_all(batch, sorted(reads, key=lambda i: (i.reader.reader_id, i.observation.seq)),
                 forced=False)
    if not refilled:
        return
    released: list[VerifiedRead] = []
    for reader_id, lowest in sorted(refilled.items()):
        reader = next(i.reader for i in reads if i.reader.reader_id == reader_id)
        released += pending.released_reads(batch.session, reader, lowest,
                                           batch.holds.ruled(reader_id))
    _rule_on_all(batch, released, forced=True)


def release_stale_holds(
    session: Session, now: datetime, *, session_timeout: timedelta = DESK_SESSION_TIMEOUT,
    gaps_since: datetime | None = None,
) -> CustodyBatch | None:
    """Rule on reads held longer than `pending.HOLD_LIMIT` (their badge never came), in the
    caller's transaction (the log writer claimed); None if none is held. The caller flushes
    the batch, stores its answers and commits. `gaps_since`: as `pending.stale_holds`."""
    stale = pending.stale_holds(session, now - pending.HOLD_LIMIT, gaps_since)
    if not stale:
        return None
    connection = session.connection()
    readers = connection.execute(
        select(_READERS.c.id, _READERS.c.agency_id, _READERS.c.site_id)
        .where(among(_READERS.c.id, stale.keys(), connection)).order_by(_READERS.c.id))
    items = [
        item for reader_id, agency_id, site_id in readers
        for item in pending.stored_reads(session, RegisteredReader(reader_id, agency_id, site_id),
                                         stale[reader_id])
    ]
    batch = CustodyBatch(session, now, session_timeout=session_timeout)
    _rule_on_all(batch, items, forced=True)
    return batch


def _rule_on_all(batch: CustodyBatch, items: list[VerifiedRead], *, forced: bool) -> None:
    """Rule on `items` in order, each followed by the reads a badge among them releases;
    `forced`: none of `items` is held again (their wait is over)."""
    if not items:
        return
    batch.facts.load(items)
    batch.holds.ruling_on(items, forced=forced)
    holds = batch.holds
    with batch.session.no_autoflush:  # one flush at the end, not one per event
        for item in items:
            _answer(batch, item)
            while holds.opened or holds.refused:
                if holds.opened:
                    _rule_on_held(batch, holds.opened.pop(), force=False)
                else:
                    _rule_on_held(batch, holds.refused.pop(), force=True)


def _answer(batch: CustodyBatch, item: VerifiedRead) -> None:
    """Rule on `item` and queue the answer it is owed, if any."""
    ruling = _rule_on(batch, item)
    if ruling.verdict is None:
        return
    reader = batch.facts.readers[item.reader.reader_id]
    asset = None if ruling.foreign else batch.facts.asset_for(reader.agency_id,
                                                              item.observation.epc)
    batch.answers.append(Answer(item.reader, item.observation.seq, ruling.verdict.value,
                                ruling.reason, asset.id if asset else None, ruling.action))


def _rule_on(batch: CustodyBatch, item: VerifiedRead) -> Ruling:
    """A badge read, a kit read (or one held for its badge), or a tag nobody answers for."""
    facts = batch.facts
    reader = facts.readers[item.reader.reader_id]
    obs = item.observation
    person = facts.badge_holder(reader.agency_id, obs.epc)
    if person is not None:
        return _rule_on_badge(batch, item, reader, person)
    if reader.role == ReaderRole.DOOR and obs.kind == "badge":
        # None of the agency's badges (another agency's, or nobody's): a refused attempt at
        # the evidence room is logged all the same.
        return door.log_entry(batch.session, item, reader, None)
    asset = facts.asset_for(reader.agency_id, obs.epc)
    if asset is None:
        return Ruling()
    desk = _live_desk(batch, reader.reader_id, obs.session) if obs.session else None
    if desk is None and _held_for_badge(batch, item, reader):
        return Ruling()
    staff = [facts.people.get((reader.agency_id, p)) for p in desk.person_ids] if desk else []
    people = [p for p in staff if p is not None]
    return _rule_on_asset(batch, item, reader, asset, people)


def _rule_on_badge(
    batch: CustodyBatch, item: VerifiedRead, reader: ReaderView, person: PersonView
) -> Ruling:
    if reader.role == ReaderRole.DOOR:
        return door.log_entry(batch.session, item, reader, person)
    ruling = decide_badge(reader, person, item.observation.session)
    if ruling.opens_session_for:
        _open_session(batch, item, ruling.opens_session_for)
    elif ruling.verdict == Verdict.REFUSE and item.observation.session:
        batch.holds.refused.append(item)  # reads held for this session will never be admitted
    return ruling


def _held_for_badge(batch: CustodyBatch, item: VerifiedRead, reader: ReaderView) -> bool:
    """Whether a kit read at an issue desk, naming a session that is not open, waits for its
    badge: a number below it went missing lately, and may be that badge."""
    obs = item.observation
    return (bool(obs.session) and reader.role == ReaderRole.ISSUE_DESK
            and not batch.holds.forced(reader.reader_id, obs.seq)
            and batch.holds.awaiting_earlier(batch.session, reader.reader_id, obs.seq,
                                             batch.now))


def _rule_on_asset(
    batch: CustodyBatch, item: VerifiedRead, reader: ReaderView, asset: AssetRow,
    people: list[PersonView],
) -> Ruling:
    obs = item.observation
    ruling = decide_asset(reader, batch.facts.asset_view(asset), people, obs.direction,
                          departing=obs.kind == "depart")
    if ruling.action == "check_out" and ruling.holder_ref is not None:
        blocked = reservations.issue_refusal(batch.session, asset, ruling.holder_ref,
                                             batch.now, reader.agency_id)
        if blocked is not None:  # maintenance or a booking: `api.custody.reservations`
            ruling = Ruling(verdict=Verdict.REFUSE, reason=blocked)
    if ruling.action:
        _change(batch, item, reader, asset, ruling)
    if ruling.alert:
        batch.writes.alert(reader, asset, ruling, batch.now)
    if ruling.verdict == Verdict.REFUSE and not ruling.foreign:
        # A refusal is the reader's agency's record: it never names an asset that agency may
        # not see (the read is a foreign sighting of the owner's, `api.custody.foreign`).
        batch.writes.refusal(reader, asset, ruling.reason, batch.now)
    return ruling


def _change(batch: CustodyBatch, item: VerifiedRead, reader: ReaderView, asset: AssetRow,
            ruling: Ruling) -> None:
    assert ruling.action and ruling.holder_kind and ruling.holder_ref and ruling.new_status
    key = (asset.agency_id, asset.id)
    if ruling.action == "loan_return":
        # The borrower saw the asset only through the loan's share: it ends with the loan.
        borrower = asset.holder_ref
        shared = batch.facts.shares.get(key, frozenset())
        if borrower in shared:
            batch.writes.loan_ended(asset.id, asset.agency_id, borrower, batch.now)
        batch.facts.shares[key] = shared - {borrower}
    policy = batch.facts.classes.get((asset.agency_id, asset.class_id))
    due = None
    if ruling.new_status == AssetStatus.CHECKED_OUT and policy and policy.loan_days:
        due = batch.now + timedelta(days=policy.loan_days)
    append_change(batch.session, batch.writes.logs, asset, CustodyChange(
        action=ruling.action, holder_kind=ruling.holder_kind, holder_ref=ruling.holder_ref,
        new_status=ruling.new_status, time=batch.now, observations=(item.envelope_hash,),
        authorisers=ruling.authorisers, reader_id=item.reader.reader_id, due_at=due,
        acting_agency=reader.agency_id,
    ), batch.facts.commitments, batch.writes)
    if ruling.new_status == AssetStatus.IN_STORE:
        batch.writes.returned(asset.agency_id, asset.id)


def _live_desk(batch: CustodyBatch, reader_id: str, session: str | None) -> DeskSession | None:
    """The desk session if open and used within the timeout: a session left idle (the
    officer walked away without closing it) must not let the next person take kit on it."""
    desk = batch.facts.sessions.get((reader_id, str(session)))
    if desk is None or batch.now - desk.last_at > batch.session_timeout:
        return None
    return desk


def _open_session(batch: CustodyBatch, item: VerifiedRead, person_id: str) -> None:
    """Let `person_id` into the desk session `item` names (a new one, or one that expired)."""
    now = batch.now
    key = (item.reader.reader_id, str(item.observation.session))
    desk = batch.facts.sessions.get(key)
    if desk is None:
        desk = DeskSession(reader_id=key[0], session=key[1], person_ids=[], opened_at=now,
                           last_at=now)
        batch.facts.sessions[key] = desk
    elif _live_desk(batch, *key) is None:  # expired: whoever badged in before has left
        desk.person_ids, desk.opened_at = [], now
    if person_id not in desk.person_ids:
        desk.person_ids = [*desk.person_ids, person_id]  # reassign: JSON columns track by value
        batch.holds.opened.append(item)
    desk.last_at = now
    batch.session.add(desk)  # written at commit, with the batch


def _rule_on_held(batch: CustodyBatch, badge: VerifiedRead, *, force: bool) -> None:
    """Rule on reads of the session `badge` just opened that arrived before it; `force` (the
    badge was refused) rules on them without holding them again, so they are refused."""
    if not batch.holds.may_have_held(badge):
        return
    held = pending.held_reads(
        batch.session, badge.reader, str(badge.observation.session), badge.observation.seq,
        batch.holds.ruled(badge.reader.reader_id),
    )
    batch.holds.ruling_on(held, forced=force)
    batch.facts.add_assets({h.observation.epc for h in held})
    for item in held:
        _answer(batch, item)
