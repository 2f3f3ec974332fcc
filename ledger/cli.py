"""The `kitledger` command: one argparse parser, subcommands contributed by installed parts.

Each entry point of the group `kitledger.commands` (declared in pyproject.toml) names a function
`register(subparsers)` of the part that owns the subcommands: it adds their parsers and sets
`run` (a function taking the parsed namespace and returning the exit code) as a default. The
dispatcher names no part: the auditor's commands (`ledger.commands`) and the server's
(`api.commands`, `demo.up`) each register themselves. A part whose module cannot be imported
(its extra is not installed) is left out, listed as unavailable in `--help`, and the others
still run. Subcommand modules import heavy dependencies (web3, FastAPI, SQLAlchemy) inside
`run`, not at import time, so `kitledger proof` starts fast and works on a bare install.

Exit codes are shared by every subcommand: 0 success, 1 the thing checked does not hold,
2 unusable input (bad arguments included; argparse's own errors also exit 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final, NoReturn

COMMAND_GROUP: Final = "kitledger.commands"
"""The entry-point group whose functions add subcommands to the `kitledger` parser."""

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


Registrar = Callable[[Any], None]


def command_parts() -> list[EntryPoint]:
    """The installed parts of the command, by name (so `--help` lists them in a stable order)."""
    return sorted(entry_points(group=COMMAND_GROUP), key=lambda point: point.name)


def build_parser(parts: Sequence[EntryPoint] | None = None) -> argparse.ArgumentParser:
    """The parser with every part's subcommands; `parts` defaults to the installed ones."""
    parser = VerdictParser(
        prog="kitledger",
        description="kitledger: chain of custody for shared public-safety kit, and proof of it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=VerdictParser)
    unavailable = []
    for part in command_parts() if parts is None else parts:
        try:
            register: Registrar = part.load()
        except ImportError as exc:  # its extra is not installed: the other parts still run
            unavailable.append(f"  {part.name}: {exc}")
            continue
        register(subparsers)
    if unavailable:
        parser.epilog = "unavailable parts (install their extra):\n" + "\n".join(unavailable)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kitledger` script; returns the process exit code."""
    args = build_parser().parse_args(argv)
    run: Runner = args.run
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
