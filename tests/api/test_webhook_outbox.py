"""Webhook events are written in the event's own transaction (api.webhook_outbox): a rolled-back
event never produces a delivery, a committed one always does, whichever producer made it (the
API's custody writes, an ingest batch's bulk writes, alerts, transfer offers) and in whatever
order concurrent transactions commit."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.config import load_settings
from api.custody.events import CustodyChange, append_change
from api.custody.transfers import offer_loan
from api.custody.writes import CustodyWrites
from api.logstore import appending_log, claim_log_writer
from api.models import Agency, Asset, AssetClass, Site, WebhookDelivery, WebhookEvent
from api.models.assets import AssetCreate, AssetStatus, HolderKind
from api.models.webhooks import WebhookSubscription
from api.registry import create_asset
from api.scoping import own_row
from api.webhook_outbox import EVENT_TYPES, raise_alerts
from api.webhooks import WebhookDispatcher, seal

SETTINGS = load_settings(environment="test", secret_key="o" * 40)


def _world(engine: Engine) -> None:
    with Session(engine) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        for agency in ("north", "south"):
            session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
            session.add(AssetClass(id=f"radio-{agency}", agency_id=agency, name="Radio"))
        session.add(WebhookSubscription(id="hook-north", agency_id="north",
                                        url="http://127.0.0.1:9/hook", events=list(EVENT_TYPES),
                                        sealed_secret=seal(SETTINGS, b"k" * 32)))
        session.commit()


def _asset(session: Session, asset_id: str, agency: str = "north") -> Asset:
    return create_asset(session, agency_id=agency, now=datetime.now(UTC), data=AssetCreate(
        id=asset_id, class_id=f"radio-{agency}", home_site_id=f"{agency}-store",
        epc_hex="E2" + hashlib.sha256(asset_id.encode()).hexdigest()[:22].upper()))


def _alert(session: Session, detail: str) -> None:
    raise_alerts(session, [{"agency_id": "north", "kind": "unexpected_site", "asset_id": None,
                            "reader_id": None, "site_id": None, "detail": detail,
                            "created_at": datetime.now(UTC), "resolved_at": None}])


def _delivered(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all()  # type: ignore[arg-type]
        return [(r.event_type, json.loads(r.body)["data"]) for r in rows]


def _fan_out(engine: Engine) -> int:
    dispatcher = WebhookDispatcher(engine, SETTINGS)
    try:
        return dispatcher.fan_out()
    finally:
        dispatcher.close()


def test_rolled_back_events_never_produce_deliveries(engine: Engine) -> None:
    _world(engine)
    with Session(engine) as session:
        _asset(session, "R-1")  # custody change through SessionSink
        _alert(session, "rolled back")
        session.flush()
        assert session.exec(select(func.count()).select_from(WebhookEvent)).one() == 2
        session.rollback()
    assert _fan_out(engine) == 0
    assert _delivered(engine) == []


def test_committed_events_always_produce_one_delivery_each(engine: Engine) -> None:
    _world(engine)
    with Session(engine) as session:
        _asset(session, "R-1")
        _asset(session, "S-1", agency="south")  # south's: no north delivery
        _alert(session, "committed")
        session.commit()
    with Session(engine) as session:  # a loan offer, then the ingest path's bulk writes
        offer_loan(session, asset=own_row(session, Asset, "north", "R-1"),  # type: ignore[arg-type]
                   to_agency="south", days=3, now=datetime.now(UTC))
        _asset(session, "R-2")
        claim_log_writer(session, datetime.now(UTC))
        writes = CustodyWrites(session)
        with appending_log(session) as log:
            for asset_id in ("R-1", "R-2"):
                asset = own_row(session, Asset, "north", asset_id)
                assert asset is not None
                append_change(session, log, asset, CustodyChange(
                    action="loan_out", holder_kind=HolderKind.AGENCY, holder_ref="south",
                    new_status=AssetStatus.ON_LOAN, time=datetime.now(UTC)), sink=writes)
        writes.flush(datetime.now(UTC))
        session.commit()
    assert _fan_out(engine) == 8
    assert _fan_out(engine) == 0  # each exactly once
    # registered, both lent (changed + accepted each), one alert, one offer.
    assert Counter(kind for kind, _ in _delivered(engine)) == {
        "custody.changed": 4, "transfer.accepted": 2, "alert.raised": 1, "transfer.offered": 1}
    assert all(data["agency_id"] == "north" for _, data in _delivered(engine))
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(WebhookEvent)).one() == 0


def test_an_event_committed_after_a_later_id_is_not_skipped(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: transactions cannot interleave")
    _world(engine)
    first, second = Session(engine), Session(engine)
    try:
        _alert(first, "drawn first, committed last")
        first.flush()
        _alert(second, "drawn second, committed first")
        second.commit()
        assert _fan_out(engine) == 1
        first.commit()
        assert _fan_out(engine) == 1
    finally:
        first.close()
        second.close()
    assert sorted(d["kind"] for _, d in _delivered(engine)) == ["unexpected_site"] * 2


def _events(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return sorted((e.agency_id, e.event_type) for e in session.exec(select(WebhookEvent)))


def test_only_events_an_active_subscription_asks_for_are_written(engine: Engine) -> None:
    _world(engine)  # north subscribes to everything, south to nothing yet
    with Session(engine) as session:
        session.add(WebhookSubscription(id="hook-south", agency_id="south",
                                        url="http://127.0.0.1:9/hook", events=["alert.raised"],
                                        sealed_secret=seal(SETTINGS, b"k" * 32)))
        session.add(WebhookSubscription(id="hook-south-off", agency_id="south",
                                        url="http://127.0.0.1:9/hook",
                                        events=["custody.changed"], active=False,
                                        sealed_secret=seal(SETTINGS, b"k" * 32)))
        session.commit()
    with Session(engine) as session:
        _asset(session, "R-1")
        _asset(session, "S-1", agency="south")  # south asks for alerts only
        raise_alerts(session, [{"agency_id": "south", "kind": "unexpected_site",
                                "asset_id": None, "reader_id": None, "site_id": None,
                                "detail": "seen elsewhere", "created_at": datetime.now(UTC),
                                "resolved_at": None}])
        claim_log_writer(session, datetime.now(UTC))
        writes = CustodyWrites(session)  # the ingest path: one bulk write for both agencies
        with appending_log(session) as log:
            for agency_id, asset_id in (("north", "R-1"), ("south", "S-1")):
                asset = own_row(session, Asset, agency_id, asset_id)
                assert asset is not None
                append_change(session, log, asset, CustodyChange(
                    action="check_in", holder_kind=HolderKind.LOCATION,
                    holder_ref=f"{asset.agency_id}-store", new_status=AssetStatus.IN_STORE,
                    time=datetime.now(UTC)), sink=writes)
        writes.flush(datetime.now(UTC))
        session.commit()
    assert _events(engine) == [("north", "custody.changed")] * 2 + [("south", "alert.raised")]
    with Session(engine) as session:  # north switches its webhook off: nothing more for it
        subscription = session.get(WebhookSubscription, "hook-north")
        assert subscription is not None
        subscription.active = False
        session.add(subscription)
        session.commit()
    with Session(engine) as session:
        _asset(session, "R-2")
        session.commit()
    assert len(_events(engine)) == 3


def test_event_ids_are_never_reused_after_the_outbox_empties(engine: Engine) -> None:
    """SQLite gives a deleted rowid out again unless the table is AUTOINCREMENT: each fan-out
    empties `webhook_event`, so the next event would reuse `evt-1`, collide with its delivery's
    unique (subscription, event) pair, and stop every later delivery."""
    _world(engine)
    for detail in ("first", "second", "third"):
        with Session(engine) as session:
            _alert(session, detail)
            session.commit()
        assert _fan_out(engine) == 1
    with Session(engine) as session:
        ids = [json.loads(r.body)["id"] for r in session.exec(select(WebhookDelivery))]
    assert len(set(ids)) == 3
    assert len({data["id"] for _, data in _delivered(engine)}) == 3  # three alerts, all sent


def test_upgrading_sqlite_starts_event_ids_past_those_already_delivered(tmp_path: Any) -> None:
    """A database from before migration 0010 whose events were all fanned out (the table is
    empty) but whose deliveries name `evt-1` .. `evt-5`: the next event is `evt-6`."""
    from api.db import make_engine
    from api.migrate import upgrade

    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'old.db'}"))
    try:
        upgrade(engine, "0009")
        with engine.begin() as connection:
            connection.exec_driver_sql("INSERT INTO agency (id, name, created_at) "
                                       "VALUES ('north', 'North', '2026-01-01')")
            connection.exec_driver_sql(
                "INSERT INTO webhook_subscription (id, agency_id, url, events, sealed_secret, "
                "active, created_at) VALUES ('hook', 'north', 'http://127.0.0.1:9/', '[]', "
                "x'00', 1, '2026-01-01')")
            for n in range(1, 6):
                connection.exec_driver_sql(
                    "INSERT INTO webhook_delivery (subscription_id, event_id, event_type, body, "
                    "status, attempts, next_attempt_at, created_at) VALUES ('hook', ?, "
                    "'alert.raised', x'00', 'delivered', 1, '2026-01-01', '2026-01-01')",
                    (f"evt-{n}",))
        upgrade(engine)
        with Session(engine) as session:
            event = WebhookEvent(agency_id="north", event_type="alert.raised")
            session.add(event)
            session.commit()
            assert event.id == 6
    finally:
        engine.dispose()
