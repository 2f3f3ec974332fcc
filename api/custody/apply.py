"""Applying the custody rules to an ingested batch, inside its write transaction.

Loads what the rules need for the whole batch in a few queries (readers, assets with their
class policy and shares, badges, people, open desk sessions), then walks the new observations
in each reader's sequence order: every ruling may change an asset (appended to its chain and
the Merkle log), raise an alert, record a refusal, and answer the reader. Answers are returned
as `DecisionMessage`s for the worker to publish once the transaction has committed.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Final

from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from api import webhook_outbox
from api.bulk import insert_rows
from api.custody import pending
from api.custody.events import AssetRow, CustodyChange, append_change
from api.custody.overdue import resolve_overdue
from api.custody.rules import (
    AssetView,
    PersonView,
    ReaderView,
    Ruling,
    Verdict,
    decide_asset,
    decide_badge,
)
from api.db import ByIds, among, table
from api.ingest.batch_writes import BatchWrites, load_asset_rows
from api.ingest.record import RecordedBatch, badge_holders
from api.ingest.topics import DECISIONS, ReaderTopic
from api.ingest.verify import Verified, reader_key
from api.logstore import LogAppender
from api.models.assets import AssetClass, AssetShare, AssetStatus, HolderKind
from api.models.custody import Alert, Decision, DeskSession, Refusal
from api.models.people import Person
from api.models.registry import Reader, ReaderRole

_DECISIONS = table(Decision)

ALERT_REPEAT_WINDOW: Final = timedelta(minutes=5)
"""An asset carried through a portal is read many times in a few seconds; one alert says it.
Unresolved and this recent, the same alert (kind, asset, reader) is not raised again."""

DESK_SESSION_TIMEOUT: Final = timedelta(minutes=5)
"""A desk's badge session ends this long after its last read: long enough to scan a kit
trolley, short enough that the next officer at the desk cannot take kit on it."""


@dataclass(frozen=True, slots=True)
class DecisionMessage:
    """One answer for a reader's decisions topic: JSON {"seq","decision","reason","asset",
    "action"}."""

    topic: str
    payload: bytes
    decision_id: int | None = None


@dataclass(slots=True)
class _BatchState:
    readers: dict[str, ReaderView]
    assets: dict[str, AssetRow]
    classes: dict[str, ClassPolicy]
    shares: dict[str, frozenset[str]]
    badges: dict[str, str]
    people: dict[str, PersonView]
    sessions: dict[tuple[str, str], DeskSession]
    commitments: dict[str, str]
    log: LogAppender
    writes: BatchWrites
    decisions: list[dict[str, object]] = field(default_factory=list)
    alerts: list[dict[str, object]] = field(default_factory=list)
    messages: list[DecisionMessage] = field(default_factory=list)
    returned: set[str] = field(default_factory=set)
    session_timeout: timedelta = timedelta(0)
    refused: list[Verified] = field(default_factory=list)
    forced: set[tuple[str, int]] = field(default_factory=set)
    opened: list[Verified] = field(default_factory=list)
    batch_seqs: dict[str, set[int]] = field(default_factory=dict)
    refilled: Mapping[str, int] | None = None
    """As `RecordedBatch.refilled`, when ruling on a batch as it arrives; None: unknown."""
    recent_gaps: dict[str, int | None] = field(default_factory=dict)
    """Device id -> `pending.first_recent_gap`, looked up once a batch (ruling on reads opens
    and closes no gaps): with two workers, every read that arrives ahead of its badge asks."""


@dataclass(frozen=True, slots=True)
class ClassPolicy:
    """What the rules read of an asset's class."""

    required_qualification: str | None
    dual_signoff: bool
    loan_days: int | None


_READERS = table(Reader)
_PEOPLE = table(Person)
_CLASSES = table(AssetClass)
_SHARES = table(AssetShare)

# A batch's look-ups, as Core statements built once (`ByIds`): through the ORM, building,
# caching and loading them cost more than running them.
_READERS_BY_ID = ByIds(_READERS.c.id, lambda where: core_select(
    _READERS.c.id, _READERS.c.agency_id, _READERS.c.site_id, _READERS.c.role).where(where))
