"""`kitledger verify BUNDLE (--rpc URL | --offline) [--trust FILE]`: check an audit bundle
independently, against the auditor's own trust roots and last verified checkpoint.

Prints each check with pass, fail or "not checked" and the first failing item; `--json` prints
exactly one JSON verdict object instead, whatever happens. Witness cosignatures are checked
under the trust file's witness policy, or `--witness VKEY` (repeated) and `--witness-quorum N`
(`ledger.verify.witnesses`). Exit codes (docs/audit-bundle.md):

- 0 valid: every check passed and the log key (and chain, if required) is pinned;
- 1 invalid: a check failed (the bundle does not prove what it shows);
- 2 unusable input: unreadable, not a regular file, malformed or oversize bundle or trust file;
- 3 unreachable: the chain node could not be asked, or serves another chain;
- 4 unpinned: no check failed, but nothing pinned the log key (or the trust file requires
  anchors that only a node can confirm), so the verdict cannot be VALID.

A progress bar (`ledger.progress`) goes to stderr on large bundles when stderr is a terminal,
or with --progress; never into a pipe otherwise. Unusable input and an unreachable chain are
also said on stderr in the one-line style of every `kitledger` command (`ledger.cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Final

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, say_error
from ledger.core.bundle import AuditBundle, BundleError
from ledger.core.bundle_parse import parse_bundle
from ledger.core.errors import LedgerError
from ledger.core.note import NoteError
from ledger.progress import on_terminal, progress_bar
from ledger.tiled_log import TOKEN_ENVIRONMENT, open_source
from ledger.verify import ChainUnreachable, open_chain_reader, read_bundle, verify_bundle
from ledger.verify.report import VerificationReport
from ledger.verify.sources import DOWNLOAD_DEADLINE_S, read_regular_file
from ledger.verify.state import (
    CheckpointStore,
    KnownCheckpoint,
    StateError,
    default_state_dir,
    newest_checkpoint,
)
from ledger.verify.tiles import check_tiles
from ledger.verify.trust import (
    MAX_TRUST_FILE_BYTES,
    TrustError,
    TrustFile,
    parse_trust,
    pinned_log,
    trust_from_flags,
)
from ledger.verify.witnesses import WitnessQuorum, policy_from_vkeys

EXIT_CHAIN_UNREACHABLE: Final = 3
EXIT_UNPINNED: Final = 4
EXIT_CODES: Final = {"valid": EXIT_OK, "invalid": EXIT_FAILED, "unpinned": EXIT_UNPINNED}
PROGRESS_MIN_EVENTS: Final = 10_000
"""Below this many events verification takes about a second: no bar needed."""
UNUSABLE_INPUT: Final = (OSError, ValueError, LedgerError, RecursionError, MemoryError)
"""What reading and parsing hostile bytes may raise: all unusable input (BundleError,
TrustError and StateError are ValueErrors)."""


UNUSABLE_TODO: Final = ("check the bundle and trust file paths and that they are the files "
                        "you meant (see docs/audit-bundle.md)")
UNREACHABLE_TODO: Final = ("check the --rpc URL and that the node serves the pinned chain, or "
                           "verify --offline with the bundle's receipts")


class Unusable(Exception):
    """Input the verifier cannot judge: exit 2 with this one-line reason."""


def _out(args: argparse.Namespace, record: dict[str, Any], text: str) -> None:
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n" if args.json else text)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def load_trust(args: argparse.Namespace) -> TrustFile | None:
    """The auditor's pins: a trust file, or the one-log flags, or None."""
    flags = bool(args.log_key) or any(
        v is not None for v in (args.chain_id, args.contract, args.from_block))
    if args.trust and flags:
        raise TrustError("give --trust FILE or the --log-key flags, not both")
    if flags:
        return trust_from_flags(None, args.log_key or [], args.chain_id, args.contract,
                                args.from_block)
    if not args.trust:
        return None
    return parse_trust(read_regular_file(args.trust, MAX_TRUST_FILE_BYTES, "trust file"))


def state_store(args: argparse.Namespace) -> CheckpointStore | None:
    if args.no_state:
        return None
    return CheckpointStore(Path(args.state) if args.state else default_state_dir())


def verify_with_roots(args: argparse.Namespace, progress: bool = False
                      ) -> tuple[AuditBundle, VerificationReport]:
    """Read, parse and verify `args.bundle` against the auditor's pins and stored checkpoint;
    raises Unusable or ChainUnreachable. Remembers the newest checkpoint of a VALID bundle."""
    try:
        trust = load_trust(args)
        bundle = parse_bundle(read_bundle(args.bundle, args.download_timeout))
        store = state_store(args)
        known: KnownCheckpoint | None = store.load(bundle.log_public_key) if store else None
    except UNUSABLE_INPUT as exc:
        raise Unusable(_one_line(exc)) from None
    pins = pinned_log(bundle, trust) if trust else None
    try:
        witnesses: WitnessQuorum | None = (
            policy_from_vkeys(args.witness, args.witness_quorum) if args.witness
            else pins.witnesses if pins is not None else None)
    except NoteError as exc:
        raise Unusable(f"witness key: {_one_line(exc)}") from None
    show = progress and (args.progress or (
        on_terminal() and len(bundle.events) >= PROGRESS_MIN_EVENTS))
    try:
        reader = open_chain_reader(bundle, args.rpc, pins)
        with progress_bar(force=args.progress) if show else nullcontext() as bar:
            report = verify_bundle(bundle, reader, require_latest=args.require_latest,
                                   progress=bar, trust=trust, last_verified=known,
                                   witnesses=witnesses)
    except (BundleError, StateError) as exc:
        raise Unusable(_one_line(exc)) from None
    if getattr(args, "tiles", None):
        try:
            source = open_source(args.tiles)
        except LedgerError as exc:
            raise Unusable(f"--tiles: {_one_line(exc)}") from None
        check_tiles(bundle, source, report)
    if store is not None and report.checkpoint_pinned:
        try:
            store.save(newest_checkpoint(bundle))
        except (OSError, StateError) as exc:  # the verdict stands; the memory did not keep
            sys.stderr.write(f"warning: last verified checkpoint not kept: {_one_line(exc)}\n")
    return bundle, report


