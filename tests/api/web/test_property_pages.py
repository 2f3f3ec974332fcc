"""The property room's pages on both databases: maintenance (schedules and items due per
class, a check recorded, an item out of and back into service) and bookings (made for named
items or N of a class, a conflict listing the bookings in its way, cancelled), each through
the REST route's own function so its log record or audit row is written as the API writes it;
each custody step's receipt fetched with the page's session; and hostile forms: a read-only
role, a forged or missing form token, another agency's ids, NUL bytes and oversized fields."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.accounts.admin import create_local
from api.accounts.roles import StaffRole
from api.models import Refusal
from api.models.maintenance import MaintenanceWork, Reservation, ReservationAudit
from api.web.session import COOKIE, open_account_session
from tests.api.test_property_room import Api, _manual, _world
from tests.api.test_tiles import _checkpoint

SCHEDULE = {"key": "radio-battery", "name": "battery replacement", "interval_days": 365,
            "blocking": True}
LATER = datetime.now(UTC) + timedelta(days=3)
WINDOW = {"starts_at": LATER.strftime("%Y-%m-%dT%H:%M"),
          "ends_at": (LATER + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M")}


class Browser:
    """A page session of one agency: a staff account of `role`, or an API key's scopes."""

    def __init__(self, client: TestClient, cookie: str) -> None:
        self.client, self.cookie = client, cookie

    def get(self, path: str) -> Any:
        return self.client.get(path, headers={"Accept": "text/html", **self.headers},
                               follow_redirects=False)

    @property
    def headers(self) -> dict[str, str]:
        return {"Cookie": f"{COOKIE}={self.cookie}"}

    def token(self, path: str = "/web/maintenance") -> str:
        found = re.search(r'name="csrf" value="([^"]+)"', self.get(path).text)
        assert found
        return found.group(1)

    def post(self, path: str, form: dict[str, str], token: str | None = None) -> Any:
        return self.client.post(path, data={"csrf": token or self.token(), **form},
                                headers=self.headers, follow_redirects=False)


def _browsers(engine: Engine, client: TestClient) -> dict[str, Browser]:
    now = datetime.now(UTC)
    cookies = {}
    with Session(engine) as session:
        for name, agency, role in (("officer", "north", StaffRole.STORES_OFFICER),
                                   ("viewer", "north", StaffRole.READ_ONLY),
                                   ("auditor", "north", StaffRole.AUDITOR),
                                   ("south", "south", StaffRole.STORES_OFFICER),
                                   ("south-auditor", "south", StaffRole.AUDITOR)):
            account = create_local(session, agency_id=agency, username=name, role=role,
                                   password=None, now=now, actor="cli")
            cookies[name] = open_account_session(session, account, now)
    return {name: Browser(client, cookie) for name, cookie in cookies.items()}


@pytest.fixture
def pages(engine: Engine, tmp_path: Path) -> tuple[Api, dict[str, Browser]]:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    assert north.post("/v1/classes/radio/schedules", SCHEDULE).status_code == 201
    return north, _browsers(engine, client)


