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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from api.custody.events import CustodyChange, append_change
from api.custody.overdue import resolve_overdue
from api.custody.rules import (
    AssetView,
    PersonView,
    ReaderView,
    Ruling,
    decide_asset,
    decide_badge,
)
from api.ingest.record import RecordedBatch
from api.ingest.topics import DECISIONS, ReaderTopic
from api.ingest.verify import Verified
from api.logstore import open_log
from api.models.assets import Asset, AssetClass, AssetShare, AssetStatus, HolderKind
from api.models.custody import Alert, Decision, DeskSession, Refusal
from api.models.people import Badge, Person
from api.models.registry import Reader, ReaderRole
from ledger.log import MerkleLog


@dataclass(frozen=True, slots=True)
class DecisionMessage:
    """One answer for a reader's decisions topic: JSON {"seq","decision","reason","asset",
    "action"}."""

    topic: str
    payload: bytes


@dataclass(slots=True)
class _BatchState:
    readers: dict[str, ReaderView]
    assets: dict[str, Asset]
    classes: dict[str, AssetClass]
    shares: dict[str, frozenset[str]]
    badges: dict[str, str]
    people: dict[str, PersonView]
    sessions: dict[tuple[str, str], DeskSession]
    log: MerkleLog | None = None


def _person_view(person: Person) -> PersonView:
    return PersonView(person.id, person.agency_id, frozenset(person.qualifications), person.active)


def _load(session: Session, items: list[Verified]) -> _BatchState:
    reader_ids = {i.reader.reader_id for i in items}
    epcs = {i.observation.epc for i in items}
    readers = {
        r.id: ReaderView(r.id, r.agency_id, r.site_id, ReaderRole(r.role))
        for r in session.exec(select(Reader).where(col(Reader.id).in_(reader_ids)))
    }
    assets = {
        a.epc_hex: a
        for a in session.exec(select(Asset).where(col(Asset.epc_hex).in_(epcs)).with_for_update())
    }
    class_ids = {a.class_id for a in assets.values()}
    classes = {
        c.id: c
        for c in session.exec(select(AssetClass).where(col(AssetClass.id).in_(class_ids)))
    }
    share_rows = session.exec(
        select(AssetShare).where(col(AssetShare.asset_id).in_({a.id for a in assets.values()}))
    )
    shares: dict[str, set[str]] = defaultdict(set)
    for share in share_rows:
        shares[share.asset_id].add(share.agency_id)
    badges = {
        b.epc_hex: b.person_id
        for b in session.exec(select(Badge).where(col(Badge.epc_hex).in_(epcs)))
    }
    keys = {(i.reader.reader_id, i.observation.session) for i in items if i.observation.session}
    sessions = {
        (s.reader_id, s.session): s
        for s in session.exec(
            select(DeskSession).where(
                col(DeskSession.reader_id).in_(reader_ids),
                col(DeskSession.session).in_({k[1] for k in keys}),
            )
        )
    }
    person_ids = set(badges.values()) | {p for s in sessions.values() for p in s.person_ids}
    people = {
        p.id: _person_view(p)
        for p in session.exec(select(Person).where(col(Person.id).in_(person_ids)))
    }
    return _BatchState(
        readers, assets, classes, {k: frozenset(v) for k, v in shares.items()}, badges, people,
        sessions,
    )


def _asset_view(state: _BatchState, asset: Asset) -> AssetView:
    policy = state.classes.get(asset.class_id)
    return AssetView(
        asset_id=asset.id, agency_id=asset.agency_id,
        shared_with=state.shares.get(asset.id, frozenset()), status=AssetStatus(asset.status),
        holder_kind=HolderKind(asset.holder_kind), holder_ref=asset.holder_ref,
        required_qualification=policy.required_qualification if policy else None,
        dual_signoff=policy.dual_signoff if policy else False,
    )


