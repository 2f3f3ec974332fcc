"""Readiness condition by condition, on SQLite and PostgreSQL (the `engine` fixture), with
the real anchoring service: a chain node unreachable for longer than allowed, a backlog over
the threshold, an ingest worker that stopped reporting, rows of another node, hostile reasons;
the gauge that mirrors `/readyz`; key paths that must be absolute in production."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.anchoring import AnchoringService
from api.app import create_app
from api.broker_status import (
    STALE_AFTER_S,
    BrokerReporter,
    BrokerState,
    expect_workers,
    forget_node,
    write_status,
)
from api.config import load_settings
from api.errors import ConfigError
from api.metrics import watch_readiness
from api.models import AssetClass, BrokerStatus
from api.models.assets import AssetCreate
from api.models.broker import MAX_BROKER_REASON_CHARS
from api.registry import create_asset
from tests.api.api_support import register_reader
from tests.fixtures.ports import free_port

SECRET = "r" * 40
METRICS_KEY = "readiness-" + "m" * 32
NODE = "node-r"


def _settings(tmp_path: Path, **extra: Any) -> Any:
    return load_settings(environment="test", secret_key=SECRET, log_key_dir=tmp_path / "keys",
                         metrics_key=METRICS_KEY, node_id=NODE, **extra)


def _client(engine: Engine, tmp_path: Path, **extra: Any) -> TestClient:
    settings = _settings(tmp_path, **extra)
    watch_readiness(engine, settings, NODE)  # as `serve` does for each HTTP worker
    return TestClient(create_app(settings, engine), raise_server_exceptions=False,
                      headers={"Authorization": f"Bearer {METRICS_KEY}"})


def _leaves(engine: Engine, count: int) -> None:
    """`count` registrations: each is one leaf of the north log."""
    register_reader(engine)
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        for number in range(count):
            create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
                id=f"R-{number}", class_id="radio", epc_hex=f"E280116060000205{number:08X}",
                home_site_id="north-store"))
        session.commit()


def _gauge(client: TestClient, condition: str) -> str:
    metrics = client.get("/metrics").text
    prefix = f'kitledger_ready_condition{{condition="{condition}"}} '
    (line,) = [row for row in metrics.splitlines() if row.startswith(prefix)]
    return line.removeprefix(prefix)


# -- anchoring: a chain node unreachable for long --------------------------------------------

def _unreachable_node(tmp_path: Path, engine: Engine) -> None:
    """The anchoring process against a node nobody listens on, with a key it cannot use yet."""
    key_file = tmp_path / "admin.key"
    key_file.write_text("0x" + "11" * 32)
    key_file.chmod(0o600)
    service = AnchoringService(_settings(
        tmp_path, anchor_chain_url=f"http://127.0.0.1:{free_port()}",
        anchor_admin_key_file=key_file), engine)
    service.start()
    service.step()
    service.close()


def test_a_chain_node_down_briefly_is_ready_and_down_for_long_is_not(
    engine: Engine, tmp_path: Path
) -> None:
    _leaves(engine, 1)
    _unreachable_node(tmp_path, engine)
    patient = _client(engine, tmp_path)  # the default: 600 s
    assert patient.get("/readyz").status_code == 200
    time.sleep(0.2)
    impatient = _client(engine, tmp_path, anchor_unavailable_max_s=0.1)
    answer = impatient.get("/readyz")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith("anchoring: service: unavailable for ")
    assert "0" * 64 not in detail and "11" * 32 not in detail  # never the key
    assert _gauge(impatient, "anchoring") == "0.0"
    assert _gauge(impatient, "broker") == "1.0"  # no ingest worker here: nothing to wait for


# -- anchoring: the backlog ----------------------------------------------------------------

def test_a_backlog_over_the_threshold_is_not_ready_until_anchored(
    engine: Engine, tmp_path: Path
) -> None:
    _leaves(engine, 3)  # and the reader's registration: 4 leaves or more
    client = _client(engine, tmp_path, anchor_backlog_max=2)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "anchor_backlog: agency north:" in answer.json()["detail"]
    assert "anchor_backlog_max is 2" in answer.json()["detail"]
    assert _gauge(client, "anchor_backlog") == "0.0"
    # Under the threshold: ready.
    assert _client(engine, tmp_path, anchor_backlog_max=1_000).get("/readyz").status_code == 200
    # Signing only, nothing is ever anchored: no backlog to speak of.
    assert _client(engine, tmp_path, anchor_backlog_max=2,
                   anchor_chain_url="none").get("/readyz").status_code == 200
    # The embedded chain anchors the log: the backlog is gone.
    service = AnchoringService(_settings(tmp_path, anchor_interval_s=0.01), engine)
    service.start()
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        service.step()
        time.sleep(0.05)
    service.close()
    assert client.get("/readyz").status_code == 200, client.get("/readyz").text
    assert _gauge(client, "anchor_backlog") == "1.0"


@pytest.mark.parametrize("value", [0, -1, 10**10, "many"])
def test_a_backlog_threshold_out_of_bounds_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="anchor_backlog_max"):
        load_settings(anchor_backlog_max=value)


@pytest.mark.parametrize("value", [0, -5, 10**9, "nan"])
def test_an_unavailable_limit_out_of_bounds_is_refused(value: object) -> None:
    with pytest.raises(ConfigError, match="anchor_unavailable_max_s"):
        load_settings(anchor_unavailable_max_s=value)


# -- the broker, as the ingest workers record it ----------------------------------------------

def test_a_node_is_ready_only_when_every_ingest_worker_has_subscribed(
    engine: Engine, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    expect_workers(engine, NODE, 2, now)
    client = _client(engine, tmp_path)
    answer = client.get("/readyz")
    assert answer.status_code == 503
    assert "ingest worker 0: starting" in answer.json()["detail"]
    assert "ingest worker 1: starting" in answer.json()["detail"]
    write_status(engine, NODE, 0, BrokerState.SUBSCRIBED, "subscribed", now)
    assert "ingest worker 0" not in client.get("/readyz").json()["detail"]
    write_status(engine, NODE, 1, BrokerState.SUBSCRIBED, "subscribed", now)
    assert client.get("/readyz").status_code == 200
    assert _gauge(client, "broker") == "1.0"
    # Another node's workers are that node's business, whatever they say.
    write_status(engine, "node-other", 0, BrokerState.UNREACHABLE, "down", now)
    assert client.get("/readyz").status_code == 200
    forget_node(engine, NODE)
    assert client.get("/readyz").status_code == 200  # no ingest here any more: API only


def test_a_worker_that_stops_reporting_makes_the_node_not_ready(
    engine: Engine, tmp_path: Path
) -> None:
    long_ago = datetime.now(UTC) - timedelta(seconds=STALE_AFTER_S + 5)
    write_status(engine, NODE, 0, BrokerState.SUBSCRIBED, "subscribed", long_ago)
    answer = _client(engine, tmp_path).get("/readyz")
    assert answer.status_code == 503
    assert "ingest worker 0: stale: has not reported for" in answer.json()["detail"]


def test_rows_of_nodes_gone_for_a_day_are_removed_when_a_node_starts(engine: Engine) -> None:
    now = datetime.now(UTC)
    write_status(engine, "killed-long-ago", 0, BrokerState.SUBSCRIBED, "", now - timedelta(
        days=2))
    write_status(engine, "killed-just-now", 0, BrokerState.SUBSCRIBED, "", now)
    expect_workers(engine, NODE, 1, now)
    with Session(engine) as session:
        assert session.get(BrokerStatus, ("killed-long-ago", 0)) is None
        assert session.get(BrokerStatus, ("killed-just-now", 0)) is not None


def test_a_hostile_reason_is_cut_to_one_bounded_line_and_a_replayed_state_keeps_its_since(
    engine: Engine, tmp_path: Path
) -> None:
    first = datetime.now(UTC)
    hostile = "x" * 10_000 + "\nsecond line"
    write_status(engine, NODE, 0, BrokerState.UNREACHABLE, hostile, first)
    write_status(engine, NODE, 0, BrokerState.UNREACHABLE, hostile, first + timedelta(seconds=5))
    with Session(engine) as session:
        row = session.get(BrokerStatus, (NODE, 0))
        assert row is not None
        assert len(row.reason) == MAX_BROKER_REASON_CHARS and row.since == first
    detail = _client(engine, tmp_path).get("/readyz").json()["detail"]
    assert "second line" not in detail and len(detail) < 2 * MAX_BROKER_REASON_CHARS


def test_the_reporter_logs_a_line_a_minute_while_unsubscribed_and_one_when_it_recovers(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kitledger.broker")
    reporter = BrokerReporter(engine, NODE, 0)
    start = time.time()
    reporter.report(BrokerState.CONNECTING, "mqtt h:1: connecting", start)
    for second in range(1, 70):  # 70 s without the broker, a report every second
        reporter.report(BrokerState.UNREACHABLE, "mqtt h:1: connection refused", start + second)
    reporter.report(BrokerState.SUBSCRIBED, "subscribed", start + 70)
    lines = [r for r in caplog.records if r.name == "kitledger.broker"]
    assert [r.levelname for r in lines] == ["ERROR", "ERROR", "INFO"]
    assert "for 5 s: mqtt h:1: connection refused" in lines[0].getMessage()
    assert "for 65 s" in lines[1].getMessage()
    assert "again after 70.0 s" in lines[2].getMessage()
    # A worker that subscribes within a few seconds (a normal start) logs nothing.
    caplog.clear()
    quick = BrokerReporter(engine, NODE, 1)
    quick.report(BrokerState.CONNECTING, "mqtt h:1: connecting", start)
    quick.report(BrokerState.SUBSCRIBED, "subscribed", start + 2)
    assert [r for r in caplog.records if r.name == "kitledger.broker"] == []


# -- key paths ---------------------------------------------------------------------------

@pytest.mark.parametrize("setting", ["log_key_dir", "anchor_admin_key_file"])
@pytest.mark.parametrize("path", ["keys", "./keys", "../../etc/kitledger/keys", "~/keys"])
def test_production_refuses_a_relative_key_path_in_one_line(setting: str, path: str) -> None:
    others: dict[str, Any] = {"log_key_dir": "/var/lib/kitledger/keys"}
    with pytest.raises(ConfigError) as info:
        load_settings(environment="production", secret_key=SECRET, **{**others, setting: path})
    message = str(info.value)
    assert f"{setting} must be an absolute path in production" in message
    assert "\n" not in message


def test_production_refuses_a_path_relative_to_its_config_file(tmp_path: Path) -> None:
    config = tmp_path / "kitledger.toml"
    config.write_text(f'environment = "production"\nsecret_key = "{SECRET}"\n'
                      'log_key_dir = "keys"\n')
    with pytest.raises(ConfigError, match="log_key_dir must be an absolute path"):
        load_settings(config)
    # The default (kitledger-keys) is relative too: production must say where keys live.
    config.write_text(f'environment = "production"\nsecret_key = "{SECRET}"\n')
    with pytest.raises(ConfigError, match="log_key_dir must be an absolute path"):
        load_settings(config)
    config.write_text(f'environment = "production"\nsecret_key = "{SECRET}"\n'
                      f'log_key_dir = "{tmp_path / "keys"}"\n'
                      f'anchor_admin_key_file = "{tmp_path / "admin.key"}"\n')
    settings = load_settings(config)
    assert settings.log_key_dir == tmp_path / "keys"
    assert settings.anchor_admin_key_file == tmp_path / "admin.key"