def test_maintenance_page_lists_due_items_and_records_work(
        engine: Engine, pages: tuple[Api, dict[str, Browser]]) -> None:
    north, browsers = pages
    officer = browsers["officer"]
    html = officer.get("/web/maintenance").text
    assert "radio-battery" in html and "battery replacement" in html
    states = dict(re.findall(r'data-asset="([^"]+)" data-state="([^"]+)"', html))
    assert states == {"R-0": "never_done", "R-2": "never_done"}
    done = officer.post("/web/maintenance/checks", {"asset": "R-0", "schedule": "radio-battery",
                                                    "result": "pass", "officer": "alice"})
    assert done.status_code == 303, done.text
    failed = officer.post("/web/maintenance/checks", {
        "asset": "R-2", "schedule": "radio-battery", "result": "fail", "officer": "alice"})
    assert failed.status_code == 303
    out = officer.post("/web/maintenance/service", {"asset": "R-0", "change": "out",
                                                    "officer": "bob", "reason": "cracked case"})
    assert out.status_code == 303
    states = dict(re.findall(r'data-asset="([^"]+)" data-state="([^"]+)"',
                             officer.get("/web/maintenance").text))
    assert states == {"R-0": "out_of_service", "R-2": "failed"}
    # The same records as the REST API's: logged with leaves, listed by it.
    due = {(d["asset_id"], d["state"]) for d in north.get("/v1/maintenance/due").json()}
    assert due == {("R-0", "out_of_service"), ("R-2", "failed")}
    with Session(engine) as session:
        work = list(session.exec(select(MaintenanceWork)))
    assert [(w.asset_id, w.result) for w in work] == [
        ("R-0", "pass"), ("R-2", "fail"), ("R-0", "out")]
    assert all(w.leaf_index >= 0 for w in work)
    # Asking twice is refused as on the API, the refusal kept; the form says why.
    again = officer.post("/web/maintenance/service", {"asset": "R-0", "change": "out",
                                                      "officer": "bob", "reason": "again"})
    assert again.status_code == 409 and "Not recorded:" in again.text
    with Session(engine) as session:
        assert session.exec(select(Refusal).where(Refusal.action == "out_of_service")).one()
    assert officer.post("/web/maintenance/service", {
        "asset": "R-0", "change": "back", "officer": "bob", "reason": "new case"}
    ).status_code == 303


def test_bookings_page_books_shows_conflicts_and_cancels(
        engine: Engine, pages: tuple[Api, dict[str, Browser]]) -> None:
    north, browsers = pages
    officer = browsers["officer"]
    named = officer.post("/web/bookings", {"operation": "op-harbour", "kind": "named",
                                           "asset_ids": "R-0", "people": "bob, carol",
                                           **WINDOW})
    assert named.status_code == 303, named.text
    first = north.get("/v1/reservations").json()[0]
    assert first["asset_ids"] == ["R-0"] and first["people"] == ["bob", "carol"]
    assert first["starts_at"].startswith(WINDOW["starts_at"])  # read as UTC
    # Two radios: R-0 is named, so two more of the class conflict, listed as the API's 409.
    clash = officer.post("/web/bookings", {"operation": "op-parade", "kind": "class",
                                           "class_id": "radio", "quantity": "2",
                                           "people": "alice", **WINDOW})
    assert clash.status_code == 409 and "want 3" in clash.text
    listed = re.search(r'<table class="list stack" id="conflicts">(.*?)</table>', clash.text,
                       re.S)
    assert listed and re.findall(r'data-booking="(\d+)"', listed.group(1)) == [
        str(first["id"])]
    api_clash = north.post("/v1/reservations", {
        "operation": "op-parade", "class_id": "radio", "quantity": 2, "people": ["alice"],
        "starts_at": first["starts_at"], "ends_at": first["ends_at"]})
    assert [c["id"] for c in api_clash.json()["conflicts"]] == [first["id"]]
    assert officer.post("/web/bookings", {"operation": "op-parade", "kind": "class",
                                          "class_id": "radio", "quantity": "1",
                                          "people": "alice", **WINDOW}).status_code == 303
    html = officer.get("/web/bookings").text
    assert html.count('data-booking="') == 2 and "1 of radio" in html
    cancelled = officer.post(f"/web/bookings/{first['id']}/cancel", {})
    assert cancelled.status_code == 303
    assert officer.post(f"/web/bookings/{first['id']}/cancel", {}).status_code == 409
    with Session(engine) as session:
        audit = list(session.exec(select(ReservationAudit).where(
            ReservationAudit.reservation_id == first["id"])))
        account = session.exec(select(Reservation)).first()
    assert [a.change for a in audit] == ["created", "cancelled"]
    assert account is not None and all(a.client_id == account.client_id for a in audit)
    assert account.client_id.startswith("account:")  # who, for the audit trail


