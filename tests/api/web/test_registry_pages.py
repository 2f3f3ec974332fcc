"""The registry pages (`api.web.registry_lists`, `registry_forms`) served by the real app on
SQLite and PostgreSQL, signed in through the real form: lists with filters and pages, CSV
export, forms and CSV import through the registry functions (logged), and each page's scope,
token and agency boundary."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.models import Agency, Asset, AssetClass, Person, Reader, Scope, Site
from api.models.assets import AssetStatus, HolderKind
from api.models.custody import RegistryRecordRow
from api.registry_csv import MAX_IMPORT_BYTES
from ledger.core.encoding import parse_record
from ledger.core.envelope import raw_public_key
from ledger.core.records import RegistryRecord
from tests.api.web.test_pages import signed_in
from tests.api.web.web_support import SCREENSHOTS, RunningStack
from tests.security.security_support import sign_in

SECRET = "s" * 40
_TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Pages:
    engine: Engine
    clients: dict[str, TestClient]

    def token(self, who: str, path: str) -> str:
        match = _TOKEN.search(self.clients[who].get(path).text)
        assert match is not None, path
        return match.group(1)


@pytest.fixture
def pages(engine: Engine) -> Iterator[Pages]:
    settings = load_settings(environment="test", secret_key=SECRET)
    keys = {}
    with Session(engine) as session:
        session.add_all([Agency(id="north", name="North"), Agency(id="south", name="South")])
        session.flush()
        session.add_all([Site(id="north-store", agency_id="north", name="North store"),
                         Site(id="south-store", agency_id="south", name="South store")])
        for name, agency, scopes in (("admin", "north", list(Scope)),
                                     ("reader", "north", [Scope.ASSETS_READ]),
                                     ("south", "south", list(Scope))):
            _, keys[name] = create_api_client(session, agency_id=agency, name=name,
                                              scopes=scopes, server_secret=SECRET,
                                              now=datetime.now(UTC))
        session.commit()
    app = create_app(settings, engine)
    clients = {}
    for name, key in keys.items():
        clients[name] = TestClient(app, follow_redirects=False)
        assert sign_in(clients[name], key).status_code == 303
    yield Pages(engine, clients)
    for client in clients.values():
        client.close()


def _post(pages: Pages, who: str, path: str, form: dict[str, str]) -> Any:
    token = pages.token(who, path)
    return pages.clients[who].post(path, data={"csrf": token, **form})


def _upload(pages: Pages, kind: str, body: bytes, mode: str, who: str = "admin") -> Any:
    path = f"/web/registry/{kind}/import"
    token = pages.token(who, path)
    return pages.clients[who].post(path, data={"csrf": token, "mode": mode},
                                   files={"file": (f"{kind}.csv", body, "text/csv")})


def _logged(engine: Engine) -> list[str]:
    """The kinds of the north agency's registry records, in log order."""
    with Session(engine) as session:
        rows = session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.agency_id == "north").order_by(col(RegistryRecordRow.leaf_index)))
        return [RegistryRecord.from_record(parse_record(bytes(r.record))).kind for r in rows]


def test_register_a_class_by_form_is_logged_and_listed(pages: Pages) -> None:
    answer = _post(pages, "admin", "/web/registry/classes/new", {
        "id": "radio", "name": "Radio", "loan_days": "7", "dual_signoff": "true",
        "disposal_final": "true", "required_qualification": ""})
    assert answer.status_code == 303, answer.text
    # Its class-policy record, in the same transaction (after the log's opening record).
    assert _logged(pages.engine) == ["registry-opened", "class-policy"]
    listed = pages.clients["admin"].get("/web/registry/classes?q=rad")
    assert "Radio" in listed.text and ">yes<" in listed.text
    # The same id again: the form comes back with the reason, nothing written.
    again = _post(pages, "admin", "/web/registry/classes/new", {"id": "radio", "name": "R"})
    assert again.status_code == 422
    assert "id radio is already registered" in again.text
    bad = _post(pages, "admin", "/web/registry/classes/new", {"id": "r 2", "name": "R",
                                                               "loan_days": "seven"})
    assert bad.status_code == 422 and "id" in bad.text
    assert _logged(pages.engine) == ["registry-opened", "class-policy"]