_PEOPLE_BY_ID = ByIds(_PEOPLE.c.id, lambda where: core_select(
    _PEOPLE.c.id, _PEOPLE.c.agency_id, _PEOPLE.c.qualifications, _PEOPLE.c.active,
    _PEOPLE.c.commitment).where(where))
_CLASSES_BY_ID = ByIds(_CLASSES.c.id, lambda where: core_select(
    _CLASSES.c.id, _CLASSES.c.required_qualification, _CLASSES.c.dual_signoff,
    _CLASSES.c.loan_days).where(where))
_COMMITMENTS_BY_ID = ByIds(_PEOPLE.c.id, lambda where: core_select(
    _PEOPLE.c.id, _PEOPLE.c.commitment).where(where))
_SHARES_BY_ASSET = ByIds(_SHARES.c.asset_id, lambda where: core_select(
    _SHARES.c.asset_id, _SHARES.c.agency_id).where(where))


def _load(
    session: Session, items: list[Verified], recorded: RecordedBatch | None = None
) -> _BatchState:
    """What the rules need for `items`; their assets and badges are taken from `recorded`
    (read for these very items in this transaction) when it has them."""
    connection = session.connection()
    reader_ids = {i.reader.reader_id for i in items}
    epcs = {i.observation.epc for i in items}
    readers = {
        reader_id: ReaderView(reader_id, agency_id, site_id, ReaderRole(role))
        for reader_id, agency_id, site_id, role
        in _READERS_BY_ID(connection, reader_ids)
    }
    known = None if recorded is None else recorded.assets
    if recorded is not None and recorded.badges is not None:
        badges = recorded.badges
    else:
        badges = badge_holders(connection, epcs)
    keys = {(i.reader.reader_id, i.observation.session) for i in items if i.observation.session}
    sessions = {
        (s.reader_id, s.session): s
        for s in session.exec(
            select(DeskSession).where(
                among(col(DeskSession.reader_id), reader_ids, session),
                among(col(DeskSession.session), {k[1] for k in keys}, session),
            )
        )
    } if keys else {}
    person_ids = set(badges.values()) | {p for s in sessions.values() for p in s.person_ids}
    people: dict[str, PersonView] = {}
    commitments: dict[str, str] = {}
    if person_ids:
        for person_id, agency_id, qualifications, active, commitment in _PEOPLE_BY_ID(
                connection, person_ids):
            people[person_id] = PersonView(person_id, agency_id, frozenset(qualifications),
                                           active)
            commitments[person_id] = commitment
    # The batch's moved sightings are stored with its custody changes, one UPDATE an asset.
    sighted = None if recorded is None else recorded.sighted
    state = _BatchState(readers, {}, {}, {}, badges, people, sessions, commitments,
                        LogAppender(session), BatchWrites(session, sighted))
    _load_assets(session, state, epcs, known)
    return state


def _load_assets(
    session: Session, state: _BatchState, epcs: set[str],
    known: dict[str, AssetRow] | None = None,
) -> None:
    """Add the assets tagged `epcs` (locked until commit; `known`: as already read so in
    this transaction), their classes and shares."""
    connection = session.connection()
    assets = load_asset_rows(connection, epcs) if known is None else known
    if not assets:
        return
    class_ids = {a.class_id for a in assets.values()} - state.classes.keys()
    if class_ids:
        state.classes.update({
            class_id: ClassPolicy(required, dual, loan_days)
            for class_id, required, dual, loan_days
            in _CLASSES_BY_ID(connection, class_ids)
        })
    shares: dict[str, set[str]] = defaultdict(set)
    for asset_id, agency_id in _SHARES_BY_ASSET(connection, {a.id for a in assets.values()}):
        shares[asset_id].add(agency_id)
    state.shares.update({k: frozenset(v) for k, v in shares.items()})
    state.assets.update(assets)
    # The log names a holder by commitment: fetch those of the people holding these assets
    # now, in one query, rather than one per returned asset in `append_change`.
    holders = {a.holder_ref for a in assets.values() if a.holder_kind == HolderKind.PERSON}
    missing = holders - state.commitments.keys()
    if missing:
        state.commitments.update({person_id: commitment for person_id, commitment
                                  in _COMMITMENTS_BY_ID(connection, missing)})