@pytest.mark.parametrize("path, form", [
    ("/web/maintenance/checks", {"asset": "R-0", "schedule": "radio-battery", "result": "pass",
                                 "officer": "alice"}),
    ("/web/maintenance/service", {"asset": "R-0", "change": "out", "officer": "bob",
                                  "reason": "x"}),
    ("/web/bookings", {"operation": "op", "kind": "named", "asset_ids": "R-0",
                       "people": "bob", **WINDOW}),
])
def test_forms_refuse_wrong_roles_and_forged_tokens(
        engine: Engine, pages: tuple[Api, dict[str, Browser]], path: str,
        form: dict[str, str]) -> None:
    browsers = pages[1]
    viewer, officer = browsers["viewer"], browsers["officer"]
    assert "Record check" not in viewer.get("/web/maintenance").text  # no forms shown
    assert viewer.post(path, form).status_code == 403
    assert officer.post(path, form, token="forged" * 8).status_code == 403
    cross = officer.client.post(path, data={"csrf": officer.token(), **form},
                                headers={"Origin": "https://evil.example", **officer.headers})
    assert cross.status_code == 403
    with Session(engine) as session:
        assert session.exec(select(MaintenanceWork)).first() is None
        assert session.exec(select(Reservation)).first() is None


@pytest.mark.parametrize("path, form, said", [
    ("/web/maintenance/checks", {"asset": "S-1", "schedule": "radio-battery",
                                 "result": "pass", "officer": "alice"}, "asset not found"),
    ("/web/maintenance/checks", {"asset": "R-0", "schedule": "radio-battery",
                                 "result": "pass", "officer": "nobody"}, "not one of your"),
    ("/web/maintenance/checks", {"asset": "R-0\x00", "schedule": "radio-battery",
                                 "result": "pass", "officer": "alice"}, "cannot be stored"),
    ("/web/maintenance/checks", {"asset": "R-0", "schedule": "radio-battery",
                                 "result": "maybe", "officer": "alice"}, "result"),
    ("/web/maintenance/service", {"asset": "R-0", "change": "out", "officer": "bob",
                                  "reason": "bad\x00byte"}, "cannot be stored"),
    ("/web/maintenance/service", {"asset": "R-0", "change": "sideways", "officer": "bob",
                                  "reason": "x"}, "change:"),
    ("/web/maintenance/service", {"asset": "R" * 300, "change": "out", "officer": "bob",
                                  "reason": "x"}, "asset:"),
    ("/web/bookings", {"operation": "op", "kind": "named", "asset_ids": "S-1",
                       "people": "bob", **WINDOW}, "not one of your agency"),
    ("/web/bookings", {"operation": "op", "kind": "class", "class_id": "s-radio",
                       "quantity": "1", "people": "bob", **WINDOW}, "not one of your agency"),
    ("/web/bookings", {"operation": "op", "kind": "named", "asset_ids": "R-0",
                       "people": "bob", "starts_at": "tomorrow", "ends_at": "x"}, "starts_at"),
    ("/web/bookings", {"operation": "op", "kind": "class", "class_id": "radio",
                       "quantity": "99999999999", "people": "bob", **WINDOW}, "quantity"),
    ("/web/bookings", {"operation": "o\x00p", "kind": "named", "asset_ids": "R-0",
                       "people": "bob", **WINDOW}, "cannot be stored"),
])
def test_forms_refuse_other_agencies_ids_and_malformed_input(
        engine: Engine, pages: tuple[Api, dict[str, Browser]], path: str,
        form: dict[str, str], said: str) -> None:
    officer = pages[1]["officer"]
    answer = officer.post(path, form)
    assert answer.status_code in (404, 409, 422), answer.text
    assert said in answer.text and "Traceback" not in answer.text
    with Session(engine) as session:
        assert session.exec(select(MaintenanceWork)).first() is None
        assert session.exec(select(Reservation)).first() is None