def test_csv_dry_run_then_import_assets(pages: Pages) -> None:
    classes = b"id,name,required_qualification,loan_days,dual_signoff,disposal_final\n" \
              b"radio,Radio,,7,false,true\n"
    assert _upload(pages, "classes", classes, "import").status_code == 200
    good = "".join(f"radio-{i},radio,E2800000000000000000{i:04X},,north-store\n"
                   for i in range(1, 61))
    header = "id,class_id,epc_hex,epc_uri,home_site_id\n"
    bad = (header + good + "radio-1,radio,E28000000000000000009999,,north-store\n"
           + "x,nope,E2800000000000000000AAAA,,south-store\n").encode()
    dry = _upload(pages, "assets", bad, "check")
    assert dry.status_code == 422
    rows = re.findall(r"<tr><td>(\d+)</td><td>([^<]+)</td></tr>", dry.text)
    assert rows == [("62", "id radio-1 is also on line 2"),
                    ("63", "asset class nope is not one of your agency&#39;s")]
    assert _upload(pages, "assets", bad, "import").status_code == 422
    with Session(pages.engine) as session:
        assert session.exec(select(Asset)).first() is None
    checked = _upload(pages, "assets", (header + good).encode(), "check")
    assert "All 60 rows are good" in checked.text
    done = _upload(pages, "assets", (header + good).encode(), "import")
    assert "Imported 60 assets" in done.text
    # Listed a page at a time, each linking to its asset page.
    first = pages.clients["admin"].get("/web/registry/assets?class=radio")
    assert first.text.count('href="/web/assets/radio-') == 50
    more = re.search(r'rel="next" href="\?([^"]+)"', first.text)
    assert more is not None
    second = pages.clients["admin"].get("/web/registry/assets?" + more.group(1)
                                        .replace("&amp;", "&"))
    assert second.text.count('href="/web/assets/radio-') == 10


def test_upload_refuses_oversized_hostile_and_unsigned_files(pages: Pages) -> None:
    big = b"id,name\n" + b"a" * (MAX_IMPORT_BYTES + 1)
    answer = _upload(pages, "sites", big, "import")
    assert answer.status_code == 422 and "at most" in answer.text
    # A NUL byte is refused by the app's guard on every body (`api.storable_text`) already.
    for body, reason in ((b"id,name\nx,\x00\n", "NUL"), (b"\xff\xfex", "UTF-16"),
                         (b"name\n", "header must be")):
        answer = _upload(pages, "sites", body, "import")
        assert answer.status_code == 422 and reason in answer.text, reason
    # Without the session's token, or from another site: refused before the file is read.
    client = pages.clients["admin"]
    files = {"file": ("s.csv", b"id,name\nnew,New\n", "text/csv")}
    assert client.post("/web/registry/sites/import", data={"mode": "import"},
                       files=files).status_code == 403
    assert client.post("/web/registry/sites/import", files=files,
                       data={"csrf": pages.token("admin", "/web/registry/sites/import"),
                             "mode": "import"},
                       headers={"origin": "https://evil.example"}).status_code == 403
    with Session(pages.engine) as session:
        assert session.get(Site, {"agency_id": "north", "id": "new"}) is None


def test_scopes_as_the_rest_api(pages: Pages) -> None:
    reader = pages.clients["reader"]  # assets:read only
    assert reader.get("/web/registry/assets").status_code == 200
    for path in ("/web/registry/classes", "/web/registry/people", "/web/registry/readers",
                 "/web/registry/sites", "/web/registry/sites/export.csv",
                 "/web/registry/assets/new", "/web/registry/assets/import"):
        assert reader.get(path).status_code == 403, path
    token = pages.token("reader", "/web/registry/assets")
    assert reader.post("/web/registry/sites/new",
                       data={"csrf": token, "id": "x", "name": "X"}).status_code == 403
    assert pages.clients["admin"].get("/web/registry/nothing").status_code == 404
    signed_out = TestClient(reader.app, follow_redirects=False)
    assert signed_out.get("/web/registry/assets").status_code == 303


