"""The custody report: fingerprint and per-step status in HTML and PDF, names only if allowed."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.bundle import AuditBundle, Scope
from ledger.core.bundle_parse import parse_bundle
from ledger.core.envelope import raw_public_key
from ledger.core.records import Holder
from ledger.report import CustodyReport, build_report, render_html, render_pdf
from ledger.verify import OfflineChainReader, verify_bundle
from ledger.verify.report import VerificationReport
from ledger.verify.trust import LogTrust, TrustFile
from tests.ledger.verify.audit_support import (
    ASSETS,
    PEOPLE,
    ChainSetup,
    Story,
    edit_json_line,
    person_ref,
    relines,
)
from tests.ledger.verify.audit_support import section_start as start_of
from tests.paths import VECTORS_DIR

NAMES = {person_ref(pid): name for pid, name in PEOPLE.items()}


@pytest.fixture(scope="module")
def verified(bundle: bytes, story: Story) -> tuple[object, object]:
    parsed = parse_bundle(bundle)
    pins = TrustFile((LogTrust("met-police", (raw_public_key(story.log_key.public_key()),),
                               None, None),))
    return parsed, verify_bundle(parsed, OfflineChainReader(parsed), trust=pins)


def test_html_shows_fingerprint_status_and_hides_names(verified: tuple[object, object]) -> None:
    parsed, result = verified
    report = build_report(parsed, result, ASSETS[0], "2026-03-02T00:00:00.000Z")  # type: ignore[arg-type]
    html = render_html(report)
    fingerprint = parsed.fingerprint.hex()  # type: ignore[attr-defined]
    assert html.count(fingerprint) >= 2  # header and the footer printed on every page
    assert html.count(">verified<") == 4 and "FAILED" not in html
    assert "PC Jane Doe" not in html and "PC John Roe" not in html
    assert f"person (commitment {person_ref('officer-17')[:8]}" in html
    assert "desk-1" in html and "store-central" in html


def test_html_names_people_for_an_entitled_viewer(verified: tuple[object, object]) -> None:
    parsed, result = verified
    html = render_html(build_report(parsed, result, ASSETS[0], "2026-03-02T00:00:00.000Z",  # type: ignore[arg-type]
                                    names=NAMES))
    assert "PC Jane Doe (person)" in html and "PC John Roe (person)" in html


def test_failed_step_is_marked_with_its_reason(bundle: bytes) -> None:
    first = start_of(bundle, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first + 2] = edit_json_line(lines[first + 2],
                                          lambda r: r.update(time="2026-01-02T09:30:00.000Z"))
        return lines

    parsed = parse_bundle(relines(bundle, edit))
    result = verify_bundle(parsed, OfflineChainReader(parsed))
    html = render_html(build_report(parsed, result, ASSETS[0], "2026-03-02T00:00:00.000Z"))
    assert "NOT VERIFIED" in html and "FAILED</span>: " in html and "root" in html


def _pdf_text(pdf: bytes, tmp_path: Path) -> str:
    return "\f".join(_pages(pdf, tmp_path))


def test_pdf_is_valid_and_carries_the_fingerprint(verified: tuple[object, object],
                                                  story: Story, tmp_path: Path) -> None:
    parsed, result = verified
    pdf = render_pdf(build_report(parsed, result, ASSETS[0], "2026-03-02T00:00:00.000Z"))  # type: ignore[arg-type]
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    text = _pdf_text(pdf, tmp_path)
    assert parsed.fingerprint.hex() in text  # type: ignore[attr-defined]
    assert "PC Jane Doe" not in text and "verified" in text
    toppm = shutil.which("pdftoppm")
    if toppm:
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf)
        subprocess.run([toppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(path),
                        str(tmp_path / "page")], check=True)
        assert (tmp_path / "page-1.png").stat().st_size > 1000


# Issue 24: every co-signer, the tag's GS1 URI, the fingerprint recomputed from the bundle's
# lines, and a verdict other than VERIFIED unmistakable on every page of HTML and PDF.
CO_SIGNERS = {"dc-carter": "DC Carter-Wynn", "sgt-dane": "Sgt Dane-Holt"}
BAG = "bag-7"
BAG_TAG = "341800000000000000000101"


@pytest.fixture(scope="module")
def bag_story(embedded_setup: ChainSetup, log_key: Ed25519PrivateKey) -> Story:
    """An evidence bag with a GIAI tag, checked out under dual sign-off and returned, with
    enough steps that the PDF runs to several pages, anchored on the embedded chain."""
    story = Story(log_key=log_key, setup=embedded_setup, heads=True)
    story.add_reader("desk-1")
    story.add_reader("desk-2")
    story.open_registry({"desk-1": "issue_desk", "desk-2": "return_desk"},
                        site="evidence-store", tags={BAG: BAG_TAG})
    store = Holder("location", "evidence-store")
    officer = Holder("person", person_ref("officer-17"))
    signers = tuple(person_ref(p) for p in CO_SIGNERS)
    story.custody(BAG, "register", "2026-01-02T08:00:00.000Z", "desk-1", None, store,
                  epc=BAG_TAG)
    for day in range(10, 28):
        story.custody(BAG, "check_out", f"2026-01-{day}T09:00:00.000Z", "desk-1", store,
                      officer, epc=BAG_TAG, authorised_by=signers)
        story.custody(BAG, "check_in", f"2026-01-{day}T17:00:00.000Z", "desk-2", officer,
                      store, epc=BAG_TAG)
    story.checkpoint("2026-02-01T00:00:00.000Z")
    return story


def _verified(data: bytes, story: Story) -> tuple[AuditBundle, VerificationReport]:
    parsed = parse_bundle(data)
    pins = TrustFile((LogTrust("met-police", (raw_public_key(story.log_key.public_key()),),
                               None, None),))
    return parsed, verify_bundle(parsed, OfflineChainReader(parsed), trust=pins)


def _bag_report(data: bytes, story: Story, names: dict[str, str] | None = None
                ) -> tuple[AuditBundle, CustodyReport]:
    parsed, result = _verified(data, story)
    return parsed, build_report(parsed, result, BAG, "2026-03-02T00:00:00.000Z", names)


def _pages(pdf: bytes, tmp_path: Path) -> list[str]:
    """The PDF's text page by page (pdftotext, from poppler-utils: scripts/system-deps.sh)."""
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout
    return [page for page in text.split("\f") if page.strip()]


