"""The custody report: fingerprint and per-step status in HTML and PDF, names only if allowed."""

from __future__ import annotations

import re
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from ledger.core.bundle_parse import parse_bundle
from ledger.core.envelope import raw_public_key
from ledger.report import build_report, render_html, render_pdf
from ledger.verify import OfflineChainReader, verify_bundle
from ledger.verify.trust import LogTrust, TrustFile
from tests.ledger.verify.audit_support import (
    ASSETS,
    PEOPLE,
    Story,
    edit_json_line,
    person_ref,
    relines,
)
from tests.ledger.verify.audit_support import section_start as start_of

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
    tool = shutil.which("pdftotext")
    if tool:
        path = tmp_path / "report.pdf"
        path.write_bytes(pdf)
        return subprocess.run([tool, "-layout", str(path), "-"], check=True,
                              capture_output=True, text=True).stdout
    # Without poppler: inflate the page streams and read the text operators.
    text = []
    for stream in re.findall(rb"stream\r?\n(.*?)endstream", pdf, re.DOTALL):
        try:
            text.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            text.append(stream.decode("latin-1"))
    return "".join(text)


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
