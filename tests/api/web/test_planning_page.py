"""The planning page and the desk's "None in store" button, on both databases.

Functional checks go through the app (TestClient, signed in with a key): the form lists only
the agency's sites and classes, a plan shows its three charts (SVG images) each with its table,
another agency's site or class is refused on the page, hostile input answers 4xx, never 500.
The charted page is also served for real and checked by axe-core in Chromium at a tablet's and
a 390 px phone's width (the shared demo stack in `test_accessibility` has no weeks of history,
so there the page is checked as a form)."""

from __future__ import annotations

import base64
import re
from typing import Any
from xml.etree import ElementTree

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.app import create_app
from api.config import load_settings
from api.models import NoneInStore
from tests.api.planning_support import END, SECRET, START, build_world
from tests.api.web.test_accessibility import WIDTHS, _check
from tests.api.web.web_support import SCREENSHOTS
from tests.fixtures.live_app import served
from tests.security.security_support import form_token

PLAN: dict[str, Any] = {"site": "north-store", "class": "radio", "from": START.date().isoformat(),
        "to": END.date().isoformat()}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _signed_in(engine: Engine, key: str = "north", zone: str = "UTC") -> TestClient:
    keys = build_world(engine)
    settings = load_settings(environment="test", secret_key=SECRET, planning_time_zone=zone)
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False)
    login = client.post("/web/login", data={"key": keys[key], "csrf": form_token(client)},
                        follow_redirects=False)
    assert login.status_code in (302, 303), login.text
    return client


def _svgs(html: str) -> list[ElementTree.Element]:
    return [ElementTree.fromstring(base64.b64decode(data)) for data in
            re.findall(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)]


def test_the_form_and_a_plan_with_its_charts(engine: Engine) -> None:
    client = _signed_in(engine)
    form = client.get("/web/planning")
    assert form.status_code == 200
    assert "north-annex" in form.text and "south-store" not in form.text
    assert "s-tool" not in form.text  # south shares no tool with north
    assert "South: s-radio" in form.text  # but does share a radio
    answer = client.get("/web/planning", params=PLAN)
    assert answer.status_code == 200, answer.text
    charts = _svgs(answer.text)
    assert len(charts) == 3 and all(c.tag.endswith("svg") for c in charts)
    assert answer.text.count("<table") == 3 and "Sizing" in answer.text
    assert "items today" in answer.text
    pooled = client.get("/web/planning", params={**PLAN, "with": 1})
    assert pooled.status_code == 200 and "<strong>3</strong>items today" in pooled.text


@pytest.mark.parametrize(("change", "code"), [
    ({"site": "south-store"}, 404),
    ({"class": "s-radio"}, 404),
    ({"with_site": "south-store"}, 404),
    ({"from": "2026-02-30"}, 422),
    ({"to": "2000-01-01"}, 422),
    ({"with": 99}, 422),
    ({"with": 7}, 422),
    ({"target": "2"}, 422),
    ({"site": "north\x00store"}, 422),
])
def test_hostile_plans_are_refused_on_the_page(engine: Engine, change: dict[str, Any],
                                               code: int) -> None:
    client = _signed_in(engine)
    answer = client.get("/web/planning", params={**PLAN, **change})
    assert answer.status_code == code, answer.text[:300]
    assert "Traceback" not in answer.text


def _desk_form(client: TestClient) -> str:
    desk = client.get("/web/desk", params={"reader": "n-issue"})
    assert desk.status_code == 200 and "None in store" in desk.text
    found = _CSRF.search(desk.text)
    assert found is not None
    return found.group(1)


