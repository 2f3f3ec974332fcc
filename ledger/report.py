"""The custody report for one asset, in HTML and PDF from one Jinja2 template, fit for court.

Built from a parsed audit bundle and the verifier's result, never from a database: the report
shows exactly what the bundle proves. Every page carries the fingerprint recomputed from the
bundle's lines (and the claimed one beside it when they differ), so a printed page can be tied
to the file that proves it, and the verdict, so a NOT VERIFIED or UNPINNED page cannot be read
for a verified one. Each step names everyone who signed it off (`authorised_by`), and the asset
its tag's GS1 URI where its reads name one. The PDF is the HTML laid out by WeasyPrint as a
tagged PDF/A-3a: no second renderer to drift from the first. People are named only when the
caller passes a commitment -> shown text mapping (the viewer is entitled to see it): `kitledger
report` builds it from a reveals file whose every reveal opens its commitment
(`ledger.reveals`), the API's own audit page from its person rows; otherwise they appear as
"person (commitment abcd1234…)". A step entered by hand at a desk is flagged with why, a step a
correction names shows the correction beside it, and a retired asset says so.

Every report ends with the certificate page (`ledger.certificate`). Beyond one asset,
`build_collection` makes a site or case report: each asset's chain in turn under one verdict and
one certificate; `render_csv` gives the steps of any report as CSV for a case file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledger.certificate import Certificate, build_certificate
from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import parse_record
from ledger.core.errors import LedgerError
from ledger.core.heads import located_at
from ledger.core.record_scan import read_event
from ledger.core.records import (
    ASSET_DISPOSED,
    ASSET_RETIRED,
    EVENT_CORRECTED,
    EVIDENCE_REFERENCED,
    Holder,
    RegistryRecord,
)
from ledger.epcis import asset_epc_uris
from ledger.inventory_report import inventory_rows
from ledger.maintenance_report import maintenance_rows
from ledger.verify.report import VerificationReport
from ledger.verify.trust import LogTrust

TEMPLATES: Final = Path(__file__).resolve().parent / "templates"
TEMPLATE: Final = "custody_report.html.j2"
COMMITMENT_SHOWN: Final = 8
"""Hex characters of a commitment shown in place of a name: enough to tell people apart."""
PDF_VARIANT: Final = "pdf/a-3a"
"""Archival (PDF/A-3, which allows embedded files) and accessible (level A: tagged)."""
PDF_IDENTIFIER: Final = b"kitledger-custody-report"
"""A fixed document id, so one report renders to the same bytes twice."""
VERDICTS: Final = {"valid": "VERIFIED", "invalid": "NOT VERIFIED",
                   "unpinned": "UNPINNED (not everything is vouched for: see the reasons)"}
"""The verifier's verdict as the report states it, on every page."""


@dataclass(frozen=True, slots=True)
class ReportStep:
    seq: int
    time: str
    action: str
    holder_from: str
    holder_to: str
    reader: str
    place: str
    authorisers: tuple[str, ...]
    verified: bool
    reason: str
    leaf: int
    checkpoint: int
    anchor: int | None
    manual: str | None = None
    """Why an officer entered the step by hand at the desk (`reader`), if they did."""
    corrections: tuple[dict[str, Any], ...] = ()
    """The corrections declaring this step wrong: leaf, time, reason."""


@dataclass
class CustodyReport:
    """Everything the templates show, already decided (no logic in the templates)."""

    asset: str
    generated: str
    fingerprint: str
    """Recomputed from the bundle's lines, never taken from its end line."""
    claimed_fingerprint: str
    verified: bool
    verdict: str
    chain_source: str
    epc_uri: str | None = None
    steps: list[ReportStep] = field(default_factory=list)
    holders: list[str] = field(default_factory=list)
    readers: list[dict[str, Any]] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)
    retired: dict[str, Any] | None = None
    manual_entries: int = 0
    corrections: int = 0
    evidence: dict[str, Any] | None = None
    """The exhibit's latest case and exhibit references, with their leaf."""
    disposal: dict[str, Any] | None = None
    """Why and to whom it was disposed of (the recipient by commitment)."""
    maintenance: list[dict[str, Any]] = field(default_factory=list)
    """Checks done on the asset and its times out of service (`ledger.maintenance_report`)."""
    bookings: list[dict[str, Any]] = field(default_factory=list)
    """Bookings of the asset or its class, added only by the API's own report page from the
    agency's database (bookings are not log records, so a bundle has none): id, operation,
    booked (what), people, starts_at, ends_at, state."""
    inventories: list[dict[str, Any]] = field(default_factory=list)
    """The agency's inventories the bundle holds (`ledger.inventory_report`)."""
    certificate: Certificate | None = None
    title: str = "Chain-of-custody report"

    @property
    def items(self) -> list[CustodyReport]:
        """The assets the report shows: this one (the template is shared with `CaseReport`)."""
        return [self]


