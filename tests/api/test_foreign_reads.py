"""A reader speaks for its own agency: reads of another agency's kit, through the real ingest.

Agency north owns three radios (one in store, one checked out, one disposed); agency south
runs a reader of every role. South's readers sign observations of north's tags as an agent
does, and the ingest pipeline verifies, records and rules on them against SQLite and
PostgreSQL. South is told "not ours" and nothing more; north's record (alerts, webhooks,
custody, last sighting, the hand-over's "seen recently" check) does not move, and north alone
sees where south's readers saw its kit. A share or a loan to south is north's trust in south's
readers: then their reads rule as north's own do.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from reader_agent.decisions import Decision as Answer
from reader_agent.decisions import parse_decisions
from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.custody.transfers import accept, dispose, offer_loan
from api.ingest.checks import InboundMessage
from api.ingest.pipeline import BatchResult, IngestPipeline
from api.ingest.worker import IngestWorker
from api.models import (
    Agency,
    Alert,
    Asset,
    AssetClass,
    AssetShare,
    CustodyEventRow,
    Decision,
    Refusal,
    Scope,
    Sighting,
    Site,
    WebhookEvent,
    WebhookSubscription,
)
from api.models.assets import AssetCreate
from api.models.people import Person, PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_person
from api.webhook_outbox import EVENT_TYPES
from api.webhooks import seal
from tests.api.api_support import RegisteredReader, register_reader
from tests.fixtures.polling import wait_for
from tests.security.security_support import form_token

SECRET = "f" * 40
SETTINGS = load_settings(environment="test", secret_key=SECRET)
ALICE, CAROL, ZED, EVE = ("E2800000000000000000A11C", "E2800000000000000000CA01",
                          "E280000000000000000000ED", "E28000000000000000000E7E")
RADIOS = {"R-0": "E28011606000020500000A00", "R-1": "E28011606000020500000A01",
          "R-2": "E28011606000020500000A02"}
"""North's radios: R-0 in store at north-store, R-1 checked out to alice, R-2 disposed."""
NORTH_WORDS = ("R-0", "R-1", "R-2", "in_store", "checked_out", "disposed", "north", "alice")
"""Nothing a south reader is told may contain any of these."""
DESKS = (ReaderRole.ISSUE_DESK, ReaderRole.RETURN_DESK, ReaderRole.LOCKER)
LONG_AGO = timedelta(hours=1)


@dataclass
class Agencies:
    engine: Engine
    api: TestClient
    keys: dict[str, str]
    north_desk: RegisteredReader
    north_door: RegisteredReader
    south: dict[ReaderRole, RegisteredReader]
    seqs: dict[str, int] = field(default_factory=dict)
    sent: list[InboundMessage] = field(default_factory=list)
    """The messages of the last batch `read` sent."""

    def read(self, reader: RegisteredReader, *epcs: str, **fields: Any) -> BatchResult:
        """`epcs` read by `reader` as its agent signs them, in one batch; at a desk, after
        south's eve badges into the session."""
        session = "s1" if reader in [self.south.get(r) for r in DESKS] else None
        tags = [EVE, *epcs] if session else list(epcs)
        messages = []
        for epc in tags:
            seq = self.seqs.get(reader.reader_id, 0)
            self.seqs[reader.reader_id] = seq + 1
            kind = "badge" if epc in (EVE, ALICE, CAROL, ZED) else "read"
            messages.append(reader.message(seq, epc, kind=kind, session=session, **fields))
        self.sent = messages
        return IngestPipeline(self.engine, load_settings()).process(messages)

    def call(self, who: str, method: str, url: str, **body: Any) -> Any:
        return self.api.request(method, url, json=body or None,
                                headers={"Authorization": f"Bearer {self.keys[who]}"})

    def seen_long_ago(self) -> None:
        """North's radios were last seen an hour ago (by north's own readers)."""
        with Session(self.engine) as session:
            session.execute(update(Asset).values(last_seen_at=datetime.now(UTC) - LONG_AGO))
            session.commit()

    def north_state(self) -> dict[str, Any]:
        """Everything of north's a read could move: assets, events, alerts, webhook events,
        and refusals naming its assets."""
        with Session(self.engine) as session:
            assets = {a.id: (a.status, a.holder_kind, a.holder_ref, a.due_at, a.chain_next_seq,
                             a.last_seen_at, a.last_seen_reader_id, a.last_seen_site_id)
                      for a in session.exec(select(Asset).order_by(col(Asset.id)))}
            return {
                "assets": assets,
                "events": session.exec(select(func.count()).select_from(CustodyEventRow)).one(),
                "alerts": [(a.kind, a.asset_id) for a in session.exec(select(Alert))],
                "webhooks": [(w.event_type, w.data) for w in session.exec(select(WebhookEvent))],
                "refusals": [(r.agency_id, r.asset_id) for r in session.exec(select(Refusal))],
            }


