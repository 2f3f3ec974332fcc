"""`kitledger verify BUNDLE (--rpc URL | --offline)`: check an audit bundle independently.

Prints each check with pass, fail or "not checked" and the first failing item; `--json` prints
the whole report as one JSON object instead. `--witness VKEY` (repeated) and
`--witness-quorum N` give the witness policy the cosignatures are checked under
(`ledger.verify.witnesses`). Exit codes (documented in docs/audit-bundle.md):

- 0: every check passed;
- 1: a check failed (the bundle does not prove what it shows);
- 2: unusable input: unreadable file, malformed or oversize bundle, wrong version;
- 3: the chain node could not be asked (unreachable, or serving another chain).

A progress bar goes to stderr on large bundles when stderr is a terminal, or with --progress.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Final

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE
from ledger.core.bundle import BundleError
from ledger.core.bundle_parse import parse_bundle
from ledger.core.note import NoteError
from ledger.verify import ChainUnreachable, open_chain_reader, read_bundle, verify_bundle
from ledger.verify.witnesses import policy_from_vkeys

EXIT_CHAIN_UNREACHABLE: Final = 3
PROGRESS_MIN_EVENTS: Final = 10_000
"""Below this many events verification takes about a second: no bar needed."""


def _progress_bar(stage: str, done: int, total: int) -> None:
    width = 30
    filled = width * done // total if total else width
    sys.stderr.write(f"\r{stage:>12} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if stage == "done":
        sys.stderr.write("\n")
    sys.stderr.flush()


def _out(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n" if args.json else text)


def run(args: argparse.Namespace) -> int:
    try:
        bundle = parse_bundle(read_bundle(args.bundle))
    except (OSError, BundleError) as exc:
        _out(args, {"verdict": "unusable", "reason": str(exc)}, f"unusable bundle: {exc}\n")
        return EXIT_UNUSABLE
    show = args.progress or (sys.stderr.isatty() and len(bundle.events) >= PROGRESS_MIN_EVENTS)
    try:
        witnesses = (policy_from_vkeys(args.witness, args.witness_quorum) if args.witness
                     else None)
    except NoteError as exc:
        _out(args, {"verdict": "unusable", "reason": str(exc)}, f"unusable witness key: {exc}\n")
        return EXIT_UNUSABLE
    try:
        reader = open_chain_reader(bundle, args.rpc)
        report = verify_bundle(bundle, reader, require_latest=args.require_latest,
                               progress=_progress_bar if show else None, witnesses=witnesses)
    except BundleError as exc:
        _out(args, {"verdict": "unusable", "reason": str(exc)}, f"unusable bundle: {exc}\n")
        return EXIT_UNUSABLE
    except ChainUnreachable as exc:
        _out(args, {"verdict": "chain-unreachable", "reason": str(exc)},
             f"chain unreachable: {exc}\n")
        return EXIT_CHAIN_UNREACHABLE
    record = {"verdict": "valid" if report.ok else "invalid", **report.to_record()}
    _out(args, record, report.render())
    return EXIT_OK if report.ok else EXIT_FAILED


def register(subparsers: Any) -> None:
    """Add `verify` to the `kitledger` parser."""
    parser = subparsers.add_parser("verify", help="verify an audit bundle independently")
    parser.add_argument("bundle", help="audit bundle: a file path or an http(s):// URL")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rpc", metavar="URL", help="chain node to read anchors from")
    where.add_argument("--offline", action="store_true",
                       help="use the receipts in the bundle; says what it could not check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")
    parser.add_argument("--require-latest", action="store_true",
                        help="fail unless the newest checkpoint is the chain's latest anchor")
    parser.add_argument("--witness", action="append", default=[], metavar="VKEY",
                        help="a trusted witness's C2SP verifier key (repeat for each)")
    parser.add_argument("--witness-quorum", type=int, metavar="N",
                        help="cosignatures the newest checkpoint needs (default: every --witness)")
    parser.set_defaults(run=run)
