"""Every page, at a desk tablet's width and a 390 px phone's: axe-core finds no serious or
critical accessibility violation, and nothing pushes the page sideways.

axe-core is the npm package (`contracts/package.json`, installed by `make node`); its
`axe.min.js` is run inside each page by Playwright in Debian's Chromium. The pages' own
Content Security Policy refuses inline scripts, which Playwright's `evaluate` is not subject
to, so the pages are checked as served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.web.test_pages import _report_ready, signed_in
from tests.api.web.web_support import ROOT, SCREENSHOTS, RunningStack

AXE = ROOT / "contracts" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PAGES = {
    "start": "/web/",
    "desk": "/web/desk?reader=issue-desk",
    "desk-portal": "/web/desk?reader=portal",
    "auditor": "/web/audit?q=",
    "auditor-asset": "/web/audit/assets/evidence-bag-1",
    "case-report": "/web/audit/report?case=24-001234",
    "site-report": "/web/audit/report?site=hq-stores",
    "agency": "/web/agency",
    "planning-form": "/web/planning",
    "asset": "/web/assets/evidence-bag-1",
    "asset-alert": "/web/assets/bodycam-1",
    "registry-assets": "/web/registry/assets",
    "registry-classes": "/web/registry/classes",
    "registry-people": "/web/registry/people",
    "registry-readers": "/web/registry/readers",
    "registry-sites": "/web/registry/sites",
    "registry-new": "/web/registry/assets/new",
    "registry-import": "/web/registry/assets/import",
    "registry-edit": "/web/registry/assets/radio-1/edit",
    "registry-class-edit": "/web/registry/classes/taser/edit",
    "registry-person-edit": "/web/registry/people/dc-carter/edit",
    "registry-site-edit": "/web/registry/sites/hq-stores/edit",
    "registry-revoke": "/web/registry/readers/portal/revoke",
    "accounts": "/web/accounts",
    "maintenance": "/web/maintenance",
    "bookings": "/web/bookings",
    "inventories": "/web/inventories?site=hq-stores",
    "problem": "/web/audit/assets/no-such-asset",
    "not-found": "/web/no-such-page",
}
"""Every page a signed-in user opens (the sign-in page is checked signed out)."""
BLOCKING = ("serious", "critical")
DESKTOP_SHOTS = ("maintenance", "bookings", "registry-class-edit", "registry-person-edit",
                 "registry-site-edit", "registry-revoke")
"""Pages also photographed at the desktop width (the others' desktop shots come from
`test_pages.py`)."""


def _axe_source() -> str:
    if not AXE.exists():
        pytest.fail("axe-core is not installed: `make node` (contracts/package.json)")
    return Path(AXE).read_text()


def _check(page: Any, where: str) -> None:
    page.evaluate(_axe_source())
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    blocking = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                for v in result["violations"] if v["impact"] in BLOCKING]
    assert blocking == [], (where, blocking)
    widths = page.evaluate(
        "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], (where, "scrolls sideways", widths)


def _property_room(page: Any, stack: RunningStack) -> None:
    """Something on the maintenance and bookings pages: a schedule that blocks nothing (the
    day's desks issue as before) and a booking next month (again: 409 the second time)."""
    headers = {"Authorization": f"Bearer {stack.keys['metpolice']}"}
    schedule = page.request.post(stack.url + "/v1/classes/bodycam/schedules", headers=headers,
                                 data={"key": "bodycam-battery", "name": "battery check",
                                       "interval_days": 180, "blocking": False})
    assert schedule.status in (201, 409), schedule.text()
    booking = page.request.post(stack.url + "/v1/reservations", headers=headers, data={
        "operation": "op-carnival", "class_id": "bodycam", "quantity": 1,
        "people": ["pc-adams", "pc-baker"], "starts_at": "2099-08-24T06:00:00Z",
        "ends_at": "2099-08-25T06:00:00Z"})
    assert booking.status in (201, 409), booking.text()


@pytest.mark.parametrize("width", WIDTHS)
def test_web_pages_accessible_and_fit(browser: Any, day_done: RunningStack, width: str,
                                     inventory_taken: int) -> None:
    page = signed_in(browser, day_done)
    page.set_viewport_size(WIDTHS[width])
    _property_room(page, day_done)
    # The reports exist once the anchorer's checkpoint covers the day (409 before).
    day_done.wait_for(lambda: _report_ready(page.request.get(
        day_done.url + PAGES["case-report"])), 60)
    pages = {**PAGES, "inventory": f"/web/inventories/{inventory_taken}"}
    for name, path in pages.items():
        answer = page.goto(day_done.url + path)
        assert answer.status in (200, 404), (path, answer.status)
        _check(page, f"{path} at {width}")
        if width == "phone":
            page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
        elif name in DESKTOP_SHOTS:
            page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_web_sign_in_page_accessible_and_fits(browser: Any, stack: RunningStack,
                                              width: str) -> None:
    page = browser.new_page(viewport=WIDTHS[width])
    page.goto(stack.url + "/web/login")
    _check(page, f"/web/login at {width}")
    page.close()


def test_web_problem_page_for_browsers_json_for_clients(browser: Any,
                                                       day_done: RunningStack) -> None:
    page = signed_in(browser, day_done)
    answer = page.goto(day_done.url + "/v1/assets/no-such-asset")  # a browser, no key
    assert answer.status == 401 and answer.headers["content-type"].startswith("text/html")
    assert "Not authenticated" in page.inner_text("h1")
    api = page.request.get(day_done.url + "/v1/assets/no-such-asset", headers={
        "Authorization": f"Bearer {day_done.keys['metpolice']}", "Accept": "application/json"})
    assert api.status == 404 and api.headers["content-type"] == "application/problem+json"
    assert api.json()["detail"] == "asset not found"
    page.goto(day_done.url + "/web/audit/assets/no-such-asset")
    assert "asset not found" in page.inner_text("#problem-detail")
    page.close()


def test_web_desk_keyboard_reaches_alert_and_reader(browser: Any, day_done: RunningStack) -> None:
    page = signed_in(browser, day_done)
    page.goto(day_done.url + "/web/desk?reader=portal")
    reached = []
    for _ in range(16):  # the bar's links and sign-out, then the banner, then the picker
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "(e => e.id || e.textContent.trim())(document.activeElement)"))
        if reached[-1] == "reader":
            break
    acknowledge = next((n for n, r in enumerate(reached) if r.startswith("Acknowledge")), None)
    assert acknowledge is not None and "reader" in reached, reached
    assert acknowledge < reached.index("reader")  # the alert comes first
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # where the focus is (the picker) shows
    page.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_accounts_page_with_its_forms_open_accessible(browser: Any, day_done: RunningStack,
                                                      width: str) -> None:
    """The accounts page with accounts in it and one account's forms unfolded, as an admin
    works on it; the error it shows for two passwords that differ; and an account's history."""
    _accounts(day_done)
    page = signed_in(browser, day_done)
    page.set_viewport_size(WIDTHS[width])
    page.goto(day_done.url + "/web/accounts")
    page.click("#accounts details summary")
    _check(page, f"/web/accounts unfolded at {width}")
    suffix = "-phone" if width == "phone" else ""
    page.screenshot(path=str(SCREENSHOTS / f"accounts{suffix}.png"), full_page=True)
    page.fill("#username", "new.officer")
    page.fill("#password", "a long enough passphrase")
    page.fill("#password_confirm", "another passphrase here")
    page.click("#create")
    assert "the two passwords differ" in page.inner_text("#form-error")
    _check(page, f"/web/accounts refused at {width}")
    page.click("#accounts a[href$='/history']")
    page.wait_for_selector("#history")
    assert "created" in page.inner_text("#history")
    _check(page, f"an account's history at {width}")
    page.screenshot(path=str(SCREENSHOTS / f"account-history{suffix}.png"), full_page=True)
    page.close()