def test_every_co_signer_is_named(bag_story: Story, tmp_path: Path) -> None:
    names = {person_ref(p): n for p, n in CO_SIGNERS.items()}
    _, report = _bag_report(bag_story.bundle(scope=Scope("asset", (BAG,))), bag_story, names)
    signed = [s for s in report.steps if s.action == "check out"]
    assert signed and all(s.authorisers == ("DC Carter-Wynn (person)", "Sgt Dane-Holt (person)")
                          for s in signed)
    html = render_html(report)
    assert html.count('<span class="who">DC Carter-Wynn (person)</span>, '
                      '<span class="who">Sgt Dane-Holt (person)</span>') == len(signed)
    text = "".join(_pages(render_pdf(report), tmp_path))
    # A table cell wraps its text over lines, never within a name: each, once per signed step.
    assert text.count("DC Carter-Wynn (person)") == len(signed)
    assert text.count("Sgt Dane-Holt (person)") == len(signed)
    # Without the reveals, both still appear, by commitment.
    _, hidden = _bag_report(bag_story.bundle(scope=Scope("asset", (BAG,))), bag_story)
    html = render_html(hidden)
    for person in CO_SIGNERS:
        assert html.count(f"person (commitment {person_ref(person)[:8]}…)") == len(signed)
    assert "DC Carter-Wynn" not in html


def test_the_tags_gs1_uri_is_shown(bag_story: Story) -> None:
    _, report = _bag_report(bag_story.bundle(scope=Scope("asset", (BAG,))), bag_story)
    assert report.epc_uri == "urn:epc:id:giai:000000.257"
    assert "urn:epc:id:giai:000000.257" in render_html(report)


def _claiming(data: bytes, fingerprint: str) -> bytes:
    """The bundle with its end line claiming `fingerprint` (its lines unchanged)."""
    lines = data.split(b"\n")
    lines[-2] = edit_json_line(lines[-2], lambda r: r.update(fingerprint=fingerprint))
    return b"\n".join(lines)


