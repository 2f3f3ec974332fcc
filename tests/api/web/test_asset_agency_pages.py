"""The asset page and the agency page's utilisation, served by uvicorn on SQLite and
PostgreSQL over custody history with known answers.

North has four radios (two out from 02:00 to 05:00 on the test day, a fifth retired before
it), two cameras (one out since the day before, the other retired at noon) and two tasers
(one disposed of at 06:00, the other out from 18:00 and back the next day). Each figure the
page prints is checked against the arithmetic done by hand in the test.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, SQLModel

from api.app import create_app
from api.auth import Caller, create_api_client
from api.config import load_settings
from api.custody.corrections import retire_asset
from api.custody.events import CustodyChange, append_change
from api.logstore import appending_log, claim_log_writer
from api.models import Agency, Asset, ReaderHealth, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate, AssetStatus, HolderKind
from api.models.ingest import ForeignSighting
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_class, create_person
from api.web.session import COOKIE, open_session
from api.web.utilisation import Change, History, Period, Step, Use, utilisation
from tests.api.api_support import register_reader
from tests.fixtures.live_app import served

SECRET = "u" * 40
DAY = date(2026, 3, 2)
D0 = datetime(2026, 3, 2, tzinfo=UTC)
GS1_EPC = "3034257BF7194E4000001A85"
GS1_URI = "urn:epc:id:sgtin:0614141.812345.6789"
Row = TypeVar("Row", bound=SQLModel)


def _at(hours: float) -> datetime:
    return D0 + timedelta(hours=hours)


def _north(session: Session, model: type[Row], row_id: str) -> Row:
    """North's row `row_id` (sites and assets are keyed by agency and id)."""
    row = session.get(model, {"agency_id": "north", "id": row_id})
    assert row is not None, row_id
    return row


def _move(session: Session, asset_id: str, action: str, at: datetime,
          person: str | None = None) -> None:
    asset = _north(session, Asset, asset_id)
    claim_log_writer(session, at)
    out = action in ("check_out", "transfer")
    status = {"check_out": AssetStatus.CHECKED_OUT, "check_in": AssetStatus.IN_STORE,
              "dispose": AssetStatus.DISPOSED}[action]
    with appending_log(session) as log:
        append_change(session, log, asset, CustodyChange(
            action=action, holder_kind=HolderKind.PERSON if out else HolderKind.LOCATION,
            holder_ref=person if out and person else asset.home_site_id, new_status=status,
            time=at, authorisers=(person,) if out and person else (), reader_id="desk-1"))
    session.commit()


@dataclass
class World:
    url: str
    keys: dict[str, str]
    cookies: dict[str, str]


