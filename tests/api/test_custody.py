"""Custody through the ingest pipeline: check-out, refusals, dual sign-off, check-in, alerts,
and the hash chain and Merkle log that record every accepted change."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.config import load_settings
from api.custody.batch import DESK_SESSION_TIMEOUT
from api.custody.overdue import raise_overdue_alerts
from api.custody.pending import HOLD_LIMIT
from api.custody.writes import ALERT_REPEAT_WINDOW
from api.ingest.answers import answer_stale_holds
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.publishing import DecisionPublisher
from api.logstore import open_log
from api.models import Alert, Asset, AssetClass, AssetStatus, CustodyEventRow, Decision, Refusal
from api.models.assets import AssetCreate
from api.models.people import Person, PersonCreate, PersonSecret
from api.models.registry import ReaderRole
from api.registry import create_asset, create_person, erase_person
from ledger.core.encoding import parse_record
from ledger.core.hashchain import verify_chain
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.records import CustodyEvent
from tests.api.api_support import (
    RegisteredReader,
    log_leaves,
    reference_root,
    register_reader,
)

ALICE_BADGE, BOB_BADGE, CAROL_BADGE = (f"E2800000000000000000000{i}" for i in (1, 2, 3))
RADIOS = [f"E28011606000020500000{i:03d}" for i in range(3)]
TASER, EVIDENCE = "E28011606000020500000100", "E28011606000020500000200"


@dataclass
class Store:
    engine: Engine
    pipeline: IngestPipeline
    issue: RegisteredReader
    returns: RegisteredReader
    portal: RegisteredReader
    bay: RegisteredReader
    seq: int = 0

    def read(self, reader: RegisteredReader, *epcs: str, session: str | None = "s1",
             **fields: object) -> BatchResult:
        messages = []
        for epc in epcs:
            kind = "badge" if epc in (ALICE_BADGE, BOB_BADGE, CAROL_BADGE) else "read"
            messages.append(reader.message(self.seq, epc, kind=kind, session=session, **fields))
            self.seq += 1
        return self.pipeline.process(messages)

    def asset(self, asset_id: str) -> Asset:
        with Session(self.engine) as session:
            asset = session.get(Asset, ("north", asset_id))
            assert asset is not None
            return asset


def _decisions(result: BatchResult) -> list[tuple[str, str, str | None]]:
    return [
        (body["decision"], body["reason"], body["action"])
        for body in (json.loads(d.payload) for d in result.decisions)
    ]


@pytest.fixture
def store(engine: Engine) -> Store:
    issue = register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    returns = register_reader(engine, reader_id="desk-2", role=ReaderRole.RETURN_DESK)
    portal = register_reader(engine, reader_id="door-1", role=ReaderRole.PORTAL)
    bay = register_reader(engine, site_id="north-yard", reader_id="bay-1",
                          role=ReaderRole.VEHICLE_BAY)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio", loan_days=1))
        session.add(AssetClass(id="taser", agency_id="north", name="Taser",
                               required_qualification="taser"))
        session.add(AssetClass(id="evidence", agency_id="north", name="Evidence bag",
                               dual_signoff=True))
        session.flush()
        for pid, badge, quals in (("alice", ALICE_BADGE, ["taser"]), ("bob", BOB_BADGE, []),
                                  ("carol", CAROL_BADGE, [])):
            create_person(session, agency_id="north", now=now, data=PersonCreate(
                id=pid, qualifications=quals, badges=[badge]))
        for asset_id, cls, epc in [*((f"R-{i}", "radio", e) for i, e in enumerate(RADIOS)),
                                   ("T-1", "taser", TASER), ("E-1", "evidence", EVIDENCE)]:
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=asset_id, class_id=cls, epc_hex=epc, home_site_id="north-store"))
        session.commit()
    pipeline = IngestPipeline(engine, load_settings())
    return Store(engine, pipeline, issue, returns, portal, bay)


def test_badge_and_three_radios_become_three_check_outs(store: Store) -> None:
    result = store.read(store.issue, ALICE_BADGE, *RADIOS)
    assert _decisions(result) == [("accept", "session open", None)] + [
        ("accept", "checked out", "check_out")
    ] * 3
    for i in range(3):
        radio = store.asset(f"R-{i}")
        assert (radio.status, radio.holder_ref) == (AssetStatus.CHECKED_OUT, "alice")
        assert radio.due_at is not None and radio.chain_next_seq == 2
    assert all(d.topic.endswith("/north/north-store/desk-1/decisions") for d in result.decisions)


def test_taser_refused_without_the_qualification(store: Store) -> None:
    result = store.read(store.issue, BOB_BADGE, TASER)
    assert _decisions(result)[1] == ("refuse", "holder lacks qualification taser", None)
    assert store.asset("T-1").status == AssetStatus.IN_STORE
    with Session(store.engine) as session:
        assert [r.reason for r in session.exec(select(Refusal))] == [
            "holder lacks qualification taser"
        ]
    ok = store.read(store.issue, ALICE_BADGE, TASER, session="s2")
    assert _decisions(ok)[1] == ("accept", "checked out", "check_out")


def test_evidence_needs_two_distinct_staff_badges(store: Store) -> None:
    single = store.read(store.issue, ALICE_BADGE, ALICE_BADGE, EVIDENCE)
    assert _decisions(single)[-1][0] == "refuse" and "dual sign-off" in _decisions(single)[-1][1]
    dual = store.read(store.issue, BOB_BADGE, EVIDENCE)  # same session: alice and bob
    assert _decisions(dual)[-1] == ("accept", "checked out", "check_out")
    with Session(store.engine) as session:
        row = session.exec(select(CustodyEventRow).where(CustodyEventRow.asset_id == "E-1",
                                                         CustodyEventRow.seq == 1)).one()
    assert len(CustodyEvent.from_record(parse_record(row.record)).authorised_by) == 2


def test_read_without_session_and_disposed_assets_are_refused(store: Store) -> None:
    assert _decisions(store.read(store.issue, RADIOS[0], session=None))[0][0] == "refuse"
    with Session(store.engine) as session:
        radio = session.get(Asset, ("north", "R-1"))
        assert radio is not None
        radio.status = AssetStatus.DISPOSED
        session.add(radio)
        session.commit()
    result = store.read(store.issue, ALICE_BADGE, RADIOS[1])
    assert _decisions(result)[1] == ("refuse", "asset is disposed", None)


def test_return_desk_checks_in_and_portal_alerts_on_unauthorised_removal(store: Store) -> None:
    store.read(store.issue, ALICE_BADGE, RADIOS[0])
    assert _decisions(store.read(store.portal, RADIOS[0], session=None))[0][0] == "accept"
    back = store.read(store.returns, RADIOS[0], session=None)
    assert _decisions(back) == [("accept", "checked in", "check_in")]
    assert store.asset("R-0").holder_ref == "north-store"
    again = store.read(store.returns, RADIOS[0], session=None)
    assert _decisions(again) == [("accept", "already in this store", None)]
    out = store.read(store.portal, RADIOS[0], session=None, direction="out")
    assert _decisions(out)[0][0] == "refuse"
    store.read(store.bay, RADIOS[1], session=None)
    with Session(store.engine) as session:
        kinds = sorted(a.kind for a in session.exec(select(Alert)))
    assert kinds == ["unauthorised_removal", "unexpected_site"]


def test_a_tag_read_again_and_again_at_the_portal_is_one_alert(
        engine: Engine, store: Store) -> None:
    clock = [datetime.now(UTC)]
    pipeline = IngestPipeline(engine, load_settings(), clock=lambda: clock[0])

    def carry_out(*seqs: int) -> list[str]:
        result = pipeline.process([store.portal.message(s, RADIOS[0], session=None,
                                                        direction="out") for s in seqs])
        return [d[0] for d in _decisions(result)]

    def alerts() -> int:
        with Session(engine) as session:
            return len(session.exec(select(Alert).where(Alert.kind == "unauthorised_removal"))
                       .all())

    assert carry_out(0, 1, 2) == ["refuse"] * 3  # every read is still answered
    assert carry_out(3) == ["refuse"] and alerts() == 1
    clock[0] += ALERT_REPEAT_WINDOW + timedelta(seconds=1)
    assert carry_out(4) == ["refuse"] and alerts() == 2  # later: another removal


def test_every_change_is_chained_and_in_the_merkle_log(store: Store) -> None:
    store.read(store.issue, ALICE_BADGE, BOB_BADGE, *RADIOS, TASER, EVIDENCE)
    store.read(store.returns, *RADIOS, session=None)
    with Session(store.engine) as session:
        rows = session.exec(select(CustodyEventRow).order_by(col(CustodyEventRow.leaf_index))).all()
        log = open_log(session, "north")
        leaves = log_leaves(session, "north")  # the events and the registry's records
        assert len(leaves) == log.size and [r.record for r in rows] == [
            leaf for leaf in leaves if leaf.startswith(b'{"action":')]
        assert log.root() == reference_root(leaves)
        for row in rows:
            proof = log.inclusion_proof(row.leaf_index)
            verify_inclusion(leaf_hash(row.record), row.leaf_index, log.size, proof, log.root())
    by_asset: dict[str, list[CustodyEvent]] = {}
    for row in rows:
        by_asset.setdefault(row.asset_id, []).append(
            CustodyEvent.from_record(parse_record(row.record)))
    assert len(by_asset["R-0"]) == 3  # register, check out, check in
    for asset_id, events in by_asset.items():
        assert verify_chain(asset_id, events).next_seq == store.asset(asset_id).chain_next_seq


def test_erasing_a_person_keeps_every_proof(store: Store) -> None:
    store.read(store.issue, ALICE_BADGE, RADIOS[0])
    with Session(store.engine) as session:
        before = open_log(session, "north").root()
        alice = session.get(Person, ("north", "alice"))
        assert alice is not None
        erase_person(session, person=alice)
        session.commit()
        assert session.get(PersonSecret, ("north", "alice")) is None
        rows = session.exec(select(CustodyEventRow).where(CustodyEventRow.asset_id == "R-0"))
        events = [CustodyEvent.from_record(parse_record(r.record)) for r in rows]
        assert open_log(session, "north").root() == before
    assert verify_chain("R-0", sorted(events, key=lambda e: e.seq)).next_seq == 2
    # Her badge is gone: it opens no session, so the next radio is refused at the desk.
    refused = store.read(store.issue, ALICE_BADGE, RADIOS[1], session="s9")
    assert _decisions(refused) == [("refuse", "no badge session open at this desk", None)]


def test_overdue_loans_alert_once_and_resolve_on_return(store: Store) -> None:
    store.read(store.issue, ALICE_BADGE, RADIOS[0])
    due = store.asset("R-0").due_at
    assert due is not None
    with Session(store.engine) as session:
        assert raise_overdue_alerts(session, due - timedelta(minutes=1)) == 0
        assert raise_overdue_alerts(session, due + timedelta(hours=1)) == 1
        session.commit()
    with Session(store.engine) as session:
        assert raise_overdue_alerts(session, due + timedelta(hours=2)) == 0
        session.commit()
    store.read(store.returns, RADIOS[0], session=None)
    with Session(store.engine) as session:
        alert = session.exec(select(Alert).where(Alert.kind == "overdue_loan")).one()
    assert alert.asset_id == "R-0" and alert.resolved_at is not None


def test_reads_committed_before_their_badge_are_held_then_ruled_on(store: Store) -> None:
    """Two workers can commit a desk's kit reads before its badge read: they are held, not
    refused, and checked out when the badge arrives."""
    desk = store.issue
    early = store.pipeline.process([desk.message(1, RADIOS[0], session="s1"),
                                    desk.message(2, RADIOS[1], session="s1")])
    assert early.decisions == [] and store.asset("R-0").status == AssetStatus.IN_STORE
    late = store.pipeline.process([desk.message(0, ALICE_BADGE, kind="badge", session="s1")])
    assert _decisions(late) == [("accept", "session open", None)] + [
        ("accept", "checked out", "check_out")] * 2
    assert store.asset("R-1").holder_ref == "alice"
    # Nothing is missing below this read and no session is open: refused at once.
    alone = store.pipeline.process([desk.message(3, RADIOS[2], session="s2")])
    assert _decisions(alone) == [("refuse", "no badge session open at this desk", None)]


def test_held_reads_are_refused_when_their_badge_is_refused(store: Store) -> None:
    """A badge that cannot open its session must not leave the reads held for it undecided."""
    with Session(store.engine) as session:
        carol = session.get(Person, ("north", "carol"))
        assert carol is not None
        carol.active = False
        session.add(carol)
        session.commit()
    desk = store.issue
    early = store.pipeline.process([desk.message(1, RADIOS[0], session="s1")])
    assert early.decisions == []
    late = store.pipeline.process([desk.message(0, CAROL_BADGE, kind="badge", session="s1")])
    assert _decisions(late) == [("refuse", "badge holder is not active", None),
                                ("refuse", "no badge session open at this desk", None)]
    assert store.asset("R-0").status == AssetStatus.IN_STORE


def test_held_reads_are_refused_when_the_missing_number_is_not_their_badge(
        store: Store) -> None:
    """A read held for a missing number is answered once that number arrives, even when it
    was not the badge: no badge is on the way, and the reader must not wait forever."""
    desk = store.issue
    early = store.pipeline.process([desk.message(2, RADIOS[0], session="s1"),
                                    desk.message(3, RADIOS[1], session="s1")])
    assert early.decisions == []
    # Seq 0 arrives (a read outside any session): seq 1 is still missing, so still held.
    still = store.pipeline.process([desk.message(0, RADIOS[2], session=None)])
    assert [json.loads(d.payload)["seq"] for d in still.decisions] == [0]
    # Seq 1 is a read of another session: the gap is closed, and s1 never opened.
    closed = store.pipeline.process([desk.message(1, TASER, session="s9")])
    assert [(json.loads(d.payload)["seq"],) + _decisions(closed)[n]
            for n, d in enumerate(closed.decisions)] == [
        (1, "refuse", "no badge session open at this desk", None),
        (2, "refuse", "no badge session open at this desk", None),
        (3, "refuse", "no badge session open at this desk", None),
    ]
    assert store.asset("R-0").status == AssetStatus.IN_STORE
    with Session(store.engine) as session:
        answered = session.exec(select(Decision.seq).where(Decision.reader_id == "desk-1"))
        assert sorted(answered) == [0, 1, 2, 3]
    # Nothing is answered twice when more numbers arrive.
    again = store.pipeline.process([desk.message(4, RADIOS[2], session=None)])
    assert [json.loads(d.payload)["seq"] for d in again.decisions] == [4]


def test_reads_held_past_the_limit_are_answered_once(store: Store) -> None:
    """A held read whose missing number never comes is refused after `HOLD_LIMIT`, once."""
    desk = store.issue
    assert store.pipeline.process([desk.message(5, RADIOS[0], session="s1")]).decisions == []
    now = datetime.now(UTC)
    with Session(store.engine) as session:
        assert answer_stale_holds(session, now) == []  # still within the limit
        answered = answer_stale_holds(session, now + HOLD_LIMIT + timedelta(seconds=1))
        session.commit()
    assert [json.loads(d.payload) for d in answered] == [
        {"seq": 5, "decision": "refuse", "reason": "no badge session open at this desk",
         "asset": "R-0", "action": None}]
    assert all(d.decision_id is not None for d in answered)  # stored, so re-sent after a crash
    with Session(store.engine) as session:
        assert answer_stale_holds(session, now + 2 * HOLD_LIMIT) == []
    assert store.asset("R-0").status == AssetStatus.IN_STORE


def test_only_a_recent_gap_holds_a_read(engine: Engine, store: Store) -> None:
    """A number missing for longer than the hold limit is not coming soon: a later read
    without its session is refused at once instead of waiting behind it."""
    clock = [datetime.now(UTC)]
    pipeline = IngestPipeline(engine, load_settings(), clock=lambda: clock[0])
    desk = store.issue
    assert _decisions(pipeline.process([desk.message(3, RADIOS[0], session=None)])) == [
        ("refuse", "no badge session open at this desk", None)]  # opens gap 0-2
    assert pipeline.process([desk.message(4, RADIOS[1], session="s1")]).decisions == []  # held
    clock[0] += HOLD_LIMIT + timedelta(seconds=1)
    assert _decisions(pipeline.process([desk.message(5, RADIOS[2], session="s1")])) == [
        ("refuse", "no badge session open at this desk", None)]
    # The read held while the gap was new is found by a scan that looks behind that gap, and
    # not by one that looks only behind gaps opened since.
    with Session(store.engine) as session:
        assert answer_stale_holds(session, clock[0], gaps_since=clock[0]) == []
        found = answer_stale_holds(session, clock[0] + timedelta(seconds=1),
                                    gaps_since=clock[0] - HOLD_LIMIT * 2)
        session.commit()
    assert [json.loads(d.payload)["seq"] for d in found] == [4]


def test_an_idle_desk_session_expires(engine: Engine, store: Store) -> None:
    """Kit read after the session timeout is refused: the next officer cannot use it."""
    clock = [datetime.now(UTC)]
    pipeline = IngestPipeline(engine, load_settings(), clock=lambda: clock[0])
    desk = store.issue
    opened = pipeline.process([desk.message(0, ALICE_BADGE, kind="badge", session="s1"),
                               desk.message(1, RADIOS[0], session="s1")])
    assert _decisions(opened)[1] == ("accept", "checked out", "check_out")
    clock[0] += DESK_SESSION_TIMEOUT + timedelta(seconds=1)
    late = pipeline.process([desk.message(2, RADIOS[1], session="s1")])
    assert _decisions(late) == [("refuse", "no badge session open at this desk", None)]
    # Badging in again opens it afresh, for the new badge holder only.
    again = pipeline.process([desk.message(3, BOB_BADGE, kind="badge", session="s1"),
                              desk.message(4, RADIOS[1], session="s1")])
    assert _decisions(again)[1] == ("accept", "checked out", "check_out")
    assert store.asset("R-1").holder_ref == "bob"


def test_decisions_carry_their_row_ids_for_marking_published(store: Store) -> None:
    result = store.read(store.issue, ALICE_BADGE, RADIOS[0])
    ids = [d.decision_id for d in result.decisions]
    with Session(store.engine) as session:
        rows = session.exec(select(Decision).order_by(col(Decision.id))).all()
    assert ids == [r.id for r in rows] and all(r.published_at is None for r in rows)


@dataclass
class _Receipt:
    acked: bool = False
    refused: bool = False

    def is_published(self) -> bool:
        if self.refused:  # as paho's MQTTMessageInfo when the client was not connected
            raise RuntimeError("Message publish failed: The client is not currently connected.")
        return self.acked


@dataclass
class _Broker:
    """Records publishes; `ack_all` plays the broker's PUBACKs."""

    sent: list[tuple[str, bytes, _Receipt]]

    def publish(self, topic: str, payload: bytes, qos: int) -> _Receipt:
        receipt = _Receipt()
        self.sent.append((topic, payload, receipt))
        return receipt

    def ack_all(self) -> None:
        for _, _, receipt in self.sent:
            receipt.acked = True