@dataclass
class CaseReport:
    """A site or case report: every asset's chain, under one verdict and one certificate."""

    title: str
    generated: str
    fingerprint: str
    claimed_fingerprint: str
    verified: bool
    verdict: str
    chain_source: str
    certificate: Certificate
    items: list[CustodyReport]
    inventories: list[dict[str, Any]] = field(default_factory=list)
    """The inventories of the report's site (all the bundle holds for a case report)."""

    @property
    def steps(self) -> list[ReportStep]:
        return [step for item in self.items for step in item.steps]


def show_holder(holder: Holder | None, names: Mapping[str, str] | None) -> str:
    if holder is None:
        return "—"
    if holder.kind == "person":
        if names and holder.ref in names:
            return f"{names[holder.ref]} (person)"
        return f"person (commitment {holder.ref[:COMMITMENT_SHOWN]}…)"
    return f"{holder.kind} {holder.ref}"


def build_report(bundle: AuditBundle, verification: VerificationReport, asset: str,
                 generated: str, names: Mapping[str, str] | None = None,
                 pins: LogTrust | None = None) -> CustodyReport:
    """The report model for `asset`; `names` maps person commitments to what is shown for them
    (only commitments the caller has proven or owns), if allowed; `pins` the trust roots the
    verification used, for the certificate."""
    report = _asset_report(bundle, verification, asset, generated, names)
    report.certificate = build_certificate(bundle, verification, report.verdict, pins,
                                           _correction_count(bundle))
    return report


def site_assets(bundle: AuditBundle, site: str) -> list[str]:
    """The assets whose latest event in `bundle` leaves them at location `site` (the head map's
    rule: what the log places there), in id order."""
    latest: dict[str, tuple[int, str | None]] = {}
    for item in bundle.events:
        try:
            event = read_event(item.record, f"leaf {item.leaf_index}")
        except LedgerError:
            continue  # the verifier fails it; the report shows the verdict
        if event.asset not in latest or event.seq > latest[event.asset][0]:
            latest[event.asset] = (event.seq, located_at(event))
    return sorted(asset for asset, (_seq, at) in latest.items() if at == site)


def build_collection(bundle: AuditBundle, verification: VerificationReport,
                     assets: Sequence[str], title: str, generated: str,
                     names: Mapping[str, str] | None = None,
                     pins: LogTrust | None = None, site: str | None = None) -> CaseReport:
    """A site or case report of `assets` (each once, in the order given) under `title`, with
    the inventories of `site` (of every site when None)."""
    items = [_asset_report(bundle, verification, asset, generated, names)
             for asset in dict.fromkeys(assets)]
    first = _asset_report(bundle, verification, "", generated) if not items else items[0]
    return CaseReport(
        title=title, generated=generated, fingerprint=first.fingerprint,
        claimed_fingerprint=first.claimed_fingerprint, verified=first.verified,
        verdict=first.verdict, chain_source=first.chain_source, items=items,
        certificate=build_certificate(bundle, verification, first.verdict, pins,
                                      _correction_count(bundle)),
        inventories=inventory_rows(bundle, site, names))


def _correction_count(bundle: AuditBundle) -> int:
    return sum(record.kind == EVENT_CORRECTED for record, _leaf in endings(bundle))


def _asset_report(bundle: AuditBundle, verification: VerificationReport, asset: str,
                  generated: str, names: Mapping[str, str] | None = None) -> CustodyReport:
    anchors = {}
    for point in bundle.checkpoints:
        size = Checkpoint.from_record(point.envelope.payload).tree_size
        anchors[size] = point.anchor.block_number if point.anchor else None
    events = [(item, read_event(item.record, f"leaf {item.leaf_index}"))
              for item in bundle.events]
    report = CustodyReport(
        asset=asset, generated=generated, fingerprint=bundle.computed_fingerprint.hex(),
        claimed_fingerprint=bundle.fingerprint.hex(), verified=verification.verdict == "valid",
        verdict=VERDICTS.get(verification.verdict, "NOT VERIFIED"),
        chain_source=verification.chain_source,
        epc_uri=asset_epc_uris(bundle.observations, [e for _, e in events]).get(asset),
        checks=[{"name": c.name, "passed": c.passed, "detail": c.detail}
                for c in verification.checks],
        not_checked=[*verification.not_checked, *verification.unpinned_reasons])
    corrected = _registry_notes(bundle, asset, report)
    report.maintenance = maintenance_rows(bundle, asset, names)
    _evidence_notes(bundle, asset, report)
    failing = ", ".join(c.name for c in verification.checks if c.passed is False)
    holders: dict[str, None] = {}
    readers_used: set[str] = set()
    for item, event in events:
        if event.asset != asset:
            continue
        reason = verification.event_failures.get(item.leaf_index, "")
        place = next((h.ref for h in (event.holder_to, event.holder_from)
                      if h is not None and h.kind == "location"), "")
        report.steps.append(ReportStep(
            seq=event.seq, time=event.time, action=event.action.replace("_", " "),
            holder_from=show_holder(event.holder_from, names),
            holder_to=show_holder(event.holder_to, names), reader=event.reader or "—",
            place=place, authorisers=tuple(show_holder(Holder("person", ref), names)
                                           for ref in event.authorised_by),
            verified=verification.ok and not reason,
            reason=reason or ("" if verification.ok else
                              f"this step's own proofs hold, but the bundle failed: {failing}"),
            leaf=item.leaf_index, checkpoint=item.tree_size, anchor=anchors.get(item.tree_size),
            manual=event.manual, corrections=tuple(corrected.get(item.leaf_index, ()))))
        report.manual_entries += event.manual is not None
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