def _agency(session: Session, agency: str) -> None:
    session.add(Agency(id=agency, name=agency.title()))
    session.flush()
    session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
    session.flush()


@pytest.fixture
def agencies(engine: Engine) -> Iterator[Agencies]:
    now = datetime.now(UTC)
    keys = {}
    with Session(engine) as session:
        for agency in ("north", "south"):
            _agency(session, agency)
            _, keys[agency] = create_api_client(session, agency_id=agency, name=agency,
                                                scopes=list(Scope), server_secret=SECRET,
                                                now=now)
        session.add(AssetClass(id="radio", agency_id="north", name="Radio", loan_days=1))
        session.add(WebhookSubscription(id="hook-north", agency_id="north",
                                        url="http://127.0.0.1:9/hook", events=list(EVENT_TYPES),
                                        sealed_secret=seal(SETTINGS, b"k" * 32)))
        session.flush()
        for person, badge, agency in (("alice", ALICE, "north"), ("carol", CAROL, "north"),
                                      ("eve", EVE, "south")):
            create_person(session, agency_id=agency, now=now,
                          data=PersonCreate(id=person, badges=[badge]))
        create_person(session, agency_id="north", now=now,
                      data=PersonCreate(id="zed", badges=[ZED]))
        for asset_id, epc in RADIOS.items():
            create_asset(session, agency_id="north", now=now, data=AssetCreate(
                id=asset_id, class_id="radio", epc_hex=epc, home_site_id="north-store"))
        session.commit()
    north_desk = register_reader(engine, "north", "north-store", "n-desk", ReaderRole.ISSUE_DESK)
    north_door = register_reader(engine, "north", "north-store", "n-door", ReaderRole.PORTAL)
    south = {role: register_reader(engine, "south", "south-store", f"s-{role.value}", role)
             for role in ReaderRole}
    with TestClient(create_app(SETTINGS, engine), raise_server_exceptions=False) as client:
        world = Agencies(engine, client, keys, north_desk, north_door, south)
        # R-1 checked out to alice at north's desk; R-2 disposed; zed leaves.
        pipeline = IngestPipeline(engine, load_settings())
        checked_out = pipeline.process([north_desk.message(0, ALICE, kind="badge", session="n"),
                                        north_desk.message(1, RADIOS["R-1"], session="n")])
        assert json.loads(checked_out.decisions[1].payload)["action"] == "check_out"
        world.seqs["n-desk"] = 2
        with Session(engine) as session:
            radio, zed = session.get(Asset, ("north", "R-2")), session.get(Person, ("north", "zed"))
            assert radio is not None and zed is not None
            dispose(session, asset=radio, now=now)
            zed.active = False
            session.add(zed)
            session.commit()
        world.seen_long_ago()
        yield world


def _answers(result: BatchResult, reader: RegisteredReader) -> list[dict[str, Any]]:
    """The answers to `reader`'s reads of tags other than south's own badge."""
    bodies = [json.loads(d.payload) for d in result.decisions]
    assert all(d.topic.split("/")[4] == reader.reader_id for d in result.decisions)
    return [b for b in bodies if b["reason"] != "session open"]


