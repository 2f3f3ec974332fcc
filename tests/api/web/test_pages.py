"""Each page driven in headless Chromium against the running stack, with screenshots.

The browser signs in with a demo agency key exactly as a user would, then checks what the
scripted day produced: green and red decisions with reasons at the issue desk, a verified
custody timeline with a downloadable bundle, and the agency overview with its alert and chart.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.web.web_support import SCREENSHOTS, RunningStack

TABLET = {"width": 1024, "height": 768}


def signed_in(browser: Any, stack: RunningStack, agency: str = "metpolice") -> Any:
    page = browser.new_page(viewport=TABLET)
    page.goto(stack.url + "/web/desk")
    assert page.url.endswith("/web/login")  # pages need a session
    page.fill("#key", stack.keys[agency])
    page.click("#key-submit")
    page.wait_for_url(stack.url + "/web/")
    return page


@pytest.fixture
def page(browser: Any, day_done: RunningStack) -> Iterator[Any]:
    opened = signed_in(browser, day_done)
    yield opened
    opened.close()


def test_web_login_refuses_a_wrong_key_and_screenshot(browser: Any, stack: RunningStack) -> None:
    page = browser.new_page(viewport=TABLET)
    page.goto(stack.url + "/web/login")
    page.fill("#key", "kl_0000000000000000_" + "x" * 43)
    page.click("#key-submit")
    assert "unknown, revoked, expired or mistyped" in page.inner_text("[role=alert]")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.close()


def test_web_desk_shows_live_decisions_holders_and_refusal(page: Any,
                                                           day_done: RunningStack) -> None:
    page.goto(day_done.url + "/web/desk?reader=issue-desk")
    feed = page.locator("#feed")
    ok = feed.locator("li[data-decision=accept]", has_text="radio-1")
    refused = feed.locator("li[data-decision=refuse]", has_text="taser-1")
    assert ok.count() >= 1, feed.inner_text()
    assert "checked out" in ok.first.inner_text()
    assert "lacks qualification taser" in refused.first.inner_text()
    holders = feed.locator(".holder", has_text="dc-carter")
    assert "evidence-bag-1" in holders.inner_text()
    # The page follows the reader live over its event stream (`test_desk_live.py`).
    page.locator("body[data-live='open']").wait_for(state="attached")
    page.screenshot(path=str(SCREENSHOTS / "desk.png"), full_page=True)


def test_web_auditor_timeline_verified_and_bundle_downloads(page: Any,
                                                             day_done: RunningStack) -> None:
    page.goto(day_done.url + "/web/audit")
    page.fill("#q", "evidence")
    page.click("form.pick button[type=submit]")  # not the header's "Sign out"
    page.click("a:has-text('evidence-bag-1')")
    page.wait_for_url("**/web/audit/assets/evidence-bag-1")
    steps = page.locator("ol.timeline li")
    assert steps.count() == 2
    assert page.locator("li[data-verified=false]").count() == 0
    assert "signed off by dc-carter, sgt-dane" in steps.nth(1).inner_text()
    assert "All 2 steps" in page.inner_text("#summary")
    page.screenshot(path=str(SCREENSHOTS / "auditor.png"), full_page=True)
    # The link downloads with the page's session; the bundle exists once the agency log has a
    # signed checkpoint covering the hand-over (the anchorer makes one every few seconds).
    href = page.get_attribute("text=Download audit bundle", "href")
    answer = day_done.wait_for(lambda: _bundle_ready(page.request.get(day_done.url + href)), 60)
    assert '"kitledger-audit-bundle"' in answer.text().splitlines()[0]
    assert 'filename="evidence-bag-1.bundle.jsonl"' in answer.headers["content-disposition"]
    # The court report: a real PDF naming the bundle's fingerprint and the verified hand-over.
    pdf = page.request.get(day_done.url + page.get_attribute("#report-pdf", "href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.body().startswith(b"%PDF-")
    text = _pdf_text(pdf.body())
    # The owning agency's staff see holders by their pseudonymous ids, and every step verified.
    assert "evidence-bag-1" in text and "dc-carter (person)" in text
    # Both who signed the hand-over off, as the page shows, each name whole.
    assert "sgt-dane (person)" in text
    assert "Overall verification: VERIFIED" in text
    # It prints the fingerprint of the bundle it verified (a newer checkpoint makes a new one).
    assert re.search(r"Bundle fingerprint [0-9a-f]{64}", text.replace("\n", " "))
    # Its certificate page names the trust root the page used: the server's own log key.
    assert "Certificate of the verification process" in text and "log public key" in text


def test_web_agency_sites_stocktake_alerts_chart(page: Any, day_done: RunningStack) -> None:
    page.goto(day_done.url + "/web/agency")
    assert "unauthorised removal" in page.inner_text("ul.decisions")
    assert page.locator("h2", has_text="HQ property store").count() == 1
    # The stocktake's figures add up: expected = seen + missing, unexpected apart.
    stock = page.locator("table.stock[data-site=hq-stores]")
    figures = {name: int(stock.locator(f"tr[data-figure={name}] td.n").inner_text())
               for name in ("expected", "seen", "missing", "unexpected", "unknown")}
    assert figures["expected"] == figures["seen"] + figures["missing"], figures
    missing = stock.locator("tr[data-figure=missing] td").nth(1).inner_text()
    assert figures["missing"] == 0 or missing != "—"  # each figure lists its assets
    # The body camera that left without a check-out shows its alert, never a plain tick.
    bodycam = page.locator("table.site-assets tr[data-asset=bodycam-1] td.check")
    assert "open alert: unauthorised removal" in bodycam.inner_text()
    assert "✔" not in bodycam.inner_text()
    assert "person dc-carter" in page.inner_text("tr[data-asset=evidence-bag-1]")  # as such
    assert "site HQ property store" in page.inner_text("tr[data-asset=radio-1]")
    # Utilisation over today by hour, one chart per class with its table.
    # The day's four classes (radio, taser, evidence bag, body camera), each once; other tests
    # on the shared stack may register more classes, which get their charts too.
    charts = page.locator("figure.use")
    classes = [charts.nth(i).get_attribute("data-class") for i in range(charts.count())]
    assert {"radio", "taser", "evidence-bag", "bodycam"} <= set(classes)
    assert len(classes) == len(set(classes))
    assert charts.locator("figcaption", has_text="Evidence bag").count() == 1
    assert page.locator("figure.use svg[role=img] title").count() == len(classes)
    bags = page.locator("figure.use[data-class=evidence-bag]")
    assert bags.locator("table.usetable tbody tr").count() == 24
    assert bags.locator("rect.bar").count() >= 1  # the bag has been out since its hand-over
    page.select_option("#by", "day")
    page.click("form.period button[type=submit]")
    page.wait_for_url("**/web/agency?*by=day*")
    assert page.locator("figure.use[data-class=radio] table.usetable tbody tr").count() == 1
    # Each reader's health as its agent reports it (the retained status at least).
    desk = page.locator("table.readers tr", has_text="issue-desk")
    assert "online" in desk.inner_text()
    page.goto(day_done.url + "/web/agency")
    page.screenshot(path=str(SCREENSHOTS / "agency.png"), full_page=True)


def test_web_asset_page_identity_holder_last_seen_and_timeline(
        page: Any, day_done: RunningStack) -> None:
    page.goto(day_done.url + "/web/agency")
    page.click("tr[data-asset=evidence-bag-1] a")
    page.wait_for_url("**/web/assets/evidence-bag-1")
    assert page.inner_text("#epc-hex") == "341800000000000000000301"
    assert page.inner_text("#epc-uri") == "urn:epc:id:giai:000000.769"
    assert page.inner_text("#holder") == "person dc-carter"
    assert "checked out" in page.inner_text("#status")
    assert "HQ property store" in page.inner_text("#last-seen")
    steps = page.locator("ol.timeline li")
    assert steps.count() == 2
    assert "site HQ property store" in steps.nth(0).inner_text()
    assert "authorised by dc-carter, sgt-dane" in steps.nth(1).inner_text()
    assert page.locator("ol.timeline li.no").count() == 0
    page.screenshot(path=str(SCREENSHOTS / "asset.png"), full_page=True)
    # The body camera: its open alert stands at the top, beside its "in store" on record.
    page.goto(day_done.url + "/web/assets/bodycam-1")
    assert "unauthorised removal" in page.inner_text("[role=status]")
    assert "open alert" in page.inner_text("#status")
    # A mistyped link is a page saying so, not problem JSON.
    answer = page.goto(day_done.url + "/web/assets/no-such-asset")
    assert answer.status == 404 and "asset not found" in page.inner_text("#problem-detail")


@pytest.mark.parametrize("path", ["/web/desk", "/web/desk?reader=issue-desk",
                                  "/web/desk/feed?reader=issue-desk", "/web/audit?q=",
                                  "/web/agency", "/web/agency?by=day"])
def test_web_agency_b_never_sees_agency_a(browser: Any, day_done: RunningStack,
                                           path: str) -> None:
    page = signed_in(browser, day_done, "fireservice")
    page.goto(day_done.url + path)
    text = page.content()
    for other in ("radio-1", "taser-1", "evidence-bag-1", "bodycam-1", "pc-adams",
                  "issue-desk", "HQ property store", "leaving without"):
        assert not re.search(rf"(?<![\w-]){re.escape(other)}(?![\w-])", text), (path, other)
    if path.startswith("/web/audit"):
        assert "fire-radio-1" in text  # its own assets are there
    page.close()


def test_web_agency_b_cannot_open_agency_a_asset(browser: Any, day_done: RunningStack) -> None:
    page = signed_in(browser, day_done, "fireservice")
    for path in ("/web/audit/assets/radio-1", "/web/audit/assets/radio-1/bundle",
                 "/web/assets/radio-1"):
        answer = page.goto(day_done.url + path)
        assert answer.status == 404 and "radio-1" not in page.content().replace(path, "")
    page.close()


def _pdf_text(body: bytes) -> str:
    """The PDF's text through poppler's pdftotext (installed by `make test`)."""
    out = subprocess.run(["pdftotext", "-", "-"], input=body, capture_output=True, check=True)
    return out.stdout.decode()


def _bundle_ready(answer: Any) -> Any:
    assert answer.status in (200, 409), answer.status  # 409: no checkpoint yet
    return answer if answer.status == 200 and b"check_out" in answer.body() else None