def test_unacknowledged_decisions_are_re_sent_after_a_crash(store: Store) -> None:
    result = store.read(store.issue, ALICE_BADGE, RADIOS[0], RADIOS[1])
    crashed = _Broker([])
    DecisionPublisher(store.engine, crashed).publish(result.decisions[:2])
    # The worker died before any PUBACK: a new worker re-sends all three, in order.
    broker = _Broker([])
    restarted = DecisionPublisher(store.engine, broker)
    assert restarted.resend_unpublished() == 3
    # One message to the desk, its three answers in order (the agent reads an array).
    assert [json.loads(p) for _, p, _ in broker.sent] == [
        [json.loads(d.payload) for d in result.decisions]]
    assert restarted.settle(datetime.now(UTC), force=True) == 0  # nothing acknowledged yet
    broker.ack_all()
    assert restarted.settle(datetime.now(UTC), force=True) == 3
    assert DecisionPublisher(store.engine, _Broker([])).resend_unpublished() == 0


def test_refused_publishes_are_not_marked_and_are_re_sent(store: Store) -> None:
    result = store.read(store.issue, ALICE_BADGE, RADIOS[0])
    broker = _Broker([])
    publisher = DecisionPublisher(store.engine, broker)
    publisher.publish(result.decisions[:1])
    publisher.publish(result.decisions[1:])
    broker.sent[0][2].refused = True
    broker.sent[1][2].acked = True
    assert publisher.settle(datetime.now(UTC), force=True) == 1
    assert publisher.resend_needed
    assert publisher.resend_unpublished() == 1 and not publisher.resend_needed
    assert broker.sent[-1][1] == result.decisions[0].payload
    broker.ack_all()
    assert publisher.settle(datetime.now(UTC), force=True) == 1
    assert DecisionPublisher(store.engine, _Broker([])).resend_unpublished() == 0