def test_footer_fingerprint_is_recomputed_not_claimed(bag_story: Story, tmp_path: Path
                                                      ) -> None:
    data = bag_story.bundle(scope=Scope("asset", (BAG,)))
    claimed = "ab" * 32
    parsed, report = _bag_report(_claiming(data, claimed), bag_story)
    computed = parsed.computed_fingerprint.hex()
    assert computed != claimed and report.fingerprint == computed
    html = render_html(report)
    footer = html[html.index("<footer"):]
    assert computed in footer and claimed not in footer
    assert f"claims fingerprint <span class=\"mono\">{claimed}</span>: it does not match" in html
    for page in _pages(render_pdf(report), tmp_path):
        assert computed in page and "NOT VERIFIED" in page


def test_not_verified_is_a_banner_on_every_page(bag_story: Story, tmp_path: Path) -> None:
    data = bag_story.bundle(scope=Scope("asset", (BAG,)))
    first = start_of(data, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first + 2] = edit_json_line(lines[first + 2],
                                          lambda r: r.update(time="2026-01-10T09:30:00.000Z"))
        return lines

    _, report = _bag_report(relines(data, edit), bag_story)
    assert not report.verified and report.verdict == "NOT VERIFIED"
    html = render_html(report)
    assert '<div class="banner" role="alert">NOT VERIFIED</div>' in html
    assert '<footer class="fingerprint"><span class="fail">NOT VERIFIED</span>' in html
    pages = _pages(render_pdf(report), tmp_path)
    assert len(pages) >= 3
    for page in pages:
        # The banner at the top of every page, and the footer at its foot.
        assert page.strip().splitlines()[0].strip() == "NOT VERIFIED"
        assert "NOT VERIFIED · Bundle fingerprint" in page
    _, good = _bag_report(data, bag_story)
    assert good.verdict == "VERIFIED" and "NOT VERIFIED" not in render_html(good)


def test_unpinned_is_stated_on_every_page(bag_story: Story, tmp_path: Path) -> None:
    parsed = parse_bundle(bag_story.bundle(scope=Scope("asset", (BAG,))))
    result = verify_bundle(parsed, OfflineChainReader(parsed))
    report = build_report(parsed, result, BAG, "2026-03-02T00:00:00.000Z")
    assert result.verdict == "unpinned" and report.verdict.startswith("UNPINNED")
    assert '<div class="banner" role="alert">UNPINNED' in render_html(report)
    for page in _pages(render_pdf(report), tmp_path):
        assert page.strip().startswith("UNPINNED")


def test_pdf_is_tagged_archival_and_carries_its_proof(bag_story: Story, tmp_path: Path
                                                      ) -> None:
    data = bag_story.bundle(scope=Scope("asset", (BAG,)))
    _, report = _bag_report(data, bag_story)
    pdf = render_pdf(report, attachments=[("bundle.jsonl", data, "the audit bundle")])
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True,
                          text=True).stdout
    assert re.search(r"^Tagged:\s+yes$", info, re.MULTILINE), info
    meta = subprocess.run(["pdfinfo", "-meta", str(path)], check=True, capture_output=True,
                          text=True).stdout
    assert re.search(r"<pdfaid:part>3</pdfaid:part>|pdfaid:part=\"3\"", meta), meta
    assert re.search(r"<pdfaid:conformance>A</pdfaid:conformance>|pdfaid:conformance=\"A\"",
                     meta), meta
    listed = subprocess.run(["pdfdetach", "-list", str(path)], check=True,
                            capture_output=True, text=True).stdout
    assert "bundle.jsonl" in listed
    subprocess.run(["pdfdetach", "-save", "1", "-o", str(tmp_path / "out.jsonl"), str(path)],
                   check=True)
    assert (tmp_path / "out.jsonl").read_bytes() == data
    assert render_pdf(report) == render_pdf(report)  # same report, same bytes