def _registry_records(bundle: AuditBundle) -> Iterator[tuple[RegistryRecord, int]]:
    """The bundle's registry records with their leaves, in log order (records that do not
    parse are left out: the verifier fails them)."""
    for item in bundle.registry:
        try:
            yield RegistryRecord.from_record(parse_record(item.record)), item.leaf_index
        except LedgerError:
            continue


def endings(bundle: AuditBundle) -> list[tuple[RegistryRecord, int]]:
    """The bundle's corrections and retirements with their leaves, in log order."""
    return [(record, leaf) for record, leaf in _registry_records(bundle)
            if record.kind in (EVENT_CORRECTED, ASSET_RETIRED)]


def case_exhibits(bundle: AuditBundle, case: str) -> list[str]:
    """The assets whose latest case reference in `bundle` names `case` (the head map's rule
    for the case index), in exhibit reference order."""
    latest = {record.get("asset"): record for record, _leaf in _registry_records(bundle)
              if record.kind == EVIDENCE_REFERENCED}
    return [asset for asset, record in sorted(
        latest.items(), key=lambda item: (str(item[1].get("exhibit")), item[0]))
        if record.get("case") == case]


def _registry_notes(bundle: AuditBundle, asset: str, report: CustodyReport
                    ) -> dict[int, list[dict[str, Any]]]:
    """The asset's corrections by the leaf they name, and its retirement into `report`."""
    corrected: dict[int, list[dict[str, Any]]] = {}
    for record, leaf in endings(bundle):
        if record.get("asset") != asset:
            continue
        note = {"leaf": leaf, "time": record.time, "reason": record.get("reason")}
        if record.kind == ASSET_RETIRED:
            report.retired = note
        else:
            corrected.setdefault(record.get("leaf"), []).append(note)
            report.corrections += 1
    return corrected


def _evidence_notes(bundle: AuditBundle, asset: str, report: CustodyReport) -> None:
    """The asset's case and exhibit references and its disposal, from the bundle's records."""
    for record, leaf in _registry_records(bundle):
        if record.kind not in (EVIDENCE_REFERENCED, ASSET_DISPOSED) or record.get(
                "asset") != asset:
            continue
        if record.kind == EVIDENCE_REFERENCED:
            report.evidence = {"case": record.get("case"), "exhibit": record.get("exhibit"),
                               "leaf": leaf}
        else:
            recipient = record.get("recipient")
            report.disposal = {
                "disposition": str(record.get("disposition")).replace("_", " "),
                "recipient": "—" if recipient is None else
                f"commitment {recipient[:COMMITMENT_SHOWN]}…",
                "event_leaf": record.get("leaf"), "leaf": leaf, "time": record.time}


CSV_COLUMNS: Final = ("asset", "seq", "time_utc", "action", "from", "to", "signed_off_by",
                      "reader", "place", "verified", "reason", "leaf", "checkpoint",
                      "anchor_block", "manual_entry", "corrections")
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
"""A cell a spreadsheet would run as a formula starts with one of these (OWASP CSV injection)."""


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def render_csv(report: CustodyReport | CaseReport) -> str:
    """Every step of the report, one row each, for a case file. A cell that a spreadsheet would
    take for a formula is prefixed with an apostrophe (the text is kept, never run)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for item in report.items:
        for step in item.steps:
            writer.writerow([_cell(v) for v in (
                item.asset, step.seq, step.time, step.action, step.holder_from, step.holder_to,
                "; ".join(step.authorisers), step.reader, step.place,
                "yes" if step.verified else "no", step.reason, step.leaf, step.checkpoint,
                step.anchor, step.manual,
                "; ".join(f"leaf {c['leaf']} at {c['time']}: {c['reason']}"
                          for c in step.corrections))])
    return out.getvalue()


def render_html(report: CustodyReport | CaseReport) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(TEMPLATE).render(report=report)


def render_pdf(report: CustodyReport | CaseReport,
               attachments: Sequence[tuple[str, bytes, str]] = ()) -> bytes:
    """The report as a tagged, archival PDF (PDF/A-3a) from the same template as the HTML
    (WeasyPrint lays it out: one renderer, so the two cannot drift). `attachments` are
    (file name, bytes, description): the bundle and trust file, so the report carries its
    own proof."""
    from weasyprint import HTML, Attachment

    files = [Attachment(string=data, name=name, description=description)
             for name, data, description in attachments]
    pdf: bytes = HTML(string=render_html(report), base_url=str(TEMPLATES)).write_pdf(
        pdf_variant=PDF_VARIANT, attachments=files or None, pdf_identifier=PDF_IDENTIFIER,
        uncompressed_pdf=False)
    return pdf