NOT_OURS = {"decision": "refuse", "reason": "not ours", "asset": None, "action": None}
ROLES = [pytest.param(role, id=role.value) for role in ReaderRole]


@pytest.mark.parametrize("role", ROLES)
def test_a_foreign_reader_is_told_not_ours_and_nothing_more(
    agencies: Agencies, role: ReaderRole
) -> None:
    """Whatever state north's radios are in, south's reader hears "not ours" (a vehicle bay
    answers no kit, its own or not, and hears nothing), and no stored decision or refusal
    of south's names them."""
    reader = agencies.south[role]
    result = agencies.read(reader, *RADIOS.values(), direction="out")
    answers = _answers(result, reader)
    seqs = [m["seq"] for m in answers]
    expected = [] if role == ReaderRole.VEHICLE_BAY else [
        {**NOT_OURS, "seq": seq} for seq in seqs]
    assert answers == expected
    assert len(answers) == (0 if role == ReaderRole.VEHICLE_BAY else 3)
    wire = b"".join(d.payload for d in result.decisions).decode()
    assert not [word for word in NORTH_WORDS if word in wire], wire
    with Session(agencies.engine) as session:
        stored = session.exec(select(Decision.asset_id, Decision.reason).where(
            Decision.reader_id == reader.reader_id)).all()
        assert {asset for asset, _ in stored} <= {None}
        assert {reason for _, reason in stored} <= {"session open", "not ours"}
        assert session.exec(select(Refusal)).all() == []


@pytest.mark.parametrize("role", ROLES)
def test_a_foreign_read_moves_nothing_of_the_owners(agencies: Agencies, role: ReaderRole) -> None:
    """No alert (so no webhook), no custody event, no last sighting moved: a portal seeing
    north's stored radio leave, a bay seeing it away from its store, a desk reading disposed
    kit all concern north only through north's own readers."""
    before = agencies.north_state()
    agencies.read(agencies.south[role], *RADIOS.values(), direction="out")
    agencies.read(agencies.south[role], *RADIOS.values(), direction=None)
    assert agencies.north_state() == before


@pytest.mark.parametrize("role", ROLES)
def test_a_foreign_sighting_does_not_satisfy_a_hand_overs_seen_recently(
    agencies: Agencies, role: ReaderRole
) -> None:
    """North offers alice's radio to carol; only south's reader has seen it lately: the hand-
    over is refused until one of north's own readers sees it."""
    offer = agencies.call("north", "POST", "/v1/assets/R-1/transfers", to_person="carol")
    assert offer.status_code == 201, offer.text
    agencies.read(agencies.south[role], RADIOS["R-1"], direction="in")
    url = f"/v1/transfers/{offer.json()['id']}/accept"
    refused = agencies.call("north", "POST", url)
    assert refused.status_code == 409, refused.text
    assert "seen the asset recently" in refused.json()["detail"]
    agencies.read(agencies.north_door, RADIOS["R-1"], direction="in")
    accepted = agencies.call("north", "POST", url)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["holder_ref"] == "carol"


def test_the_owner_alone_sees_where_other_agencies_readers_saw_its_kit(
    agencies: Agencies,
) -> None:
    """One row per (asset, reader), counted however often it is repeated (a replay is not
    counted); north's own reads are not foreign; south, and an agency the radio is shared
    with, get 404."""
    portal, bay = agencies.south[ReaderRole.PORTAL], agencies.south[ReaderRole.VEHICLE_BAY]
    agencies.read(portal, *[RADIOS["R-0"]] * 40, direction="out")
    replayed = IngestPipeline(agencies.engine, load_settings()).process(agencies.sent)
    assert len(replayed.recorded.duplicates) == 40
    agencies.read(portal, RADIOS["R-0"], direction="in")
    agencies.read(bay, RADIOS["R-0"])
    agencies.read(agencies.north_door, RADIOS["R-0"], direction="in")
    seen = agencies.call("north", "GET", "/v1/assets/R-0/foreign-sightings")
    assert seen.status_code == 200, seen.text
    rows = {row["reader_id"]: row for row in seen.json()}
    assert set(rows) == {portal.reader_id, bay.reader_id}
    assert rows[portal.reader_id]["count"] == 41 and rows[bay.reader_id]["count"] == 1
    for row in rows.values():
        assert (row["reporting_agency_id"], row["site_id"]) == ("south", "south-store")
        assert row["first_seen_at"] <= row["last_seen_at"]
    assert agencies.call("north", "GET", "/v1/assets/R-1/foreign-sightings").json() == []
    assert agencies.call("south", "GET", "/v1/assets/R-0/foreign-sightings").status_code == 404
    with Session(agencies.engine) as session:
        _agency(session, "east")
        session.add(AssetShare(owner_id="north", asset_id="R-0", agency_id="east"))
        _, agencies.keys["east"] = create_api_client(
            session, agency_id="east", name="east", scopes=list(Scope), server_secret=SECRET,
            now=datetime.now(UTC))
        session.commit()
    assert agencies.call("east", "GET", "/v1/assets/R-0").status_code == 200
    assert agencies.call("east", "GET", "/v1/assets/R-0/foreign-sightings").status_code == 404


