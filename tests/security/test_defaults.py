"""Safe defaults: demo keys only in development, /metrics only with the operator's key, and
the placeholder secret only where nobody else can reach it."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.auth import authenticate
from api.config import DEFAULT_SECRET, listen_problem, load_settings
from api.errors import ConfigError
from api.models import ApiClient
from demo.seed import DEMO_LOGIN_NAME, NotDevelopment, demo_logins, seed_registry
from demo.up import _announce
from tests.security.conftest import METRICS_KEY, Service

READER_KEYS = {r: f"{n:02x}" * 32 for n, r in enumerate(("issue-desk", "return-desk", "portal"))}


@pytest.mark.parametrize("environment", ["test", "production"])
def test_no_demo_keys_outside_development(engine: Engine, environment: str) -> None:
    with Session(engine) as session:
        seed_registry(session, READER_KEYS)
        with pytest.raises(NotDevelopment):
            demo_logins(session, "s" * 40, environment)
        assert session.exec(select(ApiClient)).all() == []


def test_each_demo_run_revokes_the_last_runs_keys(engine: Engine) -> None:
    with Session(engine) as session:
        seed_registry(session, READER_KEYS)
        first = demo_logins(session, DEFAULT_SECRET, "development")
        second = demo_logins(session, DEFAULT_SECRET, "development")
        for key in first.values():
            assert authenticate(session, key, DEFAULT_SECRET) is None
        for key in second.values():
            assert authenticate(session, key, DEFAULT_SECRET) is not None
        live = session.exec(select(ApiClient).where(ApiClient.name == DEMO_LOGIN_NAME,
                                                    col(ApiClient.revoked_at).is_(None))).all()
        assert len(live) == 2


def test_up_without_demo_keys_says_how_to_make_one(capsys: pytest.CaptureFixture[str]) -> None:
    _announce("http://127.0.0.1:8000", {}, Path("var"))
    assert "kitledger api-client create" in capsys.readouterr().out


def test_metrics_need_the_operators_key(service: Service, engine: Engine) -> None:
    assert service.call("", "GET", "/metrics").status_code == 401
    assert service.call("all", "GET", "/metrics").status_code == 401  # an agency key is not it
    answer = service.client.get("/metrics",
                                headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert answer.status_code == 200 and b"kitledger_ingest_messages_total" in answer.content
    unset = TestClient(create_app(load_settings(environment="test", secret_key="s" * 40),
                                  engine), raise_server_exceptions=False)
    closed = unset.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert closed.status_code == 404 and b"agency" not in closed.content


@pytest.mark.parametrize("metrics_key", ["changeme", "short"])
def test_a_placeholder_metrics_key_is_refused(metrics_key: str) -> None:
    with pytest.raises(ConfigError, match="METRICS_KEY") as info:
        load_settings(metrics_key=metrics_key)
    assert metrics_key not in str(info.value).replace("METRICS_KEY", "")


@pytest.mark.parametrize(("host", "allowed"), [
    ("127.0.0.1", True), ("127.8.9.1", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("kitledger.example", False), ("", False)])
def test_the_placeholder_secret_serves_loopback_only(host: str, allowed: bool) -> None:
    placeholder = load_settings()
    assert (listen_problem(placeholder, host) is None) is allowed
    real = load_settings(secret_key="r" * 40)
    assert listen_problem(real, host) is None