def _asset_view(state: _BatchState, asset: AssetRow) -> AssetView:
    policy = state.classes.get(asset.class_id)
    return AssetView(
        asset_id=asset.id, agency_id=asset.agency_id,
        shared_with=state.shares.get(asset.id, frozenset()), status=AssetStatus(asset.status),
        holder_kind=HolderKind(asset.holder_kind), holder_ref=asset.holder_ref,
        required_qualification=policy.required_qualification if policy else None,
        dual_signoff=policy.dual_signoff if policy else False,
    )


def _live_desk(
    state: _BatchState, key: tuple[str, str | None], now: datetime
) -> DeskSession | None:
    """The desk session `key` if open and used within the timeout: a session left idle (the
    officer walked away without closing it) must not let the next person take kit on it."""
    desk = state.sessions.get((key[0], str(key[1])))
    if desk is None or now - desk.last_at > state.session_timeout:
        return None
    return desk


def _open_session(
    session: Session, state: _BatchState, item: Verified, person_id: str, now: datetime
) -> None:
    key = (item.reader.reader_id, str(item.observation.session))
    desk = state.sessions.get(key)
    if desk is None:
        desk = DeskSession(reader_id=key[0], session=key[1], person_ids=[], opened_at=now,
                           last_at=now)
        state.sessions[key] = desk
    elif _live_desk(state, key, now) is None:  # expired: whoever badged in before has left
        desk.person_ids, desk.opened_at = [], now
    if person_id not in desk.person_ids:
        desk.person_ids = [*desk.person_ids, person_id]  # reassign: JSON columns track by value
        state.opened.append(item)
    desk.last_at = now
    session.add(desk)


def _change(
    session: Session, state: _BatchState, item: Verified, asset: AssetRow, ruling: Ruling,
    now: datetime,
) -> None:
    assert ruling.action and ruling.holder_kind and ruling.holder_ref and ruling.new_status
    policy = state.classes.get(asset.class_id)
    due = None
    if ruling.new_status == AssetStatus.CHECKED_OUT and policy and policy.loan_days:
        due = now + timedelta(days=policy.loan_days)
    # Gathered in `state.writes`: one bulk write per batch, not one per event.
    append_change(session, state.log.log, asset, CustodyChange(
        action=ruling.action, holder_kind=ruling.holder_kind, holder_ref=ruling.holder_ref,
        new_status=ruling.new_status, time=now, observations=(item.envelope_hash,),
        authorisers=ruling.authorisers, reader_id=item.reader.reader_id, due_at=due,
    ), state.commitments, state.writes)
    if ruling.new_status == AssetStatus.IN_STORE:
        state.returned.add(asset.id)


def _rule_on(session: Session, state: _BatchState, item: Verified, now: datetime) -> Ruling:
    reader = state.readers[item.reader.reader_id]
    obs = item.observation
    person_id = state.badges.get(obs.epc)
    if person_id is not None and person_id in state.people:
        ruling = decide_badge(reader, state.people[person_id], obs.session)
        if ruling.opens_session_for:
            _open_session(session, state, item, ruling.opens_session_for, now)
        elif ruling.verdict == Verdict.REFUSE and obs.session:
            state.refused.append(item)  # reads held for this session will never be admitted
        return ruling
    asset = state.assets.get(obs.epc)
    if asset is None:
        return Ruling()
    desk = _live_desk(state, (reader.reader_id, obs.session), now) if obs.session else None
    if (desk is None and obs.session and reader.role == ReaderRole.ISSUE_DESK
            and (reader.reader_id, obs.seq) not in state.forced
            and _awaiting_earlier(session, state, reader.reader_id, obs.seq, now)):
        return Ruling()  # held: its badge may still be on the way (see api.custody.pending)
    people = [state.people[p] for p in desk.person_ids if p in state.people] if desk else []
    ruling = decide_asset(reader, _asset_view(state, asset), people, obs.direction,
                          departing=obs.kind == "depart")
    if ruling.action:
        _change(session, state, item, asset, ruling, now)
    if ruling.alert:
        state.alerts.append({
            "agency_id": asset.agency_id, "kind": ruling.alert.value, "asset_id": asset.id,
            "reader_id": reader.reader_id, "site_id": reader.site_id,
            "detail": ruling.reason or ruling.alert.value, "created_at": now,
            "resolved_at": None})
    if ruling.verdict == "refuse":
        session.add(Refusal(agency_id=reader.agency_id, asset_id=asset.id,
                            reader_id=reader.reader_id, action="read", reason=ruling.reason,
                            created_at=now))
    return ruling