def run(args: argparse.Namespace) -> int:
    try:
        _bundle, report = verify_with_roots(args, progress=True)
    except Unusable as exc:
        _out(args, {"verdict": "unusable", "reason": str(exc)}, f"unusable input: {exc}\n")
        say_error("kitledger verify", f"unusable input: {exc}", UNUSABLE_TODO)
        return EXIT_UNUSABLE
    except ChainUnreachable as exc:
        reason = _one_line(exc)
        _out(args, {"verdict": "unreachable", "reason": reason}, f"chain unreachable: {reason}\n")
        say_error("kitledger verify", f"chain unreachable: {reason}", UNREACHABLE_TODO)
        return EXIT_CHAIN_UNREACHABLE
    except Exception as exc:  # a verifier bug still answers with a verdict, never a traceback
        reason = f"verifier error ({type(exc).__name__}: {_one_line(exc)}), please report it"
        _out(args, {"verdict": "unusable", "reason": reason}, f"unusable input: {reason}\n")
        say_error("kitledger verify", reason, "run it again with --debug is of no help here: "
                  "report the bundle that caused it")
        return EXIT_UNUSABLE
    _out(args, report.to_record(), report.render())
    return EXIT_CODES[report.verdict]


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError("a number of seconds from 0 to 86400")
    return value


def add_root_arguments(parser: argparse.ArgumentParser) -> None:
    """The chain, trust and state options `verify` and `report` share."""
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--rpc", metavar="URL", help="chain node to read anchors from")
    where.add_argument("--offline", action="store_true",
                       help="use the receipts in the bundle; says what it could not check")
    pins = parser.add_argument_group("trust roots (without them the verdict is UNPINNED)")
    pins.add_argument("--trust", metavar="FILE", help="TOML trust file pinning each agency's "
                      "log keys, chain id, contract and its deployment block")
    pins.add_argument("--log-key", metavar="HEX", action="append",
                      help="pin one log: an Ed25519 log public key (repeatable)")
    pins.add_argument("--chain-id", type=int, help="pinned chain id (with --contract)")
    pins.add_argument("--contract", metavar="0x..", help="pinned CustodyAnchor contract")
    pins.add_argument("--from-block", type=int, metavar="N",
                      help="the contract's deployment block: anchors are read from here")
    pins.add_argument("--witness", action="append", default=[], metavar="VKEY",
                      help="a trusted witness's C2SP verifier key (repeatable; instead of the "
                      "trust file's witnesses)")
    pins.add_argument("--witness-quorum", type=int, metavar="N",
                      help="cosignatures the newest checkpoint needs (default: every --witness)")
    state = parser.add_argument_group("the auditor's last verified checkpoint per log")
    state.add_argument("--state", metavar="DIR", help="where it is kept (default "
                       "$XDG_STATE_HOME/kitledger or ~/.local/state/kitledger)")
    state.add_argument("--no-state", action="store_true",
                       help="neither compare with nor keep the last verified checkpoint")
    parser.add_argument("--download-timeout", type=_seconds, default=DOWNLOAD_DEADLINE_S,
                        metavar="S", help="overall deadline for an http(s) bundle "
                        f"(default {DOWNLOAD_DEADLINE_S:g} s)")


EPILOG: Final = """exit codes: 0 valid; 1 invalid (a check failed); 2 unusable input (one-line
reason); 3 chain node unreachable or another chain; 4 unpinned (no check failed, but no trust
file pinned the log key, or the trust file requires anchors that only --rpc can confirm)."""


def register(subparsers: Any) -> None:
    """Add `verify` to the `kitledger` parser."""
    parser = subparsers.add_parser("verify", help="verify an audit bundle independently",
                                   epilog=EPILOG)
    parser.add_argument("bundle", help="audit bundle: a regular file, - for standard input, "
                        "or an http(s):// URL")
    add_root_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON verdict object")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr")
    parser.add_argument("--require-latest", action="store_true",
                        help="fail unless the newest checkpoint is the chain's latest anchor")
    parser.add_argument("--tiles", metavar="URL|DIR", help="also recompute the bundle's "
                        "inclusion and consistency proofs from the log's C2SP tiles: a "
                        "directory (kitledger tiles export) or the URL prefix they are served "
                        f"under (an API key for it in ${TOKEN_ENVIRONMENT})")
    parser.set_defaults(run=run)
