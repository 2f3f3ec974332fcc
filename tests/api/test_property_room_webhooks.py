"""Every property-room event type reaches a real HTTP receiver on loopback (allow-listed, as
loopback is refused by default), on both databases: manual entries, corrections, retirements
of assets and people, maintenance checks, out of and back into service, bookings made and
cancelled, evidence references and disposals. Each is written in the transaction of its change
(a refused change sends nothing), signed, and carries ids, leaves and hashes, never a name."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from api.app import create_app
from api.config import load_settings
from api.webhooks import WebhookDispatcher
from tests.api.test_export import SECRET
from tests.api.test_maintenance import SCHEDULE
from tests.api.test_property_room import Api, _leaf, _manual, _world
from tests.api.test_reservations import NIGHT
from tests.api.test_webhooks import Receiver
from tests.fixtures.ports import free_port

PROPERTY_ROOM_EVENTS = ["custody.manual", "custody.corrected", "asset.retired",
                        "person.retired", "maintenance.done", "asset.out_of_service",
                        "asset.back_in_service", "reservation.created",
                        "reservation.cancelled", "evidence.referenced", "asset.disposed"]
RECIPIENT = "Mrs Example Owner"


def _changes(north: Api, engine: Engine) -> None:
    """One change of each kind through the REST API, and refused ones that send nothing."""
    assert north.post("/v1/classes/radio/schedules",
                      {**SCHEDULE, "blocking": False}).status_code == 201
    assert north.post("/v1/assets/R-0/maintenance", {
        "schedule": SCHEDULE["key"], "result": "pass", "officer": "alice"}).status_code == 201
    service = {"officer": "bob", "reason": "cracked case"}
    assert north.post("/v1/assets/R-2/out-of-service", service).status_code == 201
    assert north.post("/v1/assets/R-2/out-of-service", service).status_code == 409
    assert north.post("/v1/assets/R-2/back-in-service", service).status_code == 201
    assert _manual(north, "R-0", "check_out", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    assert north.post("/v1/assets/R-0/corrections", {
        "leaf_index": _leaf(engine, "R-0", 1), "reason": "was carol"}).status_code == 201
    booking = north.post("/v1/reservations", {"operation": "op-harbour", "asset_ids": ["R-2"],
                                              "people": ["bob"], **NIGHT})
    assert booking.status_code == 201
    assert north.post(f"/v1/reservations/{booking.json()['id']}/cancel").status_code == 200
    assert north.client.put("/v1/assets/E-1/evidence", headers=north.headers, json={
        "case_ref": "24-001234", "exhibit_ref": "JS/1"}).status_code == 200
    assert north.post("/v1/assets/E-1/disposals", {
        "disposition": "returned_to_owner", "recipient": RECIPIENT}).status_code == 201
    assert north.post("/v1/assets/R-2/retire", {"reason": "broken"}).status_code == 200
    assert north.post("/v1/people/bob/retire", {"reason": "left"}).status_code == 409  # holds R-0
    assert north.post("/v1/people/carol/retire", {"reason": "left"}).status_code == 200


def test_each_property_room_event_reaches_a_real_receiver(engine: Engine,
                                                          tmp_path: Path) -> None:
    _, keys = _world(engine, tmp_path / "keys")
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys", webhook_max_attempts=3,
                             webhook_timeout_s=5, webhook_allowed_networks=["127.0.0.0/8"])
    north = Api(TestClient(create_app(settings, engine), raise_server_exceptions=False),
                keys["north"])
    receiver = Receiver(free_port(), [])
    try:
        hook = north.post("/v1/webhooks", {"url": f"http://127.0.0.1:{receiver.port}/hook",
                                           "events": PROPERTY_ROOM_EVENTS})
        assert hook.status_code == 201, hook.text
        receiver.secret = hook.json()["secret"].encode()
        _changes(north, engine)
        dispatcher = WebhookDispatcher(engine, settings)
        try:
            assert dispatcher.fan_out() == len(PROPERTY_ROOM_EVENTS)
            assert dispatcher.deliver() == len(PROPERTY_ROOM_EVENTS)
        finally:
            dispatcher.close()
    finally:
        receiver.close()
    assert all(ok for _, _, ok in receiver.seen)  # each signed with the hook's secret
    bodies = [json.loads(body) for _, body, _ in receiver.seen]
    assert sorted(b["type"] for b in bodies) == sorted(PROPERTY_ROOM_EVENTS)  # once each
    data = {b["type"]: b["data"] for b in bodies}
    assert data["asset.disposed"]["disposition"] == "returned_to_owner"
    assert len(data["asset.disposed"]["event_hash"]) == 64
    assert data["evidence.referenced"]["asset_id"] == "E-1"
    assert data["maintenance.done"]["result"] == "pass"
    assert data["asset.out_of_service"]["asset_id"] == "R-2"
    raw = b"".join(body for _, body, _ in receiver.seen)
    for private in (RECIPIENT.encode(), b"24-001234", b'"alice"', b'"bob"', b'"carol"'):
        assert private not in raw