def _awaiting_earlier(
    session: Session, state: _BatchState, device_id: str, seq: int, now: datetime
) -> bool:
    """Whether a number below `seq` of `device_id` went missing lately and has not arrived."""
    if device_id not in state.recent_gaps:
        state.recent_gaps[device_id] = pending.first_recent_gap(session, device_id, now)
    first = state.recent_gaps[device_id]
    return first is not None and first < seq


def apply_custody(
    session: Session, batch: RecordedBatch, now: datetime, *,
    session_timeout: timedelta = DESK_SESSION_TIMEOUT,
) -> list[DecisionMessage]:
    """The pipeline's custody hook: rule on every new observation of `batch`."""
    items = sorted(batch.accepted, key=lambda i: (i.reader.reader_id, i.observation.seq))
    decisions = _rule_on_all(session, items, now, session_timeout, forced=False,
                             refilled=batch.refilled, recorded=batch)
    if not batch.refilled:
        return decisions
    # Missing numbers arrived: reads held for a badge that turned out not to be among them
    # are ruled on now, after this batch's own (whose decisions are stored by now).
    released: list[Verified] = []
    for reader_id, lowest in sorted(batch.refilled.items()):
        mine = [i for i in batch.accepted if i.reader.reader_id == reader_id]
        released += pending.released_reads(session, mine[0].reader, lowest,
                                           {i.observation.seq for i in mine})
    return decisions + _rule_on_all(session, released, now, session_timeout, forced=True)


def release_stale_holds(
    session: Session, now: datetime, *, session_timeout: timedelta = DESK_SESSION_TIMEOUT,
    gaps_since: datetime | None = None,
) -> list[DecisionMessage]:
    """Rule on reads held longer than `pending.HOLD_LIMIT` (their badge never came), in the
    caller's transaction; the caller has claimed the log writer, commits, then publishes.
    `gaps_since`: as `pending.stale_holds`."""
    stale = pending.stale_holds(session, now - pending.HOLD_LIMIT, gaps_since)
    if not stale:
        return []
    readers = session.exec(select(Reader).where(col(Reader.id).in_(stale.keys()))).all()
    items = [
        item for reader in readers
        for item in pending.stored_reads(session, reader_key(reader), stale[reader.id])
    ]
    return _rule_on_all(session, items, now, session_timeout, forced=True)


def _rule_on_all(
    session: Session, items: list[Verified], now: datetime, session_timeout: timedelta,
    *, forced: bool, refilled: Mapping[str, int] | None = None,
    recorded: RecordedBatch | None = None,
) -> list[DecisionMessage]:
    if not items:
        return []
    state = _load(session, items, recorded)
    state.session_timeout = session_timeout
    state.refilled = refilled
    if forced:
        state.forced.update((i.reader.reader_id, i.observation.seq) for i in items)
    for item in items:
        state.batch_seqs.setdefault(item.reader.reader_id, set()).add(item.observation.seq)
    decisions: list[DecisionMessage] = []
    with session.no_autoflush:  # one flush at commit, not one per event
        for item in items:
            decisions += _decide(session, state, item, now)
            while state.opened or state.refused:
                if state.opened:
                    decisions += _replay_held(session, state, state.opened.pop(), now)
                else:
                    decisions += _replay_held(session, state, state.refused.pop(), now,
                                              force=True)
    state.log.write()
    state.writes.write()
    # With their webhook events.
    webhook_outbox.raise_alerts(session, _new_alerts(session, state.alerts, now))
    resolve_overdue(session, state.returned, now)
    if not state.decisions:
        return decisions
    # The ids come back so the worker can mark each decision published once the broker has it.
    ids = insert_rows(session.connection(), _DECISIONS, state.decisions, returning="id")
    return [replace(d, decision_id=i) for d, i in zip(decisions, ids, strict=True)]


