"""Each role walked through its work in Chromium, signed in by single sign-on at a real
OpenID Connect provider (npm `oidc-provider` on loopback), against the running stack's data:
the agency admin registers a class and assets by CSV and runs the accounts page, then signs
out at the provider too; the supervisor resolves an alert; the stores officer watches a
check-out arrive live on the desk (a signed read published to the stack's Mosquitto, ruled on
by its ingest); the auditor and the read-only user export a list as CSV. Each is refused what
its role may not do.

The pages are served by a second `kitledger serve` node on the stack's database and broker,
with the provider in its settings and no ingest of its own: what arrives on its desk was
ingested by the stack's node, as on a deployment of several nodes.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.api.web.test_pages import TABLET
from tests.api.web.web_support import SCREENSHOTS, RunningStack, publish_read
from tests.fixtures.nodes import ServeNode
from tests.fixtures.oidc_provider import OidcProviderProcess, ProviderClient

GROUPS = {"ada": ["kit-admins"], "sue": ["stores-supervisors"], "ollie": ["stores-staff"],
          "audrey": ["audit"], "rita": ["viewers"]}
"""The provider's people and their groups, one per role."""
GROUP_ROLES = {"kit-admins": "agency-admin", "stores-supervisors": "supervisor",
               "stores-staff": "stores-officer", "audit": "auditor", "viewers": "read-only"}
PC_BAKER_BADGE = "E28011900000000000000B02"
RADIO_3_EPC = "341800000000000000000103"


def _broker_url(stack: RunningStack) -> str:
    conf = (stack.run_dir / "mosquitto" / "mosquitto.conf").read_text()
    port = re.search(r"^listener (\d+)", conf, re.MULTILINE)
    assert port is not None
    return f"mqtt://127.0.0.1:{port.group(1)}"


@pytest.fixture(scope="module")
def sso_node(day_done: RunningStack, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[str]:
    """A pages node with the agency's provider; its URL."""
    work = tmp_path_factory.mktemp("roles")
    node = ServeNode("sso-pages", database_url=f"sqlite:///{day_done.run_dir / 'kitledger.db'}",
                     mqtt_url=_broker_url(day_done), data_dir=work, ingest_workers=0)
    url = f"http://127.0.0.1:{node.port}"
    client = ProviderClient("kitledger-metpolice", "metpolice-client-secret-for-tests",
                            (f"{url}/web/sso/metpolice/callback",), (f"{url}/web/login",))
    (work / "secret").write_text(client.client_secret + "\n")
    provider = OidcProviderProcess(work, [client], GROUPS)
    provider.start()
    roles = "\n".join(f'"{group}" = "{role}"' for group, role in GROUP_ROLES.items())
    (work / "kitledger.toml").write_text(f"""
[[oidc_providers]]
name = "metpolice"
label = "Sign in with Met Police SSO"
agency_id = "metpolice"
issuer = "{provider.issuer}"
client_id = "{client.client_id}"
client_secret_file = "{work / 'secret'}"
[oidc_providers.group_roles]
{roles}
""")
    node._env.update(KITLEDGER_CONFIG=str(work / "kitledger.toml"),
                     KITLEDGER_LOG_KEY_DIR=str(day_done.run_dir / "keys"),
                     KITLEDGER_ENVIRONMENT="development",
                     KITLEDGER_SECRET_KEY="role-walks-" + "s" * 40)
    try:
        node.start()
        yield url
    finally:
        node.kill()
        provider.stop()


def _sign_in(browser: Any, url: str, login: str) -> Any:
    """Through the sign-in page's single sign-on button and the provider's login form."""
    page = browser.new_page(viewport=TABLET)
    page.goto(url + "/web/login")
    page.click("a.sso[href='/web/sso/metpolice']")
    page.wait_for_selector("input[name=login]", timeout=30_000)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_url(url + "/web/", timeout=30_000)
    return page


def _refused(page: Any, url: str, *paths: str) -> None:
    for path in paths:
        answer = page.goto(url + path)
        assert answer.status == 403, (path, answer.status)


def _export(page: Any, url: str, path: str) -> str:
    page.goto(url + path)
    with page.expect_download() as download:
        page.click("#export")
    return Path(download.value.path()).read_text(encoding="utf-8-sig")


def _import(page: Any, url: str, kind: str, sheet: str) -> None:
    """A CSV sheet through the import page: a dry run, then the import."""
    page.goto(f"{url}/web/registry/{kind}/import")
    upload = [{"name": f"{kind}.csv", "mimeType": "text/csv", "buffer": sheet.encode()}]
    page.set_input_files("#file", files=upload)
    page.click("#check")
    assert "rows are good: nothing written yet" in page.inner_text("#result")
    page.set_input_files("#file", files=upload)
    page.click("#import")
    assert "Imported" in page.inner_text("#result"), page.inner_text("#result")


def test_agency_admin_registers_by_csv_runs_accounts_and_signs_out_at_the_provider(
        browser: Any, sso_node: str) -> None:
    page = _sign_in(browser, sso_node, "ada")
    assert "ada · Metropolitan Police (demo)" in page.inner_text("header")
    _import(page, sso_node, "classes",
            "id,name,required_qualification,loan_days,dual_signoff,disposal_final\n"
            "walk-lamp,Lamp,,3,false,true\n")
    _import(page, sso_node, "assets", "id,class_id,epc_hex,epc_uri,home_site_id\n"
            "lamp-1,walk-lamp,E2801160600002050000AA01,,hq-stores\n"
            "lamp-2,walk-lamp,E2801160600002050000AA02,,hq-stores\n")
    page.goto(f"{sso_node}/web/registry/assets?class=walk-lamp")
    assert page.locator("#rows tbody tr").count() == 2
    # The accounts page: their own account, made at this sign-in, marked as theirs.
    page.goto(f"{sso_node}/web/accounts")
    mine = page.locator("#accounts tbody tr", has_text="metpolice:ada")
    assert "agency-admin" in mine.inner_text() and "(you)" in mine.inner_text()
    assert "single sign-on (metpolice)" in mine.inner_text()
    # Signing out ends the session here, then at the provider, which asks to confirm.
    page.click("header form.who button[type=submit]")
    page.wait_for_url(lambda u: not u.startswith(sso_node), timeout=30_000)
    page.click("button[autofocus]")
    page.wait_for_url(sso_node + "/web/login", timeout=30_000)
    page.goto(sso_node + "/web/")
    assert page.url.endswith("/web/login")
    page.click("a.sso[href='/web/sso/metpolice']")  # the provider asks for a login again
    page.wait_for_selector("input[name=login]", timeout=30_000)
    page.close()


def _open_alert(stack: RunningStack) -> int:
    """A custody alert of the demo agency: kit read at a site it is not expected at. (Not a
    reader-health alert: the stack's health scan resolves those its readers' reports do not
    call for, and its readers are healthy.)"""
    database = sqlite3.connect(stack.run_dir / "kitledger.db", timeout=30)
    try:
        with database:
            cursor = database.execute(
                "INSERT INTO alert (agency_id, kind, asset_id, reader_id, detail, created_at) "
                "VALUES ('metpolice', 'unexpected_site', 'radio-4', 'return-desk', "
                "'radio-4 read at hq-stores, expected at north-station', ?)",
                (datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),))
            assert cursor.lastrowid is not None
            return cursor.lastrowid
    finally:
        database.close()