def test_the_readers_stocktake_lists_foreign_kit_as_a_tag_not_its_own(agencies: Agencies) -> None:
    """South's stocktake of its store, where its portal read north's radio: the EPC its reader
    read is among the tags that are not south's, as a stray tag's would be, and nothing else
    of the radio is told (today's answer left it out, telling it apart from a stray tag)."""
    stray = "E28000000000000000005777"
    agencies.read(agencies.south[ReaderRole.PORTAL], RADIOS["R-0"], stray, direction="in")
    take = agencies.call("south", "GET", "/v1/sites/south-store/stocktake")
    assert take.status_code == 200, take.text
    assert take.json()["unknown_epcs"] == sorted([RADIOS["R-0"], stray])
    assert not [word for word in NORTH_WORDS if word in take.text], take.text


def test_another_agencys_badge_is_a_stranger_tag_whatever_its_holder(
    agencies: Agencies,
) -> None:
    """North's active alice and inactive zed badge at south's desk: badges are each agency's
    own, so south's desk hears for them exactly what it hears for a badge nobody registered
    (nothing), and nothing tells south that zed is no longer active."""
    desk = agencies.south[ReaderRole.ISSUE_DESK]
    nobodys = "E280116060000205FFFF0001"
    result = IngestPipeline(agencies.engine, load_settings()).process([
        desk.message(0, ALICE, kind="badge", session="s9"),
        desk.message(1, ZED, kind="badge", session="s9"),
        desk.message(2, nobodys, kind="badge", session="s9")])
    assert [json.loads(d.payload) for d in result.decisions] == []
    with Session(agencies.engine) as session:
        noted = session.exec(select(Sighting).where(Sighting.agency_id == "south")).all()
    assert sorted(s.epc_hex for s in noted) == sorted([ALICE, ZED, nobodys])


# With a share or a loan, south's readers are north's trusted readers for that radio.
TRUSTED = {
    ReaderRole.ISSUE_DESK: ("share", ("accept", "checked out", "check_out"),
                            ["unexpected_site"]),  # it was in north's store
    ReaderRole.RETURN_DESK: ("loan", ("accept", "checked in", "loan_return"), []),
    ReaderRole.LOCKER: ("loan", ("accept", "checked in", "loan_return"), []),
    ReaderRole.PORTAL: ("share", ("refuse", "leaving without a check-out", None),
                        ["unauthorised_removal"]),
    ReaderRole.VEHICLE_BAY: ("share", None, ["unexpected_site"]),
    ReaderRole.DOOR: ("share", None, ["unexpected_site"]),  # an evidence room's door sights
    ReaderRole.HANDHELD: ("share", None, ["unexpected_site"]),  # a stocktake's reads sight
}


