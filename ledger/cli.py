"""The `kitledger` command: one argparse parser, subcommands contributed by installed parts.

Each entry point of the group `kitledger.commands` (declared in pyproject.toml) names a function
`register(subparsers)` of the part that owns the subcommands: it adds their parsers and sets
`run` (a function taking the parsed namespace and returning the exit code) as a default. The
dispatcher names no part: the auditor's commands (`ledger.commands`) and the server's
(`api.commands`, `demo.up`) each register themselves. A part whose module cannot be imported
(its extra is not installed) is left out, listed as unavailable in `--help`, and the others
still run. Subcommand modules import heavy dependencies (web3, FastAPI, SQLAlchemy) inside
`run`, not at import time, so `kitledger proof` starts fast and works on a bare install.

Every subcommand fails the same way: one line on stderr, `kitledger COMMAND: what failed; what
to do`, and a documented exit code (`EXIT_CODES_TEXT`, shown by `--help`); a command whose
answer is a JSON verdict also prints that verdict on stdout. A subcommand raises
`CommandError` for a failure the operator can act on; `main` turns a missing library into
the name of the extra that brings it, Ctrl-C into exit 130, and any other exception into one
line (its traceback only with `--debug`).
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import EntryPoint, PackageNotFoundError, entry_points, version
from typing import Any, Final, NoReturn

COMMAND_GROUP: Final = "kitledger.commands"
"""The entry-point group whose functions add subcommands to the `kitledger` parser."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_UNUSABLE = 2
EXIT_UNREACHABLE: Final = 3
"""A service the command needs (the database, a chain node) could not be reached."""
EXIT_INTERNAL: Final = 70
"""A bug: an exception no command expected (sysexits' EX_SOFTWARE)."""
EXIT_INTERRUPTED: Final = 130
"""Stopped by Ctrl-C (SIGINT), as a shell reports it."""

EXIT_CODES_TEXT: Final = """exit codes: 0 done; 1 failed (the thing checked does not hold, or the
work could not be done); 2 unusable input or arguments; 3 a needed service (database, chain node)
unreachable; 4 unpinned (verify, report); 70 internal error (run with --debug and report it);
130 interrupted."""

MISSING_EXTRA: Final = {
    **dict.fromkeys(("serial", "paho", "gpiozero"), "agent"),
    **dict.fromkeys(("nacl", "web3", "eth_tester", "eth_utils", "eth_account", "websockets",
                     "jinja2", "weasyprint", "rich"), "audit"),
    **dict.fromkeys(("fastapi", "starlette", "sqlmodel", "sqlalchemy", "alembic", "uvicorn",
                     "pydantic", "pydantic_settings", "prometheus_client", "psycopg",
                     "coincurve", "httpx"), "server"),
}
"""Which extra installs a library, by its top-level module: what an error names when a command
needs a library this install lacks."""


class CommandError(Exception):
    """A failure the operator can act on: `what` failed, `todo` says what to do about it.
    `verdict`, for a command whose answer is a JSON verdict, is that verdict's name."""

    def __init__(self, what: str, todo: str, code: int = EXIT_UNUSABLE,
                 verdict: str | None = None) -> None:
        super().__init__(what)
        self.what, self.todo, self.code, self.verdict = what, todo, code, verdict

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
        sys.stderr.write(f"{self.prog}: {message}; see {self.prog} --help\n")
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
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXIT_CODES_TEXT,
    )
    parser.add_argument("--version", action="version", version=f"kitledger {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="on an unexpected error, print its traceback")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=VerdictParser)
    unavailable = []
    for part in command_parts() if parts is None else parts:
        try:
            register: Registrar = part.load()
        except ImportError as exc:  # its extra is not installed: the other parts still run
            unavailable.append(f"  {part.name}: {exc}")
            continue
        register(subparsers)
    _add_debug(subparsers)
    if unavailable:
        parser.epilog = (EXIT_CODES_TEXT + "\n\nunavailable parts (install their extra):\n"
                         + "\n".join(unavailable))
    return parser


def _add_debug(subparsers: Any) -> None:
    """`--debug` after the subcommand too (`kitledger export ... --debug`), on every level."""
    for parser in subparsers.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            _add_debug(action)
        if "--debug" not in parser._option_string_actions:
            parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                                help="on an unexpected error, print its traceback")


def _version() -> str:
    try:
        return version("kitledger")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _command_name(args: argparse.Namespace) -> str:
    names = [str(args.command)]
    names += [str(value) for key, value in sorted(vars(args).items())
              if key.endswith("_command") and isinstance(value, str)]
    return " ".join(["kitledger", *names])


def say_error(command: str, what: str, todo: str) -> None:
    """The one error line every `kitledger` command prints on stderr."""
    line = " ".join(f"{command}: {what}; {todo}".split())
    sys.stderr.write(line + "\n")


def run_command(args: argparse.Namespace) -> int:
    """Run the parsed subcommand; every failure becomes one line and an exit code."""
    command = _command_name(args)
    run: Runner = args.run
    try:
        return run(args)
    except CommandError as exc:
        if exc.verdict is not None:
            emit({"verdict": exc.verdict, "reason": exc.what})
        say_error(command, exc.what, exc.todo)
        return exc.code
    except ModuleNotFoundError as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        module = (exc.name or "").partition(".")[0]
        extra = MISSING_EXTRA.get(module)
        todo = (f"install the {extra!r} extra: pip install 'kitledger[{extra}]'" if extra
                else "reinstall kitledger with the extra this command needs")
        say_error(command, f"needs the Python library {module!r}, which is not installed", todo)
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        say_error(command, "interrupted", "nothing more was done; run it again to finish")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if getattr(args, "debug", False):
            traceback.print_exc()
        reason = " ".join(str(exc).split())[:300]
        say_error(command, f"stopped by an unexpected {type(exc).__name__}: {reason}",
             "run it again with --debug for the traceback, and report it")
        return EXIT_INTERNAL


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `kitledger` script; returns the process exit code."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:
        sys.stderr.write("kitledger: interrupted\n")
        return EXIT_INTERRUPTED
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
