"""The `kitledger` command: one argparse parser, subcommands contributed by modules.

Each entry of `SUBCOMMAND_MODULES` names a module exposing `register(subparsers)`, which adds
its parser and sets `run` (a function taking the parsed namespace and returning the exit code)
as a default. Subcommand modules import heavy dependencies (web3, FastAPI, SQLAlchemy) inside
`run`, not at import time, so `kitledger proof` starts fast and works on a bare install.

Exit codes are shared by every subcommand: 0 success, 1 the thing checked does not hold,
2 unusable input (bad arguments included; argparse's own errors also exit 2).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

SUBCOMMAND_MODULES: tuple[str, ...] = ("ledger.commands.proof", "api.commands", "api.stack",
                                         "ledger.commands.verify", "ledger.commands.audit_outputs")
"""Modules that contribute subcommands; add yours here (e.g. verify, serve, migrate)."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2

Runner = Callable[[argparse.Namespace], int]


def emit(verdict: dict[str, object]) -> None:
    """Print one JSON verdict on stdout: the machine-readable answer of every subcommand."""
    sys.stdout.write(json.dumps(verdict, sort_keys=True) + "\n")


class VerdictParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are also a JSON verdict (exit 2), so callers
    parse one format whatever went wrong."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        emit({"verdict": "unusable", "reason": message})
        sys.exit(EXIT_UNUSABLE)


def build_parser() -> argparse.ArgumentParser:
    parser = VerdictParser(
        prog="kitledger",
        description="kitledger: chain of custody for shared public-safety kit, and proof of it.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=VerdictParser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kitledger` script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    run: Runner = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