@pytest.mark.parametrize("role", ROLES)
def test_a_share_or_a_loan_makes_the_readers_of_the_borrower_count(
    agencies: Agencies, role: ReaderRole
) -> None:
    """R-0 shared with south (or lent to it): south's reads of it rule as north's own would,
    name it, raise north's alerts (and their webhooks) and move its last sighting."""
    trust, answer, alerts = TRUSTED[role]
    now = datetime.now(UTC)
    with Session(agencies.engine) as session:
        if trust == "share":
            session.add(AssetShare(owner_id="north", asset_id="R-0", agency_id="south"))
        else:
            radio = session.get(Asset, ("north", "R-0"))
            assert radio is not None
            radio.last_seen_at = now
            accept(session, transfer=offer_loan(session, asset=radio, to_agency="south",
                                                days=1, now=now), now=now)
        session.commit()
    reader = agencies.south[role]
    result = agencies.read(reader, RADIOS["R-0"], direction="out")
    got = [(a["decision"], a["reason"], a["action"]) for a in _answers(result, reader)]
    assert got == ([] if answer is None else [answer])
    assert all(a["asset"] == "R-0" for a in _answers(result, reader))
    state = agencies.north_state()
    assert [kind for kind, _ in state["alerts"]] == alerts
    hooks = [kind for kind, _ in state["webhooks"]]
    assert hooks.count("alert.raised") == len(alerts)
    assert state["assets"]["R-0"][5:] != (None, None, None)
    assert state["assets"]["R-0"][6:] == (reader.reader_id, "south-store")


def test_the_desk_feed_never_names_kit_the_desk_may_not_see(agencies: Agencies) -> None:
    """South's desk page after it read north's radios shows "not ours" against a tag, and a
    decision stored before this rule (naming north's radio) is shown the same way."""
    desk = agencies.south[ReaderRole.ISSUE_DESK]
    agencies.read(desk, RADIOS["R-0"], RADIOS["R-1"])
    with Session(agencies.engine) as session:
        session.add(Decision(reader_id=desk.reader_id, topic="t", seq=999, decision="refuse",
                             reason="asset is checked_out, not in store", asset_id="R-1",
                             created_at=datetime.now(UTC)))
        session.commit()
    client = agencies.api
    login = client.post("/web/login", data={"key": agencies.keys["south"],
                                            "csrf": form_token(client)},
                        follow_redirects=False)
    assert login.status_code in (302, 303), login.text
    feed = client.get("/web/desk/feed", params={"reader": desk.reader_id})
    assert feed.status_code == 200
    assert not [word for word in NORTH_WORDS if word in feed.text], feed.text
    assert feed.text.count("not ours") == 3 and "staff badge" in feed.text  # eve's badge


def test_over_mqtt_a_foreign_portal_hears_not_ours_and_raises_nothing(
    agencies: Agencies, mosquitto: Any
) -> None:
    """The whole path: south's portal publishes a signed read of north's stored radio leaving;
    the worker answers on south's decisions topic, read with the agent's own parser."""
    settings = load_settings(mqtt_url=f"mqtt://127.0.0.1:{mosquitto.port}",
                             ingest_batch_wait_ms=5)
    worker = IngestWorker(settings, IngestPipeline(agencies.engine, settings))
    worker.start()
    assert worker.wait_subscribed(10)
    portal = agencies.south[ReaderRole.PORTAL]
    answers: list[Answer] = []
    agent = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="south-portal",
                        protocol=mqtt.MQTTv5)
    agent.on_message = lambda c, u, m: answers.extend(parse_decisions(m.payload))
    agent.connect("127.0.0.1", mosquitto.port)
    agent.loop_start()
    try:
        agent.subscribe(portal.topic.replace("/events", "/decisions"), qos=1)
        time.sleep(0.3)
        agent.publish(portal.topic, portal.signed(0, RADIOS["R-0"], direction="out"),
                      qos=1).wait_for_publish(10)
        assert wait_for(lambda: len(answers) == 1, timeout=20)
    finally:
        agent.loop_stop()
        worker.stop()
    assert answers == [Answer(seq=0, accepted=False, reason="not ours", asset=None,
                              action=None)]
    state = agencies.north_state()
    assert state["alerts"] == [] and state["refusals"] == []
    assert [kind for kind, _ in state["webhooks"] if kind == "alert.raised"] == []