def _open_session(
    session: Session, state: _BatchState, item: Verified, person_id: str, now: datetime
) -> None:
    key = (item.reader.reader_id, str(item.observation.session))
    desk = state.sessions.get(key)
    if desk is None:
        desk = DeskSession(reader_id=key[0], session=key[1], person_ids=[], opened_at=now,
                           last_at=now)
        state.sessions[key] = desk
    if person_id not in desk.person_ids:
        desk.person_ids = [*desk.person_ids, person_id]  # reassign: JSON columns track by value
    desk.last_at = now
    session.add(desk)


def _change(
    session: Session, state: _BatchState, item: Verified, asset: Asset, ruling: Ruling,
    now: datetime,
) -> None:
    assert ruling.action and ruling.holder_kind and ruling.holder_ref and ruling.new_status
    if state.log is None:
        state.log = open_log(session)
    policy = state.classes.get(asset.class_id)
    due = None
    if ruling.new_status == AssetStatus.CHECKED_OUT and policy and policy.loan_days:
        due = now + timedelta(days=policy.loan_days)
    append_change(session, state.log, asset, CustodyChange(
        action=ruling.action, holder_kind=ruling.holder_kind, holder_ref=ruling.holder_ref,
        new_status=ruling.new_status, time=now, observations=(item.envelope_hash,),
        authorisers=ruling.authorisers, reader_id=item.reader.reader_id, due_at=due,
    ))
    if ruling.new_status == AssetStatus.IN_STORE:
        resolve_overdue(session, asset.id, now)


def _rule_on(session: Session, state: _BatchState, item: Verified, now: datetime) -> Ruling:
    reader = state.readers[item.reader.reader_id]
    obs = item.observation
    person_id = state.badges.get(obs.epc)
    if person_id is not None and person_id in state.people:
        ruling = decide_badge(reader, state.people[person_id], obs.session)
        if ruling.opens_session_for:
            _open_session(session, state, item, ruling.opens_session_for, now)
        return ruling
    asset = state.assets.get(obs.epc)
    if asset is None:
        return Ruling()
    desk = state.sessions.get((reader.reader_id, obs.session)) if obs.session else None
    people = [state.people[p] for p in desk.person_ids if p in state.people] if desk else []
    ruling = decide_asset(reader, _asset_view(state, asset), people, obs.direction,
                          departing=obs.kind == "depart")
    if ruling.action:
        _change(session, state, item, asset, ruling, now)
    if ruling.alert:
        session.add(Alert(agency_id=asset.agency_id, kind=ruling.alert.value, asset_id=asset.id,
                          reader_id=reader.reader_id, site_id=reader.site_id,
                          detail=ruling.reason or ruling.alert.value, created_at=now))
    if ruling.verdict == "refuse":
        session.add(Refusal(agency_id=reader.agency_id, asset_id=asset.id,
                            reader_id=reader.reader_id, action="read", reason=ruling.reason,
                            created_at=now))
    return ruling


def apply_custody(session: Session, batch: RecordedBatch, now: datetime) -> list[DecisionMessage]:
    """The pipeline's custody hook: rule on every new observation of `batch`."""
    items = sorted(batch.accepted, key=lambda i: (i.reader.reader_id, i.observation.seq))
    if not items:
        return []
    state = _load(session, items)
    decisions: list[DecisionMessage] = []
    for item in items:
        ruling = _rule_on(session, state, item, now)
        if ruling.verdict is None:
            continue
        asset = state.assets.get(item.observation.epc)
        asset_id = asset.id if asset else None
        body = {"seq": item.observation.seq, "decision": ruling.verdict.value,
                "reason": ruling.reason, "asset": asset_id, "action": ruling.action}
        topic = ReaderTopic(item.reader.agency_id, item.reader.site_id,
                            item.reader.reader_id).topic(DECISIONS)
        session.add(Decision(reader_id=item.reader.reader_id, topic=topic,
                             seq=item.observation.seq, decision=ruling.verdict.value,
                             reason=ruling.reason, asset_id=asset_id,
                             action=ruling.action, created_at=now))
        decisions.append(DecisionMessage(topic, json.dumps(body, sort_keys=True).encode()))
    return decisions
