"""Webhooks cannot be aimed inward: every inward spelling refused at registration with a 422
and a reason, deliveries to a real loopback listener only when loopback is allow-listed, a name
that turns inward after registration refused at delivery, userinfo never sent nor shown, and a
closed port indistinguishable from an open one in what the API reports."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api import webhook_targets
from api.app import create_app
from api.auth import create_api_client
from api.config import Settings, load_settings
from api.db import utcnow
from api.models import Scope
from api.models.webhooks import WebhookSubscription
from api.webhook_outbox import enqueue
from api.webhooks import DELIVERY_FAILED, WebhookDispatcher, seal
from tests.api.api_support import register_reader
from tests.api.test_webhooks import PUBLIC_ADDRESS, SECRET, Receiver
from tests.fixtures.ports import free_port

INWARD_URLS = (
    "http://127.0.0.1/", "http://127.8.9.10:8080/x", "http://[::1]/", "http://localhost/",
    "http://LOCALHOST./", "http://api.localhost/", "http://10.1.2.3/", "http://172.16.0.1/",
    "http://172.31.255.254/", "http://192.168.1.1/", "http://[fc00::1]/", "http://[fd12::1]/",
    "http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://224.0.0.1/",
    "http://[ff02::1]/", "http://0.0.0.0/", "http://[::]/", "http://240.0.0.1/",
    "http://100.64.0.1/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/",
    "http://2130706433/", "http://0x7f000001/", "http://0177.0.0.1/", "http://127.1/",
    "http://0x7f.0.0.1/", "http://metadata.google.internal/computeMetadata/v1/",
    "http://metadata/", "http://private.example/", "http://mixed.example/",
    "https://user:pw@receiver.example/", "https://token@receiver.example/",
)
"""Inward or credential-carrying targets; `*.example` answers come from `_dns` below."""

REASONS = ("loopback", "private", "link-local", "multicast", "unspecified", "reserved",
           "non-public", "non-canonical", "names this host", "user name or password")
"""Each refusal names one of these."""

DNS: dict[str, list[str]] = {
    "receiver.example": [PUBLIC_ADDRESS], "private.example": ["10.0.0.5"],
    "mixed.example": [PUBLIC_ADDRESS, "169.254.169.254"],
}


def _dns(answers: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        if host in answers:
            return list(answers[host])
        raise OSError(f"{host} does not resolve here")
    return resolve


def _settings(allowed: list[str]) -> Settings:
    return load_settings(environment="test", secret_key=SECRET, webhook_max_attempts=3,
                         webhook_backoff_base_s=1, webhook_backoff_max_s=4, webhook_timeout_s=2,
                         webhook_allowed_networks=allowed)


@pytest.fixture
def engine_key(engine: Engine) -> tuple[Engine, str]:
    """A migrated database on each backend with agency north and its admin key."""
    register_reader(engine)
    with Session(engine) as session:
        _, admin = create_api_client(session, agency_id="north", name="ops",
                                     scopes=[Scope.ADMIN], server_secret=SECRET,
                                     now=datetime.now(UTC))
        session.commit()
    return engine, admin


def _post(client: TestClient, key: str, url: str) -> Any:
    return client.post("/v1/webhooks", json={"url": url, "events": ["alert.raised"]},
                       headers={"Authorization": f"Bearer {key}"})


def _stored_hook(engine: Engine, settings: Settings, url: str) -> tuple[str, str]:
    """A subscription written as if accepted earlier (under another allow-list or DNS answer)."""
    secret, hook_id = secrets.token_hex(32), secrets.token_hex(8)
    with Session(engine) as session:
        session.add(WebhookSubscription(id=hook_id, agency_id="north", url=url,
                                        events=["alert.raised"], created_at=utcnow(),
                                        sealed_secret=seal(settings, secret.encode())))
        session.commit()
    return hook_id, secret


def _alert_and_deliver(engine: Engine, settings: Settings) -> int:
    with Session(engine) as session:
        enqueue(session.connection(), [{"agency_id": "north", "event_type": "alert.raised",
                                        "data": {"kind": "test"}, "created_at": utcnow()}])
        session.commit()
    dispatcher = WebhookDispatcher(engine, settings)
    try:
        dispatcher.fan_out()
        return dispatcher.deliver()
    finally:
        dispatcher.close()


def _deliveries(client: TestClient, key: str, hook_id: str) -> list[Any]:
    answer = client.get(f"/v1/webhooks/{hook_id}/deliveries",
                        headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 200, answer.text
    found: list[Any] = answer.json()
    return found


@pytest.mark.parametrize("url", INWARD_URLS)
def test_every_inward_spelling_is_refused_at_registration(
        engine_key: Any, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    engine, key = engine_key
    monkeypatch.setattr(webhook_targets, "resolve", _dns(DNS))
    answer = _post(TestClient(create_app(_settings([]), engine)), key, url)
    assert answer.status_code == 422, answer.text
    assert any(reason in answer.text for reason in REASONS), answer.text
    assert "pw" not in answer.text.replace("password", "")


def test_a_public_target_is_accepted_and_the_allow_list_does_not_admit_odd_spellings(
        engine_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, key = engine_key
    monkeypatch.setattr(webhook_targets, "resolve", _dns(DNS))
    client = TestClient(create_app(_settings(["127.0.0.0/8"]), engine))
    assert _post(client, key, "https://receiver.example/hook").status_code == 201
    assert _post(client, key, "http://127.0.0.1:9/hook").status_code == 201
    for odd in ("http://2130706433/", "http://0x7f000001/", "http://localhost/"):
        assert _post(client, key, odd).status_code == 422
    assert _post(client, key, "http://unknown.example/").status_code == 422


def test_a_real_loopback_listener_is_reached_only_when_loopback_is_allow_listed(
        engine_key: Any) -> None:
    engine, key = engine_key
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    refusing = _settings([])
    assert _post(TestClient(create_app(refusing, engine)), key, url).status_code == 422
    hook_id, secret = _stored_hook(engine, refusing, url)
    receiver = Receiver(port, [])
    receiver.secret = secret.encode()
    try:
        assert _alert_and_deliver(engine, refusing) == 0
        assert receiver.seen == []
        [refused] = _deliveries(TestClient(create_app(refusing, engine)), key, hook_id)
        assert "loopback" in refused["last_error"] and refused["status"] == "pending"
        allowing = _settings(["127.0.0.0/8"])
        client = TestClient(create_app(allowing, engine))
        assert client.delete(f"/v1/webhooks/{hook_id}",
                             headers={"Authorization": f"Bearer {key}"}).status_code == 204
        hook = _post(client, key, url).json()
        receiver.secret = hook["secret"].encode()
        assert _alert_and_deliver(engine, allowing) == 1
        assert len(receiver.seen) == 1 and receiver.seen[0][2]
    finally:
        receiver.close()


def test_a_name_that_turns_inward_after_registration_is_refused_at_delivery(
        engine_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # DNS rebinding cannot be shown with real DNS on this machine (no resolver answers for us),
    # so the resolver is replaced: the name is public at registration and loopback afterwards,
    # where a real listener waits.
    engine, key = engine_key
    port = free_port()
    answers = {"rebind.example": [PUBLIC_ADDRESS]}
    monkeypatch.setattr(webhook_targets, "resolve", _dns(answers))
    settings = _settings([])
    client = TestClient(create_app(settings, engine))
    hook = _post(client, key, f"http://rebind.example:{port}/hook").json()
    answers["rebind.example"] = ["127.0.0.1"]
    receiver = Receiver(port, [])
    receiver.secret = hook["secret"].encode()
    try:
        assert _alert_and_deliver(engine, settings) == 0
        assert receiver.seen == []
    finally:
        receiver.close()
    [refused] = _deliveries(client, key, hook["id"])
    assert "loopback" in refused["last_error"]


def test_delivery_connects_to_the_checked_address_and_keeps_the_name_as_host(
        engine_key: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    engine, key = engine_key
    port = free_port()
    monkeypatch.setattr(webhook_targets, "resolve", _dns({"hook.example": ["127.0.0.1"]}))
    settings = _settings(["127.0.0.0/8"])
    hook = _post(TestClient(create_app(settings, engine)), key,
                 f"http://hook.example:{port}/hook").json()
    receiver = Receiver(port, [])
    receiver.secret = hook["secret"].encode()
    try:
        assert _alert_and_deliver(engine, settings) == 1
    finally:
        receiver.close()
    assert receiver.seen[0][0]["Host"] == f"hook.example:{port}"


def test_stored_userinfo_is_neither_shown_nor_sent(engine_key: Any) -> None:
    engine, key = engine_key
    port = free_port()
    settings = _settings(["127.0.0.0/8"])
    hook_id, secret = _stored_hook(engine, settings, f"http://alice:s3cret@127.0.0.1:{port}/h")
    client = TestClient(create_app(settings, engine))
    listed = client.get("/v1/webhooks", headers={"Authorization": f"Bearer {key}"})
    assert listed.json()[0]["url"] == f"http://127.0.0.1:{port}/h"
    assert "s3cret" not in listed.text and "alice" not in listed.text
    receiver = Receiver(port, [])
    receiver.secret = secret.encode()
    try:
        assert _alert_and_deliver(engine, settings) == 0
        assert receiver.seen == []
    finally:
        receiver.close()
    [refused] = _deliveries(client, key, hook_id)
    assert "user name or password" in refused["last_error"] and "s3cret" not in refused[
        "last_error"]


def test_a_closed_port_and_an_open_one_fail_alike(engine_key: Any) -> None:
    engine, key = engine_key
    settings = _settings(["127.0.0.0/8"])
    client = TestClient(create_app(settings, engine))
    closed, open_ = free_port(), free_port()
    hooks = [_post(client, key, f"http://127.0.0.1:{p}/hook").json() for p in (closed, open_)]
    receiver = Receiver(open_, [404, 404, 404])
    receiver.secret = hooks[1]["secret"].encode()
    try:
        assert _alert_and_deliver(engine, settings) == 0
        assert len(receiver.seen) == 1
    finally:
        receiver.close()
    shown = [{k: d[k] for k in ("status", "last_status", "last_error", "attempts")}
             for h in hooks for d in _deliveries(client, key, h["id"])]
    assert shown[0] == shown[1] == {"status": "pending", "last_status": None,
                                    "last_error": DELIVERY_FAILED, "attempts": 1}