# Issue 24, the certificate page: each check by name with its result, what was not checked,
# the trust roots, the recomputed fingerprint and the verifier's version; the verdict on it too.
def test_certificate_lists_every_check_and_the_trust_roots(bag_story: Story, tmp_path: Path
                                                           ) -> None:
    from ledger.certificate import CHECKS, verifier_version

    parsed, result = _verified(bag_story.bundle(scope=Scope("asset", (BAG,))), bag_story)
    key = raw_public_key(bag_story.log_key.public_key())
    pins = TrustFile((LogTrust("met-police", (key,), None, None),)).logs[0]
    report = build_report(parsed, result, BAG, "2026-03-02T00:00:00.000Z", pins=pins)
    cert = report.certificate
    assert cert is not None and cert.fingerprint == parsed.computed_fingerprint.hex()
    assert [(c.name, c.result) for c in cert.checks] == [
        (c.name, {True: "passed", False: "FAILED", None: "not checked"}[c.passed])
        for c in result.checks]
    assert all(c.name in CHECKS for c in result.checks)  # every check has its wording
    by_name = {c.name: c for c in cert.checks}
    assert by_name["trust-roots"].result == "passed"
    assert by_name["witness-cosignatures"].result == "not checked"
    assert any(line.startswith("witness cosignatures") for line in cert.not_verified)
    assert cert.trust_roots[:2] == [("agency", "met-police"), ("log public key", key.hex())]
    assert cert.verifier_version == verifier_version() and cert.verifier_version.startswith(
        "kitledger ")
    assert cert.anchors and all(a.block > 0 and len(a.transaction) == 66 and not a.confirmed
                                for a in cert.anchors)  # offline: the receipt only
    html = render_html(report)
    assert "Certificate of the verification process" in html and "Signature</th>" in html
    assert f"<td class=\"mono\">{key.hex()}</td>" in html
    pages = _pages(render_pdf(report), tmp_path)
    start = _certificate_start(pages)
    certificate = "\n".join(pages[start:])
    for check in ("inclusion-proofs", "hash-chains", "checkpoint-consistency", "completeness",
                  "witness-cosignatures", "anchors", "corrections"):
        assert check in certificate
    assert "receipt in the bundle" in certificate and "Declaration" in pages[-1]
    assert cert.fingerprint in certificate and cert.verifier_version in certificate
    # The certificate page rendered (pdftoppm), a real image of it.
    path = tmp_path / "report.pdf"
    subprocess.run(["pdftoppm", "-png", "-r", "40", "-f", str(start + 1), "-l",
                    str(start + 1), str(path), str(tmp_path / "cert")], check=True)
    [image] = list(tmp_path.glob("cert-*.png"))
    assert image.stat().st_size > 2000


def _certificate_start(pages: list[str]) -> int:
    """The index of the page the certificate starts on: once, after every asset's pages."""
    starts = [n for n, page in enumerate(pages) if "Certificate of the verification" in page]
    assert len(starts) == 1 and starts[0] >= 1, starts
    return starts[0]


def test_unpinned_certificate_says_nothing_was_pinned(bag_story: Story) -> None:
    parsed = parse_bundle(bag_story.bundle(scope=Scope("asset", (BAG,))))
    report = build_report(parsed, verify_bundle(parsed, OfflineChainReader(parsed)), BAG,
                          "2026-03-02T00:00:00.000Z")
    assert report.certificate is not None and report.certificate.trust_roots == []
    assert any("no trust file pinned" in line for line in report.certificate.not_verified)
    assert "No trust roots were pinned" in render_html(report)


def test_tampered_bundles_certificate_is_not_verified_on_every_page(bag_story: Story,
                                                                     tmp_path: Path) -> None:
    data = bag_story.bundle(scope=Scope("asset", (BAG,)))
    first = start_of(data, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first + 2] = edit_json_line(lines[first + 2],
                                          lambda r: r.update(time="2026-01-10T09:45:00.000Z"))
        return lines

    _, report = _bag_report(relines(data, edit), bag_story)
    assert report.certificate is not None and not report.certificate.verified
    failed = [c.name for c in report.certificate.checks if c.result == "FAILED"]
    assert failed  # the certificate names the check that failed
    pages = _pages(render_pdf(report), tmp_path)
    start = _certificate_start(pages)
    for number, page in enumerate(pages, 1):
        assert page.strip().splitlines()[0].strip() == "NOT VERIFIED", number
        assert f"NOT VERIFIED · page {number} of {len(pages)}" in page, number
    assert all(name in "".join(pages[start:]) for name in failed)