def test_another_agencys_booking_is_not_shown_nor_cancelled(
        pages: tuple[Api, dict[str, Browser]]) -> None:
    north, browsers = pages
    assert browsers["officer"].post("/web/bookings", {
        "operation": "op-harbour", "kind": "named", "asset_ids": "R-0", "people": "bob",
        **WINDOW}).status_code == 303
    ident = north.get("/v1/reservations").json()[0]["id"]
    south = browsers["south"]
    assert 'data-booking="' not in south.get("/web/bookings?current=false").text
    assert south.post(f"/web/bookings/{ident}/cancel", {},
                      token=south.token("/web/bookings")).status_code == 404
    assert north.get("/v1/reservations").json()[0]["cancelled_at"] is None
    oversized = south.client.post("/web/bookings", content=b"csrf=x&operation=" + b"a" * 9000,
                                  headers={"Content-Type": "application/x-www-form-urlencoded",
                                           **south.headers})
    assert oversized.status_code == 403  # unread past the bound: no token, refused


def test_each_step_links_its_receipt_fetched_with_the_page_session(
        engine: Engine, pages: tuple[Api, dict[str, Browser]]) -> None:
    north, browsers = pages
    assert north.post("/v1/assets/R-2/maintenance", {
        "schedule": "radio-battery", "result": "pass", "officer": "alice"}).status_code == 201
    assert _manual(north, "R-2", "check_out", "desk-1", officer="alice",
                   holder="bob").status_code == 201
    auditor = browsers["auditor"]
    for page_path in ("/web/assets/R-2", "/web/audit/assets/R-2"):
        links = re.findall(r'href="(/web/receipts/[0-9a-f]{64})"', auditor.get(page_path).text)
        assert len(links) == 2, page_path  # register, check out
    receipt = auditor.get(links[1])
    assert receipt.status_code == 200 and "Custody receipt: R-2" in receipt.text
    assert "check out" in receipt.text
    pdf = auditor.get(links[1] + ".pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    # Another agency's session gets 404 for it; a stores officer without audit:read, 403;
    # a malformed hash, 422.
    assert browsers["south-auditor"].get(links[1]).status_code == 404
    assert browsers["officer"].get(links[1]).status_code == 403
    assert auditor.get("/web/receipts/" + "G" * 64).status_code == 422


def test_the_apis_report_page_lists_bookings_which_the_bundle_does_not_hold(
        engine: Engine, pages: tuple[Api, dict[str, Browser]], tmp_path: Path) -> None:
    browsers = pages[1]
    for form in ({"kind": "named", "asset_ids": "R-0", "operation": "op-harbour"},
                 {"kind": "class", "class_id": "radio", "quantity": "1",
                  "operation": "op-parade"},
                 {"kind": "named", "asset_ids": "R-2", "operation": "op-elsewhere",
                  "starts_at": "2099-01-01T00:00", "ends_at": "2099-01-02T00:00"}):
        assert browsers["officer"].post("/web/bookings", {
            "people": "bob", **WINDOW, **form}).status_code == 303
    _checkpoint(engine, tmp_path / "keys")
    auditor = browsers["auditor"]
    bundle = auditor.get("/web/audit/assets/R-0/bundle")
    assert bundle.status_code == 200 and b"op-harbour" not in bundle.content
    pdf = auditor.get("/web/audit/assets/R-0/report.pdf")
    assert pdf.status_code == 200, pdf.text
    report = tmp_path / "report.pdf"
    report.write_bytes(pdf.content)
    text = " ".join(subprocess.run(["pdftotext", str(report), "-"], check=True,
                                   capture_output=True, text=True).stdout.split())
    assert "not in the bundle" in text and "op-harbour" in text and "op-parade" in text
    assert "1 of radio" in text and "op-elsewhere" not in text  # R-2's booking, not R-0's


def test_a_link_cannot_make_the_pages_say_free_text(pages: tuple[Api, dict[str, Browser]]
                                                    ) -> None:
    officer = pages[1]["officer"]
    said = officer.get("/web/maintenance?done=pass&item=R-0").text
    assert 'id="done">Recorded: R-0: check passed.' in said
    for query in ("done=call+0800+now&item=R-0", "done=pass&item=call+0800+now",
                  "done=pass&item=" + "x" * 300):
        answer = officer.get("/web/maintenance?" + query)
        assert 'id="done"' not in answer.text and "0800" not in answer.text.split("<main>")[1]
    assert 'id="done">Done: 7: cancelled.' in officer.get(
        "/web/bookings?done=cancelled&item=7").text