def test_the_desk_records_none_in_store(engine: Engine) -> None:
    client = _signed_in(engine)
    csrf = _desk_form(client)
    url = "/web/desk/none-in-store"
    done = client.post(url, data={"csrf": csrf, "reader": "n-issue", "class": "radio"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("noted=true")
    for form, code in (({"reader": "n-issue", "class": "radio"}, 403),  # no token
                       ({"csrf": csrf, "reader": "s-issue", "class": "radio"}, 422),
                       ({"csrf": csrf, "reader": "n-issue", "class": "s-radio"}, 422),
                       ({"csrf": csrf, "reader": "n-issue", "class": "radio\x00"}, 422)):
        assert client.post(url, data=form, follow_redirects=False).status_code == code, form
    with Session(engine) as session:
        rows = session.exec(select(NoneInStore).where(NoneInStore.client_id != "test")).all()
    assert [(r.agency_id, r.site_id, r.class_id) for r in rows] == [
        ("north", "north-store", "radio")]


def test_a_read_only_key_sees_no_button_and_cannot_post(engine: Engine) -> None:
    client = _signed_in(engine, "north-reader")
    desk = client.get("/web/desk", params={"reader": "n-issue"})
    assert "None in store" not in desk.text
    csrf = _CSRF.search(client.get("/web/planning").text)
    token = csrf.group(1) if csrf else ""
    answer = client.post("/web/desk/none-in-store", data={
        "csrf": token, "reader": "n-issue", "class": "radio"}, follow_redirects=False)
    assert answer.status_code == 403


@pytest.mark.parametrize("width", WIDTHS)
def test_the_charted_page_is_accessible_and_fits(browser: Any, engine: Engine,
                                                 width: str) -> None:
    keys = build_world(engine)
    app = create_app(load_settings(environment="test", secret_key=SECRET), engine)
    with served(app) as url:
        page = browser.new_page(viewport=WIDTHS[width])
        page.goto(url + "/web/login")
        page.fill("#key", keys["north"])
        page.click("#key-submit")
        page.wait_for_url(url + "/web/")
        query = "&".join(f"{k}={v}" for k, v in PLAN.items())
        answer = page.goto(f"{url}/web/planning?{query}&with=1")
        assert answer.status == 200
        assert page.locator("figure img").count() == 3
        _check(page, f"/web/planning at {width}")
        page.screenshot(path=str(SCREENSHOTS / f"planning-test-{width}.png"), full_page=True)
        page.goto(f"{url}/web/planning?{query}")  # one store: with the replay form
        _check(page, f"/web/planning, one store, at {width}")
        page.fill("#replay-items", "1")
        page.click("button:has-text('Replay')")
        page.wait_for_url(re.compile(r".*/web/planning/replay\?.*"))
        assert "refused" in page.inner_text("main")
        _check(page, f"/web/planning/replay at {width}")
        page.close()


def test_a_day_replayed_on_the_page(engine: Engine) -> None:
    client = _signed_in(engine)
    day = {"site": "north-store", "class": "radio", "day": PLAN["from"]}
    plan = client.get("/web/planning", params=PLAN)
    assert 'action="/web/planning/replay"' in plan.text
    one = client.get("/web/planning/replay", params={**day, "items": 1, "loan_h": ""})
    assert one.status_code == 200 and "refused</strong>" in one.text
    assert "09:00:00" in one.text  # the second radio asked for while the only one is out
    three = client.get("/web/planning/replay", params={**day, "items": 3, "loan_h": "8"})
    assert "Nothing would have been refused" in three.text
    for bad, code in (({"items": 0}, 422), ({"items": 1, "loan_h": "nan"}, 422),
                      ({"items": 1, "loan_h": "-2"}, 422), ({"items": 1, "loan_h": "1e9"}, 422),
                      ({"items": 1, "site": "south-store"}, 404),
                      ({"items": 1, "class": "s-radio"}, 404),
                      ({"items": 1, "day": "2026-02-30"}, 422),
                      ({"items": 1, "site": "north\x00store"}, 422)):
        answer = client.get("/web/planning/replay", params={**day, **bad})
        assert answer.status_code == code, (bad, answer.text[:300])


def test_the_page_speaks_the_stores_time_zone(engine: Engine) -> None:
    """With the stores in New York (five hours behind UTC in November) the chart, its caption
    and the replayed day read in the stores' hours: the 09:00 UTC ask shows at 04:00."""
    client = _signed_in(engine, zone="America/New_York")
    plan = client.get("/web/planning", params=PLAN)
    assert plan.status_code == 200, plan.text[:300]
    assert "Demand by hour of day (America/New_York)" in plan.text
    assert "America/New_York days" in plan.text and "UTC" not in plan.text
    day = {"site": "north-store", "class": "radio", "day": PLAN["from"], "items": 1}
    replayed = client.get("/web/planning/replay", params=day)
    assert replayed.status_code == 200, replayed.text[:300]
    assert "Asked at (America/New_York)" in replayed.text and "04:00:00" in replayed.text
    assert "09:00:00" not in replayed.text