# Reports beyond one item: a site report, a case report of chosen assets, and CSV of the steps.
def test_site_and_case_reports_carry_every_chain_and_one_certificate(
        verified: tuple[AuditBundle, VerificationReport], tmp_path: Path) -> None:
    from ledger.report import build_collection, render_csv, site_assets

    parsed, result = verified
    at_store = site_assets(parsed, "store-central")
    assert at_store and set(at_store) <= set(ASSETS)
    site = build_collection(parsed, result, at_store, "Site report: store-central",
                            "2026-03-02T00:00:00.000Z")
    assert [item.asset for item in site.items] == at_store
    assert site.certificate.fingerprint == parsed.computed_fingerprint.hex()
    case = build_collection(parsed, result, [ASSETS[1], ASSETS[0], ASSETS[1]],
                            "Case report: OP-2026-0042", "2026-03-02T00:00:00.000Z")
    assert [item.asset for item in case.items] == [ASSETS[1], ASSETS[0]]  # each once, in order
    html = render_html(case)
    assert "<h1>Case report: OP-2026-0042</h1>" in html
    assert html.count("Certificate of the verification process") == 1
    for asset in ASSETS[:2]:
        assert f"Timeline of {asset}" in html
    _certificate_start(_pages(render_pdf(case), tmp_path))
    rows = list(csv.reader(io.StringIO(render_csv(case))))
    assert rows[0][:4] == ["asset", "seq", "time_utc", "action"]
    assert len(rows) - 1 == sum(len(item.steps) for item in case.items)
    assert {r[0] for r in rows[1:]} == {ASSETS[0], ASSETS[1]}
    assert all(r[9] == "yes" for r in rows[1:])


@pytest.mark.parametrize("hostile", ["=HYPERLINK(\"http://x\")", "+1+1", "-2+3", "@SUM(A1)",
                                     "\tcmd", "a,b\"c\nd"])
def test_csv_never_hands_a_spreadsheet_a_formula(verified: tuple[AuditBundle,
                                                                 VerificationReport],
                                                  hostile: str) -> None:
    from ledger.report import render_csv

    parsed, result = verified
    report = build_report(parsed, result, ASSETS[0], "2026-03-02T00:00:00.000Z",
                          names={person_ref("officer-17"): hostile})
    rows = list(csv.reader(io.StringIO(render_csv(report))))
    cells = [cell for row in rows[1:] for cell in row if hostile.strip("\t") in cell]
    assert cells
    for cell in cells:
        assert not cell.startswith(("=", "+", "-", "@", "\t")), cell


# Issue 24, the whole-case report: `kitledger report --case CASE` alone takes the exhibits from a
# case bundle's records (the corpus's case variants), and refuses any other bundle.
CORPUS = VECTORS_DIR / "bundles"


def _report_case(capsys: pytest.CaptureFixture[str], bundle: str, case: str, out: Path
                 ) -> tuple[int, str]:
    from ledger.cli import main

    code = main(["report", str(CORPUS / bundle), "--case", case, "--offline", "--no-state",
                 "--html", str(out), "--csv", str(out.with_suffix(".csv"))])
    return code, capsys.readouterr().out


def test_case_report_takes_every_exhibit_from_the_case_bundle(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "case.html"
    code, said = _report_case(capsys, "case-valid.jsonl", "24-001234", out)
    assert code == 4, said  # the corpus's forged history: valid, not pinned
    html = out.read_text()
    assert "<h1>Case report: 24-001234</h1>" in html
    camera, taser = "urn:epc:id:giai:0614141.1001", "urn:epc:id:giai:0614141.1002"
    assert html.index("exhibit <strong>JD/1</strong>") < html.index("exhibit <strong>JD/2")
    assert "(scope: case 24-001234: " in html
    with out.with_suffix(".csv").open(newline="", encoding="utf-8") as sheet:
        assets = [row["asset"] for row in csv.DictReader(sheet)]
    assert assets[0] == camera and set(assets) == {camera, taser}
    assert assets == sorted(assets, key=[camera, taser].index)  # exhibit order, chain by chain


@pytest.mark.parametrize(("bundle", "case", "code", "said"), [
    ("case-valid.jsonl", "24-009999", 2, "not the case bundle of '24-009999'"),
    ("valid.jsonl", "24-001234", 2, "not the case bundle of '24-001234'"),
    ("site-valid.jsonl", "24-001234", 2, "not the case bundle"),
    ("case-exhibit-omitted.jsonl", "24-001234", 1, "NOT VERIFIED"),
])
def test_case_report_refuses_other_bundles_and_marks_a_short_case(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, bundle: str, case: str, code: int,
        said: str) -> None:
    answer, out = _report_case(capsys, bundle, case, tmp_path / "case.html")
    assert answer == code and said in out, out