def test_filters_export_and_the_agency_boundary(pages: Pages) -> None:
    now = datetime.now(UTC)
    with Session(pages.engine) as session:
        session.add(AssetClass(id="kit", agency_id="north", name="=HYPERLINK(\"x\")"))
        session.add(AssetClass(id="s-kit", agency_id="south", name="South kit"))
        session.flush()
        for i, (status, due, seen) in enumerate((
                ("checked_out", now - timedelta(days=1), now - timedelta(days=3)),
                ("checked_out", now + timedelta(days=1), now),
                ("in_store", None, None))):
            session.add(Asset(id=f"a-{i}", agency_id="north", class_id="kit",
                              epc_hex=f"E280000000000000000000{i:02X}", home_site_id="north-store",
                              status=AssetStatus(status), holder_kind=HolderKind.PERSON,
                              holder_ref="pc-1", holder_agency_id="north",
                              due_at=due, last_seen_at=seen))
        session.add(Asset(id="s-1", agency_id="south", class_id="s-kit", epc_hex="E2800000AAAA",
                          home_site_id="south-store", holder_ref="south-store",
                          holder_agency_id="south"))
        session.commit()
    admin = pages.clients["admin"]

    def ids(query: str) -> list[str]:
        answer = admin.get("/web/registry/assets/export.csv?" + query)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        return [row[0] for row in list(csv.reader(io.StringIO(answer.text)))[1:]]

    assert ids("") == ["a-0", "a-1", "a-2"]  # never south's
    assert ids("overdue=1") == ["a-0"]
    assert ids("status=checked_out&holder=pc-1") == ["a-0", "a-1"]
    assert ids(f"seen_after={(now - timedelta(days=1)).date()}") == ["a-1"]
    assert ids(f"seen_before={now.date()}") == ["a-0"]
    assert ids("site=north-store&q=a-2") == ["a-2"]
    assert admin.get("/web/registry/assets?status=lost").status_code == 422
    assert admin.get("/web/registry/assets?seen_after=yesterday").status_code == 422
    assert admin.get("/web/registry/assets/export.csv?q=" + "x" * 200).status_code == 422
    exported = admin.get("/web/registry/classes/export.csv").text
    assert "'=HYPERLINK" in exported and "South kit" not in exported
    south = pages.clients["south"].get("/web/registry/assets").text
    assert "s-1" in south and "a-0" not in south


def test_sites_list_and_export_show_the_custodian(pages: Pages) -> None:
    with Session(pages.engine) as session:  # as PUT /v1/sites/{id}/custodian leaves them
        session.add(Site(id="north-annex", agency_id="north", name="North annex"))
        store = session.get(Site, {"agency_id": "north", "id": "north-store"})
        assert store is not None
        store.custodian_id = "pc-1"
        session.add(store)
        south = session.get(Site, {"agency_id": "south", "id": "south-store"})
        assert south is not None
        south.custodian_id = "pc-south"
        session.add(south)
        session.commit()
    admin = pages.clients["admin"]
    listed = admin.get("/web/registry/sites")
    assert listed.status_code == 200
    assert '<th scope="col">custodian</th>' in listed.text
    assert '<td data-label="custodian"><a href="/web/registry/people?q=pc-1">pc-1</a></td>' \
        in listed.text
    assert "pc-south" not in listed.text and "south-store" not in listed.text
    exported = admin.get("/web/registry/sites/export.csv")
    assert exported.status_code == 200
    assert list(csv.reader(io.StringIO(exported.text))) == [
        ["id", "name", "custodian"], ["north-annex", "North annex", ""],
        ["north-store", "North store", "pc-1"]]
    assert admin.get("/web/registry/sites/export.csv?q=annex").text.splitlines()[1:] == [
        "north-annex,North annex,"]