def _new_alerts(
    session: Session, alerts: list[dict[str, object]], now: datetime
) -> list[dict[str, object]]:
    """`alerts` less repeats: a tag read several times as it passes one reader is one event,
    so an open alert of the same kind for the same asset at the same reader raised within
    `ALERT_REPEAT_WINDOW` (or earlier in this batch) is not raised again."""
    if not alerts:
        return []
    recent: set[tuple[object, ...]] = set(session.exec(
        select(Alert.kind, Alert.asset_id, Alert.reader_id).where(
            among(col(Alert.asset_id), {a["asset_id"] for a in alerts}, session),
            col(Alert.resolved_at).is_(None), Alert.created_at >= now - ALERT_REPEAT_WINDOW,
        )
    ).all())
    fresh = []
    for alert in alerts:
        key = (alert["kind"], alert["asset_id"], alert["reader_id"])
        if key not in recent:
            recent.add(key)
            fresh.append(alert)
    return fresh


def _replay_held(
    session: Session, state: _BatchState, badge: Verified, now: datetime, *, force: bool = False
) -> list[DecisionMessage]:
    """Rule on reads of the session `badge` just opened that arrived before it; `force` (the
    badge was refused) rules on them without holding them again, so they are refused."""
    if not _may_have_held(state, badge):
        return []
    held = pending.held_reads(
        session, badge.reader, str(badge.observation.session), badge.observation.seq,
        state.batch_seqs.get(badge.reader.reader_id, set()),
    )
    if force:
        state.forced.update((badge.reader.reader_id, h.observation.seq) for h in held)
    state.batch_seqs.setdefault(badge.reader.reader_id, set()).update(
        h.observation.seq for h in held
    )
    _load_assets(session, state, {h.observation.epc for h in held} - state.assets.keys())
    decisions: list[DecisionMessage] = []
    for item in held:
        decisions += _decide(session, state, item, now)
    return decisions


def _may_have_held(state: _BatchState, badge: Verified) -> bool:
    """Whether reads after `badge` can be stored already. Had any arrived before it, the
    badge's number would have been missing then, so it arrived now as a refill: a badge that
    is not (the usual case, in order) has nothing held, and the look-up is skipped."""
    if state.refilled is None:
        return True
    lowest = state.refilled.get(badge.reader.reader_id)
    return lowest is not None and badge.observation.seq >= lowest


def _decide(
    session: Session, state: _BatchState, item: Verified, now: datetime
) -> list[DecisionMessage]:
    ruling = _rule_on(session, state, item, now)
    if ruling.verdict is None:
        return []
    asset = state.assets.get(item.observation.epc)
    asset_id = asset.id if asset else None
    body = {"seq": item.observation.seq, "decision": ruling.verdict.value,
            "reason": ruling.reason, "asset": asset_id, "action": ruling.action}
    topic = ReaderTopic(item.reader.agency_id, item.reader.site_id,
                        item.reader.reader_id).topic(DECISIONS)
    state.decisions.append({
        "reader_id": item.reader.reader_id, "topic": topic, "seq": item.observation.seq,
        "decision": ruling.verdict.value, "reason": ruling.reason, "asset_id": asset_id,
        "action": ruling.action, "created_at": now, "published_at": None,
    })
    return [DecisionMessage(topic, decision_payload(body))]


_DECISION_JSON: Final = json.JSONEncoder(sort_keys=True)
"""`json.dumps(body, sort_keys=True)` builds an encoder per call; one answer per read."""


def decision_payload(body: Mapping[str, object]) -> bytes:
    """A decision's wire form: sorted-key JSON {"seq","decision","reason","asset","action"}."""
    return _DECISION_JSON.encode(body).encode()
