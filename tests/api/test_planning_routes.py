"""The planning routes on both databases: "none in store" recorded at the desk's scope, a
pool's plan and a replayed day read at `assets:read`, bounded (422), another agency's sites
and classes answered 404, hostile input refused; and nothing written to the custody log."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from api.app import create_app
from api.config import load_settings
from api.models import CustodyEventRow, NoneInStore, RegistryRecordRow
from api.models.custody import AgencyLog
from tests.api.planning_support import END, SECRET, START, build_world, h

FROM, TO = START.date().isoformat(), (END - timedelta(days=1)).date().isoformat()
POOL: dict[str, Any] = {"site": "north-store", "class": "radio", "from": FROM, "to": TO,
                        "runs": 3}


def _client(engine: Engine) -> tuple[TestClient, dict[str, str]]:
    keys = build_world(engine)
    settings = load_settings(environment="test", secret_key=SECRET)
    return TestClient(create_app(settings, engine), raise_server_exceptions=False), keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _log_size(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (session.exec(select(func.count()).select_from(CustodyEventRow)).one(),
                session.exec(select(func.count()).select_from(RegistryRecordRow)).one(),
                int(session.exec(select(func.sum(AgencyLog.size))).one() or 0))


def test_a_pool_plan_reads_and_writes_nothing(engine: Engine) -> None:
    client, keys = _client(engine)
    before = _log_size(engine)
    answer = client.get("/v1/planning/pools", params=POOL, headers=_auth(keys["north-reader"]))
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert plan["pool"]["items"] == 2 and plan["pool"]["site_ids"] == ["north-store"]
    assert (plan["pool"]["from"], plan["pool"]["to"]) == (FROM, TO)
    demand = plan["demand"]
    assert (demand["requests"], demand["unmet"], demand["bookings"], demand["no_shows"]) == (
        7, 2, 2, 1)  # the no-show is a request (a booking), asking nothing of the desk
    assert len(demand["rate_by_hour_of_day"]) == 24 and len(demand["rate_by_day_of_week"]) == 7
    assert all(r["low"] <= r["value"] <= r["high"] for r in demand["rate_by_hour_of_day"])
    assert demand["out_of_service_share"] > 0
    sizes = [row["items"] for row in plan["sizing"]]
    assert sizes == list(range(sizes[0], sizes[-1] + 1)) and 2 in sizes
    assert plan["today"]["items"] == 2
    assert {w["key"] for w in plan["what_ifs"]} == {"surge", "loan_longer", "loan_shorter"}
    assert len(plan["daily_use"]) == 7
    # The same seed, the same figures.
    again = client.get("/v1/planning/pools", params=POOL, headers=_auth(keys["north-reader"]))
    assert again.json()["sizing"] == plan["sizing"]
    assert _log_size(engine) == before


def test_pooling_with_what_another_agency_shares(engine: Engine) -> None:
    client, keys = _client(engine)
    answer = client.get("/v1/planning/pools", params={
        **POOL, "with_agency": "south", "with_class": "s-radio"}, headers=_auth(keys["north"]))
    assert answer.status_code == 200, answer.text
    assert answer.json()["pool"]["items"] == 3  # S-2 is south's own
    assert answer.json()["demand"]["requests"] == 8
    # South shares no tool with north; a class of north's is not south's; unknown agency.
    for other in ({"with_agency": "south", "with_class": "s-tool"},
                  {"with_agency": "south", "with_class": "radio"},
                  {"with_agency": "nobody", "with_class": "s-radio"}):
        refused = client.get("/v1/planning/pools", params={**POOL, **other},
                             headers=_auth(keys["north"]))
        assert refused.status_code == 404, other


@pytest.mark.parametrize(("change", "code"), [
    ({"site": "south-store"}, 404),
    ({"class": "s-radio"}, 404),
    ({"class": "no-such-class"}, 404),
    ({"from": "2026-13-01"}, 422),
    ({"from": "yesterday"}, 422),
    ({"from": TO, "to": FROM}, 422),
    ({"from": "2020-01-01"}, 422),  # more than two years
    ({"runs": 201}, 422),
    ({"runs": "many"}, 422),
    ({"max_items": 501}, 422),
    ({"target": 1}, 422),
    ({"target": "nan"}, 422),
    ({"seed": -1}, 422),
    ({"with_agency": "south"}, 422),  # without its class
    ({"site": "north\x00store"}, 422),
    ({"class": "r" * 200}, 422),
])
def test_hostile_plans_are_refused(engine: Engine, change: dict[str, Any], code: int) -> None:
    client, keys = _client(engine)
    answer = client.get("/v1/planning/pools", params={**POOL, **change},
                        headers=_auth(keys["north"]))
    assert answer.status_code == code, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_too_many_sites_and_the_scope(engine: Engine) -> None:
    client, keys = _client(engine)
    many = client.get("/v1/planning/pools", params={**POOL, "site": ["north-store"] * 11},
                      headers=_auth(keys["north"]))
    assert many.status_code == 422
    assert client.get("/v1/planning/pools", params=POOL,
                      headers=_auth(keys["north-desk"])).status_code == 403
    assert client.get("/v1/planning/pools", params=POOL).status_code == 401


def test_none_in_store_is_recorded_at_the_desks_scope(engine: Engine) -> None:
    client, keys = _client(engine)
    before = _log_size(engine)
    url = "/v1/sites/north-store/none-in-store"
    made = client.post(url, json={"class_id": "radio"}, headers=_auth(keys["north-desk"]))
    assert made.status_code == 201, made.text
    assert made.json()["site_id"] == "north-store" and made.json()["class_id"] == "radio"
    at = h(100).isoformat()
    dated = client.post(url, json={"class_id": "radio", "at": at},
                        headers=_auth(keys["north"]))
    assert dated.status_code == 201 and dated.json()["at"].startswith(at[:19])
    hostile = [
        (url, {"class_id": "radio"}, "north-reader", 403),
        ("/v1/sites/south-store/none-in-store", {"class_id": "radio"}, "north", 404),
        ("/v1/sites/nowhere/none-in-store", {"class_id": "radio"}, "north", 404),
        (url, {"class_id": "s-radio"}, "north", 422),
        (url, {"class_id": "radio\x00"}, "north", 422),
        (url, {"class_id": "radio", "at": "2999-01-01T00:00:00Z"}, "north", 422),
        (url, {"class_id": "radio", "at": "2000-01-01T00:00:00Z"}, "north", 422),
        (url, {"class_id": "radio", "at": "2026-01-01T00:00:00"}, "north", 422),  # naive
        (url, {"class_id": "radio", "extra": 1}, "north", 422),
        (url, {"class_id": 7}, "north", 422),
        (url, {}, "north", 422),
    ]
    for path, body, key, code in hostile:
        answer = client.post(path, json=body, headers=_auth(keys[key]))
        assert answer.status_code == code, (body, answer.text)
    with Session(engine) as session:
        rows = session.exec(select(NoneInStore).where(NoneInStore.client_id != "test")).all()
    assert len(rows) == 2 and {r.agency_id for r in rows} == {"north"}
    assert _log_size(engine) == before


def test_replay_says_what_a_changed_pool_would_refuse(engine: Engine) -> None:
    client, keys = _client(engine)
    before = _log_size(engine)
    day = {"site": "north-store", "class": "radio", "day": FROM}
    one = client.post("/v1/planning/replay", json={**day, "items": 1},
                      headers=_auth(keys["north-reader"]))
    assert one.status_code == 200, one.text
    # Monday: out at 8 h (2 h) and 9 h (3 h), two refusals at 11 h, out at 20 h. One radio
    # meets 8 h, refuses 9 h (the first is out until 10 h) and both 11 h asks (9 h's would
    # not have been lent, so the radio is back at 10 h, but a refused ask holds the median
    # loan if it had been met: refused asks are held too), then meets 20 h.
    body = one.json()
    assert (body["class"], body["day"], body["items"]) == ("radio", FROM, 1)
    assert body["requests"] == 5 and body["recorded_unmet"] == 2
    assert body["refused"][0]["at"][11:16] == "09:00"
    three = client.post("/v1/planning/replay", json={**day, "items": 3},
                        headers=_auth(keys["north-reader"])).json()
    assert three["refused_count"] == 0
    for bad, code in (({"items": 0}, 422), ({"items": "2"}, 422), ({"items": 501}, 422),
                      ({"items": 1, "site": "south-store"}, 404),
                      ({"items": 1, "class": "s-radio"}, 404),
                      ({"items": 1, "max_loan_s": -5}, 422),
                      ({"items": 1, "day": "2026-02-30"}, 422)):
        answer = client.post("/v1/planning/replay", json={**day, **bad},
                             headers=_auth(keys["north"]))
        assert answer.status_code == code, (bad, answer.text)
    assert _log_size(engine) == before


def test_an_agency_plans_one_pool_at_a_time(engine: Engine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan costs seconds of CPU or more: while one of the agency's plans is worked out, a
    second answers 429 with Retry-After rather than taking another worker; once the first is
    done the agency is served again. The first plan is
    held inside the guard by waiting on an event as it reads its history (the only stand-in:
    a real plan's length depends on the machine)."""
    import threading

    from api.planning import report

    client, keys = _client(engine)
    reading, release = threading.Event(), threading.Event()
    history_of = report.history_of

    def held(*args: Any, **kwargs: Any) -> Any:
        reading.set()
        assert release.wait(60)
        return history_of(*args, **kwargs)

    monkeypatch.setattr(report, "history_of", held)
    first: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: first.update(answer=client.get(
        "/v1/planning/pools", params=POOL, headers=_auth(keys["north-reader"]))))
    worker.start()
    assert reading.wait(30)
    busy = client.get("/v1/planning/pools", params=POOL, headers=_auth(keys["north-reader"]))
    release.set()
    worker.join(timeout=120)
    assert busy.status_code == 429, busy.text[:200]
    assert busy.headers["retry-after"] == str(report.BUSY_RETRY_S)
    assert busy.json()["type"].endswith("/planning-busy")
    assert first["answer"].status_code == 200, first["answer"].text[:200]
    after = client.get("/v1/planning/pools", params=POOL, headers=_auth(keys["north-reader"]))
    assert after.status_code == 200 and not report._planning


def test_hours_and_days_are_the_stores_own(engine: Engine) -> None:
    """With `planning_time_zone` the same requests count in the stores' hours (New York is
    five hours behind UTC in November), its days bound the period, and the answer says which
    zone; a zone that does not exist is refused when the settings load."""
    from api.errors import ConfigError

    keys = build_world(engine)
    hours: dict[str, list[int]] = {}
    for zone in ("UTC", "America/New_York"):
        settings = load_settings(environment="test", secret_key=SECRET, planning_time_zone=zone)
        client = TestClient(create_app(settings, engine), raise_server_exceptions=False)
        answer = client.get("/v1/planning/pools", params=POOL,
                            headers=_auth(keys["north-reader"]))
        assert answer.status_code == 200, answer.text[:300]
        plan = answer.json()
        assert plan["pool"]["time_zone"] == zone
        hours[zone] = [h for h, rate in enumerate(plan["demand"]["rate_by_hour_of_day"])
                       if rate["value"] > 0]
    assert hours["UTC"] and hours["America/New_York"] == sorted(
        (h - 5) % 24 for h in hours["UTC"])
    with pytest.raises(ConfigError, match="unknown time zone"):
        load_settings(environment="test", secret_key=SECRET, planning_time_zone="Mars/Olympus")