def test_reader_registered_and_revoked_through_the_pages(pages: Pages) -> None:
    key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
    answer = _post(pages, "admin", "/web/registry/readers/new", {
        "id": "desk-1", "site_id": "north-store", "role": "issue_desk", "public_key": key,
        "zones": "1=counter"})
    assert answer.status_code == 303
    listed = pages.clients["admin"].get("/web/registry/readers")
    assert "1=counter" in listed.text and "Revoke desk-1" in listed.text
    # Another agency cannot revoke it, and the south site is not the north's to use.
    assert _post(pages, "south", "/web/registry/readers", {}).status_code == 405
    south_token = pages.token("south", "/web/registry/readers")
    assert pages.clients["south"].post("/web/registry/readers/desk-1/revoke",
                                       data={"csrf": south_token}).status_code == 404
    # The list's Revoke is a link to a confirmation page; unticked, nothing is revoked.
    assert 'href="/web/registry/readers/desk-1/revoke"' in listed.text
    assert pages.clients["south"].get("/web/registry/readers/desk-1/revoke").status_code == 404
    assert pages.clients["reader"].get("/web/registry/readers/desk-1/revoke").status_code == 403
    confirm = pages.clients["admin"].get("/web/registry/readers/desk-1/revoke")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    unticked = _post(pages, "admin", "/web/registry/readers/desk-1/revoke", {})
    assert unticked.status_code == 422 and "tick the box" in unticked.text
    assert _logged(pages.engine) == ["registry-opened", "reader-registered"]
    assert _post(pages, "admin", "/web/registry/readers/desk-1/revoke",
                 {"confirm": "yes"}).status_code == 303
    with Session(pages.engine) as session:
        reader = session.get(Reader, "desk-1")
        assert reader is not None and reader.status == "revoked"
    assert _logged(pages.engine) == ["registry-opened", "reader-registered", "reader-revoked"]


def test_browser_registers_a_class_and_assets_by_csv_upload(browser: Any,
                                                            day_done: RunningStack) -> None:
    """In Chromium against `kitledger up`: a dry run that lists the bad row, then the class
    and its assets imported through the page, listed, and exported with the filter."""
    page = signed_in(browser, day_done)
    page.goto(day_done.url + "/web/registry/classes/import")
    page.set_input_files("#file", files=[{
        "name": "classes.csv", "mimeType": "text/csv",
        "buffer": b"id,name,required_qualification,loan_days,dual_signoff,disposal_final\n"
                  b"torch,Torch,,3,false,true\n"}])
    page.click("#import")
    assert "Imported 1 asset classes" in page.inner_text("#result")
    page.goto(day_done.url + "/web/registry/assets/import")
    rows = "".join(f"torch-{i},torch,E2800000000000000000{0xC00 + i:04X},,hq-stores\n"
                   for i in range(1, 4))
    sheet = ("id,class_id,epc_hex,epc_uri,home_site_id\n" + rows).encode()
    taken = b"radio-1,torch,E28000000000000000000C09,,hq-stores\n"  # the demo's radio's id
    page.set_input_files("#file", files=[{"name": "assets.csv", "mimeType": "text/csv",
                                          "buffer": sheet + taken}])
    page.click("#check")
    result = page.inner_text("#result")
    assert "1 bad row" in result and "id radio-1 is already registered" in result
    assert "5" in page.inner_text("table.problems td >> nth=0")  # its line in the file
    page.screenshot(path=str(SCREENSHOTS / "registry-import.png"), full_page=True)
    page.set_input_files("#file", files=[{"name": "assets.csv", "mimeType": "text/csv",
                                          "buffer": sheet}])
    page.click("#import")
    assert "Imported 3 assets" in page.inner_text("#result")
    page.click("#result a")
    page.select_option("#f-status", "in_store")
    page.fill("#f-class", "torch")
    page.click("form.filters button[type=submit]")
    listed = page.locator("#rows tbody tr")
    assert listed.count() == 3 and "torch-1" in listed.first.inner_text()
    assert page.get_attribute("#rows a >> nth=0", "href") == "/web/assets/torch-1"
    page.screenshot(path=str(SCREENSHOTS / "registry-assets.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#export")
    exported = Path(download.value.path()).read_text()
    assert [line.split(",")[0] for line in exported.splitlines()] == [
        "id", "torch-1", "torch-2", "torch-3"]
    page.close()


def test_asset_changed_through_its_form_as_the_patch_route(pages: Pages) -> None:
    with Session(pages.engine) as session:
        session.add(Site(id="north-van", agency_id="north", name="Van"))
        session.commit()
    classes = b"id,name,required_qualification,loan_days,dual_signoff,disposal_final\n" \
              b"radio,Radio,,,,\n"
    assert _upload(pages, "classes", classes, "import").status_code == 200
    sgtin = "3034257BF400B7800004CB2F"  # a GS1 SGTIN-96: its URI is derived
    assert _post(pages, "admin", "/web/registry/assets/new", {
        "id": "r-1", "class_id": "radio", "epc_hex": sgtin, "epc_uri": "",
        "home_site_id": "north-store"}).status_code == 303
    path = "/web/registry/assets/r-1/edit"
    assert 'href="/web/registry/assets/r-1/edit"' in pages.clients["admin"].get(
        "/web/registry/assets").text
    wrong_uri = _post(pages, "admin", path, {"home_site_id": "north-van",
                                             "epc_uri": "urn:epc:id:sgtin:1.2.3"})
    assert wrong_uri.status_code == 422 and "epc_uri must be" in wrong_uri.text
    theirs = _post(pages, "admin", path, {"home_site_id": "south-store", "epc_uri": ""})
    assert theirs.status_code == 422 and "not one of your agency" in theirs.text
    assert _post(pages, "admin", path, {"home_site_id": "north-van",
                                        "epc_uri": ""}).status_code == 303
    with Session(pages.engine) as session:
        asset = session.get(Asset, {"agency_id": "north", "id": "r-1"})
        assert asset is not None and asset.home_site_id == "north-van"
        assert asset.epc_uri is not None and asset.epc_uri.startswith("urn:epc:id:sgtin:")
    # Another agency's asset is not found; a read-only key may not open the form.
    assert pages.clients["south"].get(path).status_code == 404
    assert pages.clients["reader"].get(path).status_code == 403


def _class_policy_records(engine: Engine, class_id: str) -> list[dict[str, object]]:
    """The class's class-policy records in the north log, oldest first."""
    with Session(engine) as session:
        rows = session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.agency_id == "north", RegistryRecordRow.kind == "class-policy")
            .order_by(col(RegistryRecordRow.leaf_index)))
        records = [RegistryRecord.from_record(parse_record(bytes(r.record))) for r in rows]
    return [{k: r.get(k) for k in ("class", "required_qualification", "loan_days",
                                   "dual_signoff")} for r in records if r.get("class") == class_id]


