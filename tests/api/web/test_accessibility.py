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

from tests.api.web.test_pages import signed_in
from tests.api.web.web_support import ROOT, SCREENSHOTS, RunningStack

AXE = ROOT / "contracts" / "node_modules" / "axe-core" / "axe.min.js"
WIDTHS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
PAGES = {
    "start": "/web/",
    "desk": "/web/desk?reader=issue-desk",
    "desk-portal": "/web/desk?reader=portal",
    "auditor": "/web/audit?q=",
    "auditor-asset": "/web/audit/assets/evidence-bag-1",
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
    "problem": "/web/audit/assets/no-such-asset",
    "not-found": "/web/no-such-page",
}
"""Every page a signed-in user opens (the sign-in page is checked signed out)."""
BLOCKING = ("serious", "critical")


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


@pytest.mark.parametrize("width", WIDTHS)
def test_web_pages_accessible_and_fit(browser: Any, day_done: RunningStack, width: str) -> None:
    page = signed_in(browser, day_done)
    page.set_viewport_size(WIDTHS[width])
    for name, path in PAGES.items():
        answer = page.goto(day_done.url + path)
        assert answer.status in (200, 404), (path, answer.status)
        _check(page, f"{path} at {width}")
        if width == "phone":
            page.screenshot(path=str(SCREENSHOTS / f"{name}-phone.png"), full_page=True)
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
    for _ in range(12):  # the bar's links and sign-out, then the banner, then the picker
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "(e => e.id || e.textContent.trim())(document.activeElement)"))
    assert "Acknowledge" in reached and "reader" in reached, reached
    assert reached.index("Acknowledge") < reached.index("reader")  # the alert comes first
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # where the focus is shows
    page.close()