def _populate(engine: Engine) -> tuple[dict[str, str], dict[str, str]]:
    register_reader(engine, reader_id="desk-1", role=ReaderRole.ISSUE_DESK)
    register_reader(engine, agency_id="south", site_id="south-store", reader_id="south-gate")
    before = _at(-12)
    keys, cookies = {}, {}
    with Session(engine) as session:
        _north(session, Site, "north-store").name = "North property store"
        session.get(Agency, "south").name = "South fire service"  # type: ignore[union-attr]
        for class_id, name in (("radio", "Radio"), ("camera", "Body camera"),
                               ("taser", "Taser")):
            create_class(session, agency_id="north", now=before,
                         data=AssetClassCreate(id=class_id, name=name))
        session.flush()
        for person in ("alice", "bob"):
            create_person(session, agency_id="north", now=before, data=PersonCreate(id=person))
        assets = [(f"R-{n}", "radio") for n in range(5)] + [
            ("C-0", "camera"), ("C-1", "camera"), ("T-0", "taser"), ("T-1", "taser")]
        for n, (asset_id, class_id) in enumerate(assets):
            epc = GS1_EPC if asset_id == "R-0" else f"E2801160600002050000{n:04d}"
            create_asset(session, agency_id="north", now=before, data=AssetCreate(
                id=asset_id, class_id=class_id, epc_hex=epc, home_site_id="north-store"))
        for agency, scopes in (("north", list(Scope)), ("reader", [Scope.ASSETS_READ]),
                               ("stores", [Scope.ASSETS_READ, Scope.CUSTODY_WRITE]),
                               ("south", list(Scope))):
            client, keys[agency] = create_api_client(
                session, agency_id="south" if agency == "south" else "north", name=agency,
                scopes=scopes, server_secret=SECRET, now=before)
            cookies[agency] = open_session(session, Caller(
                client.id, client.agency_id, frozenset(client.scopes)), datetime.now(UTC))
        session.commit()
    with Session(engine) as session:
        retire_asset(session, asset=_north(session, Asset, "R-4"), reason="broken",
                     now=_at(-6))
        session.commit()
    with Session(engine) as session:
        _move(session, "C-0", "check_out", _at(-4), "bob")
        _move(session, "R-0", "check_out", _at(2), "alice")
        _move(session, "R-1", "check_out", _at(2), "bob")
        _move(session, "R-0", "check_in", _at(5))
        _move(session, "R-1", "check_in", _at(5))
        _move(session, "T-1", "dispose", _at(6))
        retire_asset(session, asset=_north(session, Asset, "C-1"), reason="lost",
                     now=_at(12))
        session.commit()
        _move(session, "T-0", "check_out", _at(18), "alice")
        _move(session, "T-0", "check_in", _at(25))
        session.add(ForeignSighting(owner_id="north", asset_id="R-0",
                                    reporting_agency_id="south",
                                    reader_id="south-gate", site_id="south-store",
                                    first_seen_at=_at(3), last_seen_at=_at(4), count=7))
        radio = _north(session, Asset, "R-0")
        radio.last_seen_at, radio.last_seen_reader_id = _at(5), "desk-1"
        radio.last_seen_site_id = "north-store"
        session.add(radio)
        session.commit()
    return keys, cookies


@pytest.fixture
def world(engine: Engine, tmp_path: Path) -> Iterator[World]:
    keys, cookies = _populate(engine)
    settings = load_settings(environment="test", secret_key=SECRET,
                             log_key_dir=tmp_path / "keys")
    with served(create_app(settings, engine)) as url:
        yield World(url, keys, cookies)