def test_class_person_and_site_changed_through_their_forms(pages: Pages) -> None:
    assert _post(pages, "admin", "/web/registry/classes/new", {
        "id": "taser", "name": "Taser", "required_qualification": "taser", "loan_days": "1",
        "dual_signoff": "false", "disposal_final": "true"}).status_code == 303
    assert _post(pages, "admin", "/web/registry/people/new", {
        "id": "pc-1", "qualifications": "taser", "badges": "", "active": "true"}).status_code \
        == 303
    listed = pages.clients["admin"].get("/web/registry/classes").text
    assert 'href="/web/registry/classes/taser/edit"' in listed
    form = pages.clients["admin"].get("/web/registry/classes/taser/edit")
    assert form.status_code == 200 and 'value="Taser"' in form.text
    # A renamed class with the same policy writes no record; a changed policy writes one.
    path = "/web/registry/classes/taser/edit"
    same = {"name": "Taser X2", "required_qualification": "taser", "loan_days": "1",
            "dual_signoff": "false"}
    assert _post(pages, "admin", path, same).status_code == 303
    assert len(_class_policy_records(pages.engine, "taser")) == 1
    changed = {**same, "required_qualification": "", "loan_days": "", "dual_signoff": "true"}
    assert _post(pages, "admin", path, changed).status_code == 303
    assert _class_policy_records(pages.engine, "taser")[-1] == {
        "class": "taser", "required_qualification": None, "loan_days": None,
        "dual_signoff": True}
    with Session(pages.engine) as session:
        taser = session.get(AssetClass, {"agency_id": "north", "id": "taser"})
        assert taser is not None and taser.name == "Taser X2" and taser.dual_signoff
        assert taser.required_qualification is None and taser.loan_days is None
    # People: qualifications and active; sites: the name.
    assert _post(pages, "admin", "/web/registry/people/pc-1/edit", {
        "qualifications": "first-aid;taser", "active": "false"}).status_code == 303
    assert _post(pages, "admin", "/web/registry/sites/north-store/edit",
                 {"name": "North main store"}).status_code == 303
    with Session(pages.engine) as session:
        person = session.get(Person, {"agency_id": "north", "id": "pc-1"})
        assert person is not None and sorted(person.qualifications) == ["first-aid", "taser"]
        assert not person.active
        site = session.get(Site, {"agency_id": "north", "id": "north-store"})
        assert site is not None and site.name == "North main store"


