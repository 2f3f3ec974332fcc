"""`kitledger receipt check`: tie a printed custody receipt to the log.

Every value comes in as it is printed on the receipt (leaf index, event hash, checkpoint tree
size and root), with the log's C2SP tiles (`--tiles`: a directory from `kitledger tiles
export`, or the URL prefix they are served under) or an audit bundle that holds the event
(`--bundle`), and the log key the auditor pins (`--log-key`, raw Ed25519 public key in hex).
Prints one JSON verdict and exits 0 when the log includes that event in that checkpoint, 1 when
it does not, 2 when the input is unusable.
"""

from __future__ import annotations

import argparse
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, emit, say_error
from ledger.commands.proof import UnusableInput, parse_hash, parse_number
from ledger.core.bundle_parse import parse_bundle
from ledger.core.envelope import key_id, public_key_from_raw
from ledger.core.errors import LedgerError, ProofError
from ledger.core.merkle import ProofInputError
from ledger.core.note import NoteError, log_origin
from ledger.receipt import ReceiptClaim, ReceiptMismatch, check_receipt, check_receipt_in_bundle
from ledger.tiled_log import TOKEN_ENVIRONMENT, open_source
from ledger.verify.sources import read_bundle

TODO = "copy the values again from the receipt, and check the tiles and the log key (see --help)"


def run(args: argparse.Namespace) -> int:
    try:
        claim = ReceiptClaim(
            leaf_index=parse_number("--leaf", args.leaf),
            event_hash=parse_hash("--event-hash", args.event_hash),
            tree_size=parse_number("--size", args.size), root=parse_hash("--root", args.root))
        raw_key = parse_hash("--log-key", args.log_key)
        origin = log_origin(key_id(public_key_from_raw(raw_key)))
        source = open_source(args.tiles) if args.tiles else None
        bundle = None if args.tiles else parse_bundle(read_bundle(args.bundle))
    except (UnusableInput, OSError, ValueError, LedgerError) as err:
        emit({"verdict": "unusable", "reason": str(err)})
        say_error("kitledger receipt check", str(err), TODO)
        return EXIT_UNUSABLE
    facts: dict[str, Any] = {"leaf": claim.leaf_index, "event_hash": claim.event_hash.hex(),
                             "size": claim.tree_size, "root": claim.root.hex()}
    try:
        if source is not None:
            facts["tiles_size"] = check_receipt(claim, source, origin, raw_key)
        else:
            assert bundle is not None
            check_receipt_in_bundle(claim, bundle, raw_key)
    except (ReceiptMismatch, ProofError, ProofInputError, NoteError) as err:
        emit({"verdict": "invalid", **facts, "reason": str(err)})
        return EXIT_FAILED
    except LedgerError as err:  # unreadable or missing tiles
        emit({"verdict": "unusable", **facts, "reason": str(err)})
        say_error("kitledger receipt check", str(err), TODO)
        return EXIT_UNUSABLE
    emit({"verdict": "valid", **facts})
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `receipt check` to the `kitledger` parser."""
    receipt = subparsers.add_parser("receipt", help="check a printed custody receipt")
    actions = receipt.add_subparsers(dest="receipt_action", required=True,
                                     parser_class=type(receipt))
    check = actions.add_parser("check", help="the log includes the receipt's event in its "
                               "checkpoint")
    check.add_argument("--leaf", required=True, help="the event's leaf index")
    check.add_argument("--event-hash", required=True, help="the event hash, hex")
    check.add_argument("--size", required=True, help="the checkpoint's tree size")
    check.add_argument("--root", required=True, help="the checkpoint's root, hex")
    where = check.add_mutually_exclusive_group(required=True)
    where.add_argument("--tiles", metavar="URL|DIR",
                       help="the log's C2SP tiles: a directory (kitledger tiles export) or the "
                       f"URL prefix they are served under (an API key in ${TOKEN_ENVIRONMENT})")
    where.add_argument("--bundle", metavar="FILE|URL",
                       help="an audit bundle that holds the event (- for standard input)")
    check.add_argument("--log-key", required=True, help="the pinned log key: raw Ed25519 "
                       "public key, hex")
    check.set_defaults(run=run)
