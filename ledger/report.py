"""The custody report for one asset, in HTML (Jinja2) and PDF (reportlab), fit for court.

Built from a parsed audit bundle and the verifier's result, never from a database: the report
shows exactly what the bundle proves. Every page carries the bundle's fingerprint, so a printed
page can be tied to the file that proves it. People are named only when the caller passes a
commitment -> shown text mapping (the viewer is entitled to see it): `kitledger report` builds
it from a reveals file whose every reveal opens its commitment (`ledger.reveals`), the API's
own audit page from its person rows; otherwise they appear as "person (commitment abcd1234…)".
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.record_scan import read_event
from ledger.core.records import Holder
from ledger.verify.report import VerificationReport

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
TEMPLATE: Final = "custody_report.html.j2"
COMMITMENT_SHOWN: Final = 8
"""Hex characters of a commitment shown in place of a name: enough to tell people apart."""


@dataclass(frozen=True, slots=True)
class ReportStep:
    seq: int
    time: str
    action: str
    holder_from: str
    holder_to: str
    reader: str
    place: str
    verified: bool
    reason: str
    leaf: int
    checkpoint: int
    anchor: int | None


@dataclass
class CustodyReport:
    """Everything the templates show, already decided (no logic in the templates)."""

    asset: str
    generated: str
    fingerprint: str
    verified: bool
    chain_source: str
    steps: list[ReportStep] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    readers: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)


def show_holder(holder: Holder | None, names: Mapping[str, str] | None) -> str:
    if holder is None:
        return "—"
    if holder.kind == "person":
        if names and holder.ref in names:
            return f"{names[holder.ref]} (person)"
        return f"person (commitment {holder.ref[:COMMITMENT_SHOWN]}…)"
    return f"{holder.kind} {holder.ref}"


def build_report(bundle: AuditBundle, verification: VerificationReport, asset: str,
                 generated: str, names: Mapping[str, str] | None = None) -> CustodyReport:
    """The report model for `asset`; `names` maps person commitments to what is shown for them
    (only commitments the caller has proven or owns), if allowed."""
    anchors = {}
    for point in bundle.checkpoints:
        size = Checkpoint.from_record(point.envelope.payload).tree_size
        anchors[size] = point.anchor.block_number if point.anchor else None
    report = CustodyReport(
        asset=asset, generated=generated, fingerprint=bundle.fingerprint.hex(),
        verified=verification.verdict == "valid", chain_source=verification.chain_source,
        checks=[{"name": c.name, "passed": c.passed, "detail": c.detail}
                for c in verification.checks],
        not_checked=[*verification.not_checked, *verification.unpinned])
    failing = ", ".join(c.name for c in verification.checks if c.passed is False)
    holders: dict[str, None] = {}
    readers_used: set[str] = set()
    for item in bundle.events:
        event = read_event(item.record, f"leaf {item.leaf_index}")
        if event.asset != asset:
            continue
        reason = verification.event_failures.get(item.leaf_index, "")
        place = next((h.ref for h in (event.holder_to, event.holder_from)
                      if h is not None and h.kind == "location"), "")
        report.steps.append(ReportStep(
            seq=event.seq, time=event.time, action=event.action.replace("_", " "),
            holder_from=show_holder(event.holder_from, names),
            holder_to=show_holder(event.holder_to, names), reader=event.reader or "—",
            place=place, verified=verification.ok and not reason,
            reason=reason or ("" if verification.ok else
                              f"this step's own proofs hold, but the bundle failed: {failing}"),
            leaf=item.leaf_index, checkpoint=item.tree_size, anchor=anchors.get(item.tree_size)))
        for holder in (event.holder_from, event.holder_to):
            if holder is not None:
                holders[show_holder(holder, names)] = None
        if event.reader:
            readers_used.add(event.reader)
    report.holders = list(holders)
    report.readers = [{"reader": d.reader, "agency": d.agency, "kid": d.kid,
                       "registered": d.registered, "revoked": d.revoked}
                      for d in bundle.devices if d.reader in readers_used]
    return report


def render_html(report: CustodyReport) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(TEMPLATE).render(report=report)


def render_pdf(report: CustodyReport) -> bytes:
    """The report as PDF (A4), with the fingerprint in every page's footer."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4, landscape
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    styles = getSampleStyleSheet()
    small = styles["BodyText"].clone("small", fontSize=8, leading=10)
    buffer = io.BytesIO()

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont("Courier", 7)
        canvas.drawString(12 * mm, 8 * mm, f"Bundle fingerprint {report.fingerprint}  "
                                           f"asset {report.asset}  page {doc.page}")
        canvas.restoreState()

    doc = SimpleDocTemplate(buffer, pagesize=landscape(A4), leftMargin=12 * mm,
                            rightMargin=12 * mm, topMargin=12 * mm, bottomMargin=16 * mm,
                            title=f"Custody report {report.asset}", invariant=1)
    verdict = "VERIFIED" if report.verified else "NOT VERIFIED"
    story: list[Any] = [
        Paragraph("Chain-of-custody report", styles["Title"]),
        Paragraph(f"Asset <b>{_esc(report.asset)}</b> - generated {report.generated}",
                  styles["BodyText"]),
        Paragraph(f"Overall verification: <b>{verdict}</b> (chain: "
                  f"{_esc(report.chain_source)})", styles["BodyText"]),
        Spacer(1, 4 * mm), Paragraph("Timeline", styles["Heading2"]),
    ]
    rows: list[list[Any]] = [["#", "Time (UTC)", "Action", "From", "To", "Reader / place",
                              "Verification"]]
    for s in report.steps:
        status = "verified" if s.verified else f"FAILED: {s.reason}"
        proof = f"leaf {s.leaf}, checkpoint {s.checkpoint}" + (
            f", block {s.anchor}" if s.anchor is not None else "")
        rows.append([str(s.seq), s.time, s.action, Paragraph(_esc(s.holder_from), small),
                     Paragraph(_esc(s.holder_to), small),
                     Paragraph(_esc(f"{s.reader} {s.place}".strip()), small),
                     Paragraph(_esc(f"{status} ({proof})"), small)])
    table = Table(rows, repeatRows=1, colWidths=[8 * mm, 38 * mm, 22 * mm, 48 * mm, 48 * mm,
                                                 38 * mm, 70 * mm])
    table.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.4, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                               ("FONTSIZE", (0, 0), (-1, -1), 8),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story += [table, Paragraph("Checks", styles["Heading2"])]
    for check in report.checks:
        mark = {True: "pass", False: "FAIL", None: "not checked"}[check["passed"]]
        story.append(Paragraph(_esc(f"{mark}: {check['name']} {check['detail']}"), small))
    for item in report.not_checked:
        story.append(Paragraph(_esc(f"not checked: {item}"), small))
    doc.build(story, onFirstPage=footer, onLaterPages=footer)
    return buffer.getvalue()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