@pytest.mark.parametrize("case", ["reader key", "no token", "forged token", "other origin",
                                  "other agency", "unknown id", "NUL", "long name",
                                  "bad loan", "oversized form", "readers kind"])
def test_change_forms_refused_change_nothing(pages: Pages, case: str) -> None:
    with Session(pages.engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio", loan_days=7))
        session.add(AssetClass(id="s-radio", agency_id="south", name="South radio"))
        session.commit()
    who, path = "admin", "/web/registry/classes/radio/edit"
    data = {"name": "Changed", "required_qualification": "", "loan_days": "3",
            "dual_signoff": "true", "csrf": pages.token("admin", "/web/registry/classes")}
    headers: dict[str, str] = {}
    expected = 403
    if case == "reader key":
        who, data["csrf"] = "reader", pages.token("reader", "/web/registry/assets")
        assert pages.clients["reader"].get(path).status_code == 403
    elif case == "no token":
        data.pop("csrf")
    elif case == "forged token":
        data["csrf"] = "f" * 43
    elif case == "other origin":
        headers["Origin"] = "https://evil.example"
    elif case == "other agency":
        path, expected = "/web/registry/classes/s-radio/edit", 404
        assert pages.clients["admin"].get(path).status_code == 404
    elif case == "unknown id":
        path, expected = "/web/registry/classes/nothing/edit", 404
    elif case == "NUL":
        data["name"], expected = "Ra\x00dio", 422
    elif case == "long name":
        data["name"], expected = "n" * 300, 422
    elif case == "bad loan":
        data["loan_days"], expected = "99999", 422
    elif case == "oversized form":
        data["pad"] = "p" * 5000
    elif case == "readers kind":
        path, expected = "/web/registry/readers/desk-1/edit", 404
    answer = pages.clients[who].post(path, data=data, headers=headers)
    assert answer.status_code == expected, (case, answer.status_code, answer.text[:300])
    with Session(pages.engine) as session:
        radio = session.get(AssetClass, {"agency_id": "north", "id": "radio"})
        assert radio is not None and radio.name == "Radio" and radio.loan_days == 7
        south = session.get(AssetClass, {"agency_id": "south", "id": "s-radio"})
        assert south is not None and south.name == "South radio"
    assert "class-policy" not in _logged(pages.engine)


@pytest.mark.parametrize("case", ["reader key", "no token", "forged token", "cross-site",
                                  "other agency", "NUL id", "long id", "oversized form",
                                  "unticked"])
def test_revoke_refused_revokes_nothing(pages: Pages, case: str) -> None:
    key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
    assert _post(pages, "admin", "/web/registry/readers/new", {
        "id": "desk-1", "site_id": "north-store", "role": "issue_desk", "public_key": key,
        "zones": ""}).status_code == 303
    who, path = "admin", "/web/registry/readers/desk-1/revoke"
    data = {"confirm": "yes", "csrf": pages.token("admin", "/web/registry/readers")}
    headers: dict[str, str] = {}
    expected = 403
    if case == "reader key":
        who, data["csrf"] = "reader", pages.token("reader", "/web/registry/assets")
    elif case == "no token":
        data.pop("csrf")
    elif case == "forged token":
        data["csrf"] = "f" * 43
    elif case == "cross-site":
        headers["Sec-Fetch-Site"] = "cross-site"
    elif case == "other agency":
        who, data["csrf"], expected = "south", pages.token("south", "/web/registry/readers"), 404
    elif case == "NUL id":
        path, expected = "/web/registry/readers/desk%00-1/revoke", 422
    elif case == "long id":
        path, expected = "/web/registry/readers/" + "d" * 300 + "/revoke", 422
    elif case == "oversized form":
        data["pad"] = "p" * 5000
    elif case == "unticked":
        data.pop("confirm")
        expected = 422
    answer = pages.clients[who].post(path, data=data, headers=headers)
    assert answer.status_code == expected, (case, answer.status_code, answer.text[:300])
    with Session(pages.engine) as session:
        reader = session.get(Reader, "desk-1")
        assert reader is not None and reader.status == "active"
    assert "reader-revoked" not in _logged(pages.engine)
