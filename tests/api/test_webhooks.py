"""Webhooks against a real HTTP receiver on loopback (allow-listed, as loopback is refused by
default): signed deliveries verified by the receiver, retries when it is down or failing, never
more than the attempt limit, failures visible through the API as one uniform error, tampered or
stale requests refused by the receiver's check."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api import webhook_targets
from api.app import create_app
from api.auth import create_api_client
from api.config import Settings, load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import AssetClass, Scope
from api.models.assets import AssetCreate
from api.registry import create_asset
from api.scoping import own_row
from api.webhook_outbox import raise_alerts
from api.webhooks import (
    DELIVERY_FAILED,
    MAX_SIGNATURE_AGE_S,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookDispatcher,
    sign,
    verify_signature,
)
from tests.api.api_support import register_reader
from tests.fixtures.ports import free_port

SECRET = "w" * 40
PUBLIC_ADDRESS = "93.184.215.14"
"""What `*.example` names resolve to here: a global address, only ever registered, never sent to."""


def resolve_example_names(host: str, port: int) -> list[str]:
    """The machine has no outside DNS: `*.example` receivers resolve to a public address."""
    if host.endswith(".example"):
        return [PUBLIC_ADDRESS]
    raise OSError(f"{host} does not resolve here")


class Receiver:
    """A loopback HTTP receiver answering scripted statuses and checking signatures."""

    def __init__(self, port: int, statuses: list[int]) -> None:
        self.port, self.statuses = port, statuses
        self.secret = b""
        self.seen: list[tuple[dict[str, str], bytes, bool]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                ok = verify_signature(receiver.secret, self.headers[TIMESTAMP_HEADER], body,
                                      self.headers[SIGNATURE_HEADER], time.time())
                receiver.seen.append((dict(self.headers), body, ok))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status if ok else 401)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          ) -> Iterator[tuple[Engine, Settings, TestClient, str]]:
    monkeypatch.setattr(webhook_targets, "resolve", resolve_example_names)
    engine = make_engine(load_settings(database_url=f"sqlite:///{tmp_path / 'api.db'}"))
    upgrade(engine)
    register_reader(engine)
    register_reader(engine, agency_id="south", site_id="south-store", reader_id="s-1")
    now = datetime.now(UTC)
    with Session(engine) as session:
        _, admin = create_api_client(session, agency_id="north", name="ops",
                                     scopes=[Scope.ADMIN], server_secret=SECRET, now=now)
        session.commit()
    settings = load_settings(environment="test", secret_key=SECRET, webhook_max_attempts=3,
                             webhook_backoff_base_s=1, webhook_backoff_max_s=4,
                             webhook_timeout_s=2, webhook_allowed_networks=["127.0.0.0/8"])
    yield engine, settings, TestClient(create_app(settings, engine)), admin
    engine.dispose()


def _register(client: TestClient, key: str, url: str, events: list[str]) -> dict[str, Any]:
    response = client.post("/v1/webhooks", json={"url": url, "events": events},
                           headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def _new_asset(engine: Engine, agency: str = "north", asset_id: str = "R-1") -> None:
    with Session(engine) as session:
        if own_row(session, AssetClass, agency, f"radio-{agency}") is None:
            session.add(AssetClass(id=f"radio-{agency}", agency_id=agency, name="Radio"))
            session.flush()
        create_asset(session, agency_id=agency, now=datetime.now(UTC), data=AssetCreate(
            id=asset_id, class_id=f"radio-{agency}", home_site_id=f"{agency}-store",
            epc_hex="E2" + hashlib.sha256(asset_id.encode()).hexdigest()[:22].upper()))
        session.commit()


def _deliveries(client: TestClient, key: str, hook: str, **params: str) -> list[Any]:
    response = client.get(f"/v1/webhooks/{hook}/deliveries", params=params,
                          headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()
    return found


def test_events_are_delivered_signed_and_only_to_their_agency(world: Any) -> None:
    engine, settings, client, key = world
    receiver = Receiver(free_port(), [])
    try:
        hook = _register(client, key, f"http://127.0.0.1:{receiver.port}/hook",
                         ["custody.changed", "alert.raised"])
        receiver.secret = hook["secret"].encode()
        _new_asset(engine)
        _new_asset(engine, "south", "S-1")  # south's event never reaches north's receiver
        with Session(engine) as session:
            now = datetime.now(UTC)
            raise_alerts(session, [
                {"agency_id": "north", "kind": kind, "asset_id": "R-1", "reader_id": None,
                 "site_id": None, "detail": detail, "created_at": now, "resolved_at": None}
                for kind, detail in (("unexpected_site", "seen at south-store"),
                                     ("overdue_loan", "not subscribed to loan.overdue"))])
            session.commit()
        dispatcher = WebhookDispatcher(engine, settings)
        try:
            assert dispatcher.fan_out() == 2
            assert dispatcher.fan_out() == 0  # queued exactly once
            assert dispatcher.deliver() == 2
        finally:
            dispatcher.close()
        assert [ok for _, _, ok in receiver.seen] == [True, True]
        kinds = [json.loads(body)["type"] for _, body, _ in receiver.seen]
        assert kinds == ["custody.changed", "alert.raised"]
        assert all(json.loads(body)["data"]["agency_id"] == "north" for _, body, _ in receiver.seen)
        assert {d["status"] for d in _deliveries(client, key, hook["id"])} == {"delivered"}
    finally:
        receiver.close()


def test_retried_while_down_or_failing_and_given_up_after_the_limit(world: Any) -> None:
    engine, settings, client, key = world
    port = free_port()
    hook = _register(client, key, f"http://127.0.0.1:{port}/hook", ["custody.changed"])
    _new_asset(engine, asset_id="R-1")
    _new_asset(engine, asset_id="R-22")
    dispatcher = WebhookDispatcher(engine, settings)
    try:
        assert dispatcher.fan_out() == 2
        start = datetime.now(UTC)  # the deliveries are due from their fan-out
        assert dispatcher.deliver(start) == 0  # nobody listens yet
        pending = _deliveries(client, key, hook["id"], status="pending")
        assert [d["attempts"] for d in pending] == [1, 1]
        assert all(d["last_error"] == DELIVERY_FAILED and d["last_status"] is None
                   for d in pending)
        # Up now: the first answers 500 once then 200; the second always 500.
        receiver = Receiver(port, [500, 500, 200, 500, 500])
        receiver.secret = hook["secret"].encode()
        try:
            assert dispatcher.deliver(start) == 0  # backoff: not due yet
            moments = [start + timedelta(seconds=s) for s in (1.5, 4, 9, 20, 40)]
            delivered = sum(dispatcher.deliver(m) for m in moments)
            assert delivered == 1
            assert len(receiver.seen) == 4  # 2 + 2 attempts: 3 each at most, 1 already spent
        finally:
            receiver.close()
    finally:
        dispatcher.close()
    rows = {d["status"]: d for d in _deliveries(client, key, hook["id"])}
    assert rows["delivered"]["attempts"] == 3
    assert rows["failed"]["attempts"] == 3 and rows["failed"]["last_error"] == DELIVERY_FAILED
    # A refused connection and an HTTP 500 look the same: no port scanning through deliveries.
    assert rows["failed"]["last_status"] is None


def test_receivers_check_refuses_tampering_and_stale_timestamps() -> None:
    secret, body, now = b"k" * 32, b'{"type":"custody.changed"}', int(time.time())
    good = sign(secret, now, body)
    assert verify_signature(secret, str(now), body, good, now)
    assert not verify_signature(secret, str(now), body.replace(b"changed", b"chang3d"), good, now)
    assert not verify_signature(b"x" * 32, str(now), body, good, now)
    assert not verify_signature(secret, str(now + 1), body, good, now)
    stale = now - MAX_SIGNATURE_AGE_S - 1
    assert not verify_signature(secret, str(stale), body, sign(secret, stale, body), now)
    assert not verify_signature(secret, "-5", body, good, now)
    assert not verify_signature(secret, "9" * 5000, body, good, now)


def test_registration_is_admin_only_scoped_and_validated(world: Any) -> None:
    engine, _, client, key = world
    with Session(engine) as session:
        _, reader_key = create_api_client(session, agency_id="north", name="r",
                                          scopes=[Scope.ASSETS_READ], server_secret=SECRET,
                                          now=datetime.now(UTC))
        _, south_key = create_api_client(session, agency_id="south", name="s",
                                         scopes=[Scope.ADMIN], server_secret=SECRET,
                                         now=datetime.now(UTC))
        _, hooks_key = create_api_client(session, agency_id="north", name="h",
                                         scopes=[Scope.WEBHOOKS_WRITE], server_secret=SECRET,
                                         now=datetime.now(UTC))
        session.commit()
    hook = _register(client, key, "https://receiver.example/hook", ["loan.overdue"])
    listed = client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"}).json()
    assert [h["id"] for h in listed] == [hook["id"]] and "secret" not in listed[0]

    def post(k: str, body: Any) -> int:
        answer = client.post("/v1/webhooks", json=body, headers={"Authorization": f"Bearer {k}"})
        return int(answer.status_code)

    assert post(reader_key, {"url": "https://r.example/", "events": ["alert.raised"]}) == 403
    # webhooks:write suffices without admin, and sees only its own agency's webhooks.
    assert post(hooks_key, {"url": "https://h.example/", "events": ["alert.raised"]}) == 201
    assert len(client.get("/v1/webhooks", headers={"Authorization": f"Bearer {hooks_key}"})
               .json()) == 2
    assert client.get("/v1/assets", headers={"Authorization": f"Bearer {hooks_key}"}
                      ).status_code == 403
    for bad in ({"url": "ftp://r.example/", "events": ["alert.raised"]},
                {"url": "https://r.example/", "events": ["everything"]},
                {"url": "https://r.example/", "events": []},
                {"url": "https://r.example/" + "a" * 5000, "events": ["alert.raised"]}):
        assert post(key, bad) == 422
    south = {"Authorization": f"Bearer {south_key}"}
    assert client.get(f"/v1/webhooks/{hook['id']}/deliveries", headers=south).status_code == 404
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=south).status_code == 404
    assert client.get("/v1/webhooks", headers=south).json() == []
    mine = {"Authorization": f"Bearer {key}"}
    assert client.delete(f"/v1/webhooks/{hook['id']}", headers=mine).status_code == 204
    assert client.get("/v1/webhooks", headers=mine).json()[0]["active"] is False
