"""`kitledger report` and `kitledger epcis`: what an auditor hands on, made from a bundle.

`report BUNDLE (--asset ID... | --site SITE | --case CASE) [--case LABEL] (--rpc URL |
--offline) [--trust FILE] [--html PATH] [--pdf PATH] [--csv PATH] [--names FILE]` verifies the
bundle first, with the same trust roots and last verified checkpoint as `verify`, and prints
the per-step status into the report, so a report can never claim more than the verifier found;
the exit code is verify's (0, 1, 2, 3, 4). `--names` is a reveals file (`ledger.reveals`): per
person commitment, the person id and salt that open it and the person's name, held only by
viewers entitled to see them. A reveal that does not open its commitment makes the input
unusable (exit 2) before anything is printed. The PDF embeds the bundle (when read from a file
whose lines still hash to the fingerprint just verified: a URL or standard input is not read
twice) and the trust file, so the report carries its own proof. One `--asset` makes the
one-asset report; several, or `--case LABEL` with them, a case report of those assets, titled
with the label the caller gives; `--case CASE` alone a case report of every exhibit of a case
bundle (`GET /v1/audit/bundles?case=CASE`: its records say which exhibits the case holds, and
the verifier has proven none left out); `--site SITE` a site report of every asset whose latest
event leaves it at SITE. Every report ends with the certificate page; `--csv` writes its steps
for a case file.
`epcis BUNDLE [--out PATH]` writes the bundle's custody events as an EPCIS 2.0 document, each
asset named by the GS1 URI of the tag its events' reads name where that tag has one; an event
the log corrects is followed by its EPCIS error declaration (the same event, declared wrong).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from ledger.cli import EXIT_OK, EXIT_UNUSABLE, CommandError, say_error
from ledger.core.bundle import AuditBundle
from ledger.core.bundle_parse import parse_bundle
from ledger.core.errors import LedgerError
from ledger.core.record_scan import read_event
from ledger.core.records import EVENT_CORRECTED, format_time

CASE_LABEL: Final = re.compile(r"[^\x00-\x1f\x7f]{1,128}")
"""A case reference as written on the file: printable (no control characters), bounded."""


def _now() -> str:
    return format_time(datetime.now(UTC))


def _names(path: str | None) -> dict[str, str] | None:
    """What the report shows for each commitment the reveals file at `path` opens."""
    if path is None:
        return None
    from ledger.reveals import MAX_REVEALS_BYTES, read_reveals
    from ledger.verify.sources import read_regular_file

    return read_reveals(read_regular_file(path, MAX_REVEALS_BYTES, "reveals file"))


def _refuse(what: str, todo: str, code: int) -> int:
    """The report's answer on stdout (as before: its first line is the verdict) and the
    one-line error of every `kitledger` command on stderr."""
    sys.stdout.write(what + "\n")
    say_error("kitledger report", what, todo)
    return code


def _proof_files(args: argparse.Namespace, bundle: AuditBundle) -> list[tuple[str, bytes, str]]:
    """The files the PDF embeds: the bundle the report was verified from, and the trust file.
    One that cannot be embedded is said so on stdout, never left out silently."""
    from ledger.verify import read_bundle
    from ledger.verify.sources import read_regular_file
    from ledger.verify.trust import MAX_TRUST_FILE_BYTES

    files = []
    if args.bundle == "-" or args.bundle.startswith(("http://", "https://")):
        sys.stdout.write("  bundle not embedded in the PDF: not read from a file\n")
    else:
        try:
            data = read_bundle(args.bundle)
            same = parse_bundle(data).computed_fingerprint == bundle.computed_fingerprint
        except (OSError, ValueError, LedgerError):
            same = False
        if same:
            files.append((Path(args.bundle).name, data, "the audit bundle this report verified"))
        else:
            sys.stdout.write("  bundle not embedded in the PDF: its file changed after "
                             "verification\n")
    if args.trust:
        try:
            trust = read_regular_file(args.trust, MAX_TRUST_FILE_BYTES, "trust file")
            files.append((Path(args.trust).name, trust, "the trust roots the report used"))
        except (OSError, ValueError, LedgerError) as exc:
            sys.stdout.write(f"  trust file not embedded in the PDF: {exc}\n")
    return files


def run_report(args: argparse.Namespace) -> int:
    from ledger.commands.verify import (
        EXIT_CHAIN_UNREACHABLE,
        EXIT_CODES,
        UNREACHABLE_TODO,
        UNUSABLE_TODO,
        Unusable,
        load_trust,
        verify_with_roots,
    )
    from ledger.report import (
        CaseReport,
        CustodyReport,
        build_collection,
        build_report,
        case_exhibits,
        render_csv,
        render_html,
        render_pdf,
        site_assets,
    )
    from ledger.verify import ChainUnreachable
    from ledger.verify.trust import pinned_log

    if not (args.html or args.pdf or args.csv):
        raise CommandError("nothing to write: none of --html, --pdf or --csv was given",
                           "give --html PATH, --pdf PATH, --csv PATH or several (`kitledger "
                           "verify` checks a bundle without writing a report)")
    if bool(args.asset) == bool(args.site) and not (args.case and not args.asset):
        raise CommandError("give the report's assets with --asset ID (repeatable), --site "
                           "SITE or --case CASE alone, not both and not neither",
                           "kitledger report --help")
    if args.case is not None and not CASE_LABEL.fullmatch(args.case):
        raise CommandError("--case: expected 1..128 printable characters",
                           "give the case reference as it is written on the case file")
    try:
        names = _names(args.names)
        bundle, result = verify_with_roots(args, progress=True)
        trust = load_trust(args)
    except (OSError, ValueError, LedgerError, Unusable) as exc:
        return _refuse(f"unusable input: {exc}", UNUSABLE_TODO, EXIT_UNUSABLE)
    except ChainUnreachable as exc:
        return _refuse(f"chain unreachable: {exc}", UNREACHABLE_TODO, EXIT_CHAIN_UNREACHABLE)
    except Exception as exc:  # a verifier bug still answers with a reason, never a traceback
        return _refuse(f"unusable input: verifier error ({type(exc).__name__})",
                       "report the bundle that caused it", EXIT_UNUSABLE)
    pins = pinned_log(bundle, trust) if trust is not None else None
    report: CustodyReport | CaseReport
    if args.site:
        assets = site_assets(bundle, args.site)
        if not assets:
            return _refuse(f"unusable input: the bundle places no asset at site {args.site!r}",
                           "check --site against the bundle's locations", EXIT_UNUSABLE)
        title = f"Site report: {args.site}" + (f", case {args.case}" if args.case else "")
        report = build_collection(bundle, result, assets, title, _now(), names, pins,
                                  args.site)
    elif not args.asset:
        if bundle.scope.kind != "case" or bundle.scope.case != args.case:
            return _refuse(f"unusable input: the bundle is not the case bundle of {args.case!r}",
                           "export it with GET /v1/audit/bundles?case=..., or name the "
                           "exhibits with --asset", EXIT_UNUSABLE)
        exhibits = case_exhibits(bundle, args.case)
        if not exhibits:
            return _refuse(f"unusable input: the bundle references no exhibit to {args.case!r}",
                           "check --case against the case bundle's case", EXIT_UNUSABLE)
        report = build_collection(bundle, result, exhibits, f"Case report: {args.case}",
                                  _now(), names, pins)
    elif len(args.asset) > 1 or args.case:
        report = build_collection(bundle, result, args.asset, f"Case report: {args.case}"
                                  if args.case else "Custody report of selected assets",
                                  _now(), names, pins)
    else:
        report = build_report(bundle, result, args.asset[0], _now(), names, pins)
    missing = [item.asset for item in report.items if not item.steps]
    if missing:
        return _refuse(f"unusable input: no events of asset {missing[0]!r} in the bundle",
                       "check --asset against the bundle's assets (kitledger epcis lists "
                       "its events)", EXIT_UNUSABLE)
    if args.csv:
        Path(args.csv).write_text(render_csv(report), encoding="utf-8", newline="")
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
    sys.stdout.write(f"{report.verdict}: {len(report.steps)} steps, "
                     f"fingerprint {report.fingerprint}\n")
    if args.pdf:
        Path(args.pdf).write_bytes(render_pdf(report, _proof_files(args, bundle)))
    for reason in result.unpinned_reasons:
        sys.stdout.write(f"  unpinned: {reason}\n")
    return EXIT_CODES[result.verdict]


def run_epcis(args: argparse.Namespace) -> int:
    from ledger.epcis import Correction, asset_epc_uris, epcis_document
    from ledger.report import endings
    from ledger.verify import read_bundle

    try:
        bundle = parse_bundle(read_bundle(args.bundle))
        events = [read_event(e.record, f"leaf {e.leaf_index}") for e in bundle.events]
        corrections: dict[str, list[Correction]] = {}
        for record, leaf in endings(bundle):
            if record.kind == EVENT_CORRECTED:
                corrections.setdefault(record.get("event"), []).append(
                    Correction(record.time, record.get("reason"), leaf))
        document = epcis_document(events, _now(),
                                  epcs=asset_epc_uris(bundle.observations, events),
                                  corrections=corrections)
    except (OSError, ValueError, LedgerError) as exc:
        raise CommandError(f"unusable input: {exc}", "check the bundle path and that it is a "
                           "kitledger audit bundle") from None
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `report` and `epcis` to the `kitledger` parser."""
    from ledger.commands.verify import add_root_arguments

    report = subparsers.add_parser("report", help="custody report (HTML/PDF/CSV) of assets, "
                                   "a case or a site, with its certificate page")
    report.add_argument("bundle", help="audit bundle: a file path or an http(s):// URL")
    report.add_argument("--asset", action="append", default=[], metavar="ID",
                        help="an asset's id (repeatable: several make a case report)")
    report.add_argument("--site", metavar="SITE",
                        help="site report: every asset the bundle leaves at SITE")
    report.add_argument("--case", metavar="CASE",
                        help="alone: every exhibit of a case bundle's case; with --asset or "
                        "--site: the case reference the report is titled with")
    add_root_arguments(report)
    report.add_argument("--html", metavar="PATH", help="write the HTML report here")
    report.add_argument("--pdf", metavar="PATH", help="write the PDF report here")
    report.add_argument("--csv", metavar="PATH", help="write the report's steps as CSV here")
    report.add_argument("--names", metavar="FILE",
                        help="reveals file: the openings of person commitments (if entitled)")
    report.set_defaults(run=run_report, require_latest=False)
    report.add_argument("--progress", action="store_true", help="progress bar on stderr")
    epcis = subparsers.add_parser("epcis", help="EPCIS 2.0 JSON-LD of a bundle's events")
    epcis.add_argument("bundle", help="audit bundle: a file path or an http(s):// URL")
    epcis.add_argument("--out", metavar="PATH", help="write here instead of stdout")
    epcis.set_defaults(run=run_epcis)