def _accounts(stack: RunningStack) -> None:
    """Three accounts of the demo agency, made once through `/v1/accounts`."""
    if any(a["username"] == "sam.stores" for a in stack.get("/v1/accounts")):
        return
    for username, role, name in (("sam.stores", "stores-officer", "Sam Stores"),
                                 ("sgt.dane", "supervisor", "Sgt Dane"),
                                 ("audrey", "auditor", None)):
        body = {"username": username, "role": role, "password": "correct horse battery"}
        if name:
            body["display_name"] = name
        stack.post("/v1/accounts", body)


@pytest.mark.parametrize("width", WIDTHS)
def test_stores_officer_sees_the_custody_only_timeline(browser: Any, day_done: RunningStack,
                                                       width: str) -> None:
    """A stores officer signed in with their own password: the asset page draws the custody
    steps without the audit details, and the accounts page is refused."""
    _accounts(day_done)
    page = browser.new_page(viewport=WIDTHS[width])
    page.goto(day_done.url + "/web/login")
    page.fill("#agency", "metpolice")
    page.fill("#username", "sam.stores")
    page.fill("#password", "correct horse battery")
    page.click("#password-submit")
    page.wait_for_url(day_done.url + "/web/")
    page.goto(day_done.url + "/web/assets/radio-1")
    assert page.is_visible("#custody-only") and page.locator("li.step").count() >= 1
    assert page.locator("a[href^='/web/audit/assets/'], a[href^='/web/receipts/']").count() == 0
    _check(page, f"/web/assets/radio-1 as a stores officer at {width}")
    suffix = "-phone" if width == "phone" else ""
    page.screenshot(path=str(SCREENSHOTS / f"asset-stores{suffix}.png"), full_page=True)
    assert page.goto(day_done.url + "/web/accounts").status == 403
    page.close()


def test_web_receipt_is_laid_out_under_the_pages_policy(browser: Any,
                                                         day_done: RunningStack) -> None:
    """A receipt is a self-contained document with its own style block: Chromium applies it
    (its hash is in the policy) and reports no policy violation."""
    page = signed_in(browser, day_done)
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(day_done.url + "/web/audit/assets/evidence-bag-1")
    receipt = page.locator("a[href^='/web/receipts/']").first.get_attribute("href")
    assert receipt is not None and not receipt.endswith(".pdf")
    assert page.goto(day_done.url + receipt).status == 200
    collapse = page.evaluate("getComputedStyle(document.querySelector('table')).borderCollapse")
    assert collapse == "collapse" and violations == []
    _check(page, receipt)
    page.close()