def test_supervisor_resolves_an_alert_and_may_not_run_accounts(
        browser: Any, day_done: RunningStack, sso_node: str) -> None:
    alert_id = _open_alert(day_done)
    page = _sign_in(browser, sso_node, "sue")
    page.goto(sso_node + "/web/agency")
    row = page.locator(f"#alerts ~ ul li[data-alert='{alert_id}']")
    assert row.count() == 1, page.inner_text("#alerts ~ ul")
    with page.expect_navigation():
        row.locator("button", has_text="Acknowledge").click()
    assert page.url == sso_node + "/web/agency#alerts"
    row = page.locator(f"#alerts ~ ul li[data-alert='{alert_id}']")
    assert "acknowledged by sue" in row.inner_text()
    row.locator("textarea").fill("radio-4 was on loan to HQ, booked back to north station")
    row.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "agency-alert-acknowledged.png"))
    with page.expect_navigation():
        row.locator("button", has_text="Resolve").click()
    assert page.locator(f"li[data-alert='{alert_id}']").count() == 0
    actions = day_done.get(f"/v1/alerts/{alert_id}/actions")
    assert [(a["action"], a["actor_kind"]) for a in actions] == [
        ("acknowledge", "account"), ("resolve", "account")]
    _refused(page, sso_node, "/web/accounts", "/web/registry/classes/new",
             "/web/registry/readers/portal/revoke")
    page.close()


def _newest_row(page: Any) -> int:
    return max((int(i) for i in page.locator("#decisions li[data-id]")
                .evaluate_all("rows => rows.map(r => r.dataset.id)")), default=0)


def test_stores_officer_watches_a_check_out_arrive_live(
        browser: Any, day_done: RunningStack, sso_node: str) -> None:
    page = _sign_in(browser, sso_node, "ollie")
    page.goto(sso_node + "/web/desk?reader=issue-desk")
    page.locator("body[data-live='open']").wait_for(state="attached")
    before = _newest_row(page)
    started = time.monotonic()
    # As the desk's agent sends them: the badge opens a session, the radio is read in it.
    publish_read(day_done, "issue-desk", PC_BAKER_BADGE, kind="badge", session="walk-1")
    publish_read(day_done, "issue-desk", RADIO_3_EPC, session="walk-1")
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = re.sub(r"\s+", " ", " ".join(page.locator("#decisions li").all_inner_texts()))
        if _newest_row(page) > before and "radio-3 checked out to pc-baker" in text:
            break
        time.sleep(0.1)
    assert "radio-3 checked out to pc-baker" in text, text[:1000]
    print(f"check-out on the SSO node's desk {time.monotonic() - started:.1f} s after "
          "publishing the badge")
    page.screenshot(path=str(SCREENSHOTS / "desk-stores-officer.png"), full_page=True)
    # Their own agency's asset: the custody-only timeline; no registry forms, no audit.
    page.goto(sso_node + "/web/assets/radio-3")
    assert page.is_visible("#custody-only")
    _refused(page, sso_node, "/web/accounts", "/web/registry/assets/new", "/web/audit",
             "/web/registry/classes")
    page.close()


@pytest.mark.parametrize(("login", "refused"), [
    ("audrey", ("/web/accounts", "/web/registry/assets/new", "/web/registry/people")),
    ("rita", ("/web/accounts", "/web/registry/assets/new", "/web/audit")),
])
def test_auditor_and_read_only_export_a_list_and_change_nothing(
        browser: Any, sso_node: str, login: str, refused: tuple[str, ...]) -> None:
    page = _sign_in(browser, sso_node, login)
    exported = _export(page, sso_node, "/web/registry/assets?status=in_store")
    lines = exported.splitlines()
    assert lines[0].startswith("id,class,status") and len(lines) > 1
    assert all(",in_store," in line for line in lines[1:]), lines[:3]
    page.goto(sso_node + "/web/agency")
    assert page.locator("#alerts ~ ul button").count() == 0  # no alert buttons
    _refused(page, sso_node, *refused)
    page.close()