def _page(world: World, path: str, who: str = "north", html: bool = True) -> tuple[int, str]:
    request = urllib.request.Request(world.url + path, headers={
        "Cookie": f"{COOKIE}={world.cookies[who]}", "Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        kind = error.headers["content-type"]
        assert kind.startswith("text/html") or not html, (path, kind)
        return error.code, error.read().decode()


def _shares(html: str, class_id: str) -> dict[str, str]:
    """The class's table: bucket label -> share as printed."""
    figure = re.search(rf'<figure class="use" data-class="{class_id}">(.*?)</figure>', html,
                       re.S)
    assert figure, class_id
    return dict(re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td>", figure.group(1)))


def _hours(*shares: tuple[range, str]) -> dict[str, str]:
    expected = {}
    for hours, share in shares:
        expected.update({f"{h:02d}:00": share for h in hours})
    return expected


def test_utilisation_by_hour_and_day_from_custody_history(world: World) -> None:
    status, html = _page(world, "/web/agency?from=2026-03-02&to=2026-03-02&by=hour")
    assert status == 200, html
    # 2 of 4 radios (the fifth retired the day before) out 02:00-05:00.
    assert _shares(html, "radio") == _hours((range(0, 2), "0.0 %"), (range(2, 5), "50.0 %"),
                                            (range(5, 24), "0.0 %"))
    # One camera out all along; its pool of two becomes one at noon (the other retired).
    assert _shares(html, "camera") == _hours((range(0, 12), "50.0 %"),
                                             (range(12, 24), "100.0 %"))
    # Two tasers, one disposed of at 06:00; the other out from 18:00.
    assert _shares(html, "taser") == _hours((range(0, 18), "0.0 %"), (range(18, 24), "100.0 %"))
    assert "2 of 4 out at most" in html  # the radios' highest hour
    status, html = _page(world, "/web/agency?from=2026-03-02&to=2026-03-03&by=day")
    assert status == 200, html
    # Day: 6 radio-hours out of 96; cameras 24 of 36; tasers 6 of 2*6 + 18 = 30.
    assert _shares(html, "radio") == {"02 Mar 2026": "6.2 %", "03 Mar 2026": "0.0 %"}
    assert _shares(html, "camera") == {"02 Mar 2026": "66.7 %", "03 Mar 2026": "100.0 %"}
    # The taser is back at 01:00 on the 3rd: 1 of 24 hours.
    assert _shares(html, "taser") == {"02 Mar 2026": "20.0 %", "03 Mar 2026": "4.2 %"}
    # Each chart is an image with a summary, drawn from the same figures.
    assert re.search(r'<title id="use-\d-title">Radio: share of the pool out by day, '
                     r"mean 3.1 %", html)


def test_overdue_lists_what_is_past_due_with_its_holder(world: World, engine: Engine) -> None:
    due = datetime.now(UTC) - timedelta(hours=30)
    with Session(engine) as session:
        for asset_id, when in (("C-0", due), ("R-2", due - timedelta(days=9))):
            asset = _north(session, Asset, asset_id)
            asset.due_at = when  # R-2 is in store: a due time alone is not overdue
            session.add(asset)
        session.commit()
    status, html = _page(world, "/web/agency")
    assert status == 200
    overdue = html.split('class="list overdue"')[1].split("</table>")[0]
    rows = re.findall(r'<tr><td><a href="/web/assets/([^"]+)">.*?</td><td>([^<]+)</td>'
                      r'\s*<td class="bad">([^<]+)</td></tr>', overdue)
    assert [(a, holder) for a, holder, _ in rows] == [("C-0", "person bob")]
    assert "(30 h late)" in rows[0][2]


def test_utilisation_refuses_bad_periods_with_a_page(world: World) -> None:
    for query, words in (
        ("from=2026-03-05&to=2026-03-02", "ends before it starts"),
        ("from=2026-01-01&to=2026-06-01&by=day", "at most 92 days"),
        ("from=2026-03-01&to=2026-03-20&by=hour", "by hour, a period is at most 14 days"),
        ("from=yesterday", "date"), ("by=minute", "hour"), ("from=2026-02-30", "date"),
        ("from=" + "9" * 5000, "date"),
    ):
        status, html = _page(world, f"/web/agency?{query}")
        assert status == 422, (query, status)
        assert words in html and "<script" not in html.split("</head>")[1], query
    # A NUL is refused before any route, for pages as for the API (`api.storable_text`).
    assert _page(world, "/web/agency?from=2026-03-02%00", html=False)[0] == 422


def test_asset_page_names_holder_epc_last_seen_and_flags(world: World) -> None:
    headers = {"Authorization": f"Bearer {world.keys['north']}",
               "Content-Type": "application/json"}

    def post(path: str, body: str) -> int:
        request = urllib.request.Request(world.url + path, data=body.encode(),
                                         headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            return int(answer.status)

    assert post("/v1/assets/R-0/manual-entries", '{"action": "check_out", "desk": "desk-1", '
                '"officer": "bob", "holder": "alice", "reason": "tag torn"}') == 201
    correction = json.dumps({"leaf_index": _leaf(world, 1), "reason": "was bob, not alice"})
    assert post("/v1/assets/R-0/corrections", correction) == 201
    status, html = _page(world, "/web/assets/R-0")
    assert status == 200, html
    assert GS1_EPC in html and GS1_URI in html
    assert re.search(r'id="holder">person alice<', html)  # a person, named as such
    assert "Radio" in html and "checked out" in html
    last_seen = re.search(r'id="last-seen">(.*?)</dd>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "2026-03-02 05:00:00 UTC" in last_seen and "desk-1" in last_seen
    assert "North property store" in last_seen
    steps = re.findall(r'<li class="(ok|no)" data-seq="(\d+)"([^>]*)>(.*?)</li>', html, re.S)
    assert [int(seq) for _, seq, _, _ in steps] == [0, 1, 2, 3]
    assert all(mark == "ok" for mark, _, _, _ in steps)  # every step verified against the log
    assert "site North property store" in steps[0][3]
    assert "authorised by alice" in steps[1][3] and 'data-corrected="true"' in steps[1][2]
    assert "was bob, not alice" in steps[1][3]
    assert 'data-manual="true"' in steps[3][2] and "tag torn" in steps[3][3]
    assert "authorised by bob" in steps[3][3]
    assert 'data-manual' not in steps[2][2] and 'data-corrected' not in steps[2][2]
    # A stores officer (custody:write, no audit:read): the same steps, custody only.
    status, html = _page(world, "/web/assets/R-0", "stores")
    assert status == 200 and 'id="custody-only"' in html and "timeline-withheld" not in html
    custody = re.findall(r'<li class="step" data-seq="(\d+)"([^>]*)>(.*?)</li>', html, re.S)
    assert [int(seq) for seq, _, _ in custody] == [0, 1, 2, 3]
    assert "authorised by alice" in custody[1][2] and "was bob, not alice" in custody[1][2]
    assert "tag torn" in custody[3][2]
    assert "leaf" not in html and "/web/audit/assets/" not in html and "✔" not in html
    # The owner sees where another agency's reader read it; the agency named as such.
    foreign = re.search(r'<table class="list foreign".*?</table>', html, re.S).group(0)  # type: ignore[union-attr]
    assert "South fire service" in foreign and "south-gate" in foreign and ">7<" in foreign


def _leaf(world: World, seq: int) -> int:
    request = urllib.request.Request(
        world.url + "/v1/assets/R-0/history",
        headers={"Authorization": f"Bearer {world.keys['north']}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        events = json.loads(answer.read())["events"]
    return int(next(e["leaf_index"] for e in events if e["seq"] == seq))


def test_asset_page_scopes_and_missing_assets(world: World) -> None:
    # assets:read alone: the asset, not its custody history (audit:read on the API too).
    status, html = _page(world, "/web/assets/R-0", "reader")
    assert status == 200 and 'id="timeline-withheld"' in html and "data-seq" not in html
    # Another agency: the same 404 page as for an asset that does not exist.
    for who, path in (("south", "/web/assets/R-0"), ("north", "/web/assets/no-such-asset")):
        status, html = _page(world, path, who)
        assert status == 404 and "asset not found" in html and "<html" in html
        assert "R-0" not in html.split("<main>")[1].replace(path, "")
    status, html = _page(world, "/web/assets/" + "x" * 200)
    assert status == 422 and "<html" in html
    status, html = _page(world, "/web/assets/%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 404 and "<script>alert" not in html


def test_utilisation_pure_known_answers() -> None:
    """The computation alone: a bucket still to come has no share, an asset registered within
    the period joins the pool then, and simultaneous changes apply in order."""
    period = Period.checked(DAY, DAY, Step.HOUR)
    history = History(
        classes={"a": "k", "b": "k"}, initial={"a": Use.IN},
        changes=[Change("b", _at(10), Use.IN), Change("a", _at(10), Use.OUT),
                 Change("a", _at(10), Use.IN), Change("b", _at(11.5), Use.OUT)])
    (k,) = utilisation(period, history, until=_at(12))
    shares = [b.share for b in k.buckets]
    assert shares[:10] == [0.0] * 10 and shares[10] == 0.0
    assert shares[11] == pytest.approx(0.25)  # b out for half of the hour, of a pool of 2
    assert shares[12:] == [None] * 12
    assert k.buckets[11].peak_out == 1 and k.buckets[11].pool == 2
    assert k.mean == pytest.approx(0.5 * 3600 / (10 * 3600 + 2 * 2 * 3600))


@pytest.mark.parametrize(("celsius", "marked"), [(75.0, True), (41.0, False), (None, False)])
def test_the_readers_table_shows_temperature_and_marks_a_hot_reader(
        world: World, engine: Engine, celsius: float | None, marked: bool) -> None:
    with Session(engine) as session:
        session.add(ReaderHealth(reader_id="desk-1", agency_id="north", site_id="north-store",
                                 online=True, reader_connected=True, temperature_c=celsius))
        session.commit()
    status, html = _page(world, "/web/agency")
    assert status == 200
    cell = re.search(r'<td data-label="Temp\." class="([^"]*)">([^<]*)</td>', html)
    assert cell is not None
    assert cell.group(2) == ("—" if celsius is None else f"{celsius:.0f} °C")
    assert (cell.group(1) == "bad") is marked
