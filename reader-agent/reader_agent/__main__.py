"""`kitledger-agent`: run the agent, enroll the reader, and the field tools.

    kitledger-agent run --config agent.toml       the agent, until SIGTERM/SIGINT
    kitledger-agent enroll --config agent.toml    print what an administrator registers (JSON)
    kitledger-agent decode --protocol NAME ...    decode a capture (reader_agent.fieldtools)
    kitledger-agent epc HEX                       an EPC's GS1 URI (reader_agent.fieldtools)
    kitledger-agent write-tag --uri URN ...       commission an asset's tag at the desk
                                                  (reader_agent.commission)

Exit status: 0 after a clean stop, 2 for a configuration error, 3 for an identity error,
4 for an outbox error, 1 otherwise. Errors are one line; `--debug` adds tracebacks (and the
agent's retries, which are otherwise logged once per outage).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from reader_agent.config import load_config
from reader_agent.errors import AgentError, ConfigError, IdentityError, OutboxError

EXIT_CODES = {ConfigError: 2, IdentityError: 3, OutboxError: 4}


def _run(config_path: Path) -> int:
    from reader_agent.agent import ReaderAgent

    agent = ReaderAgent(load_config(config_path))

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("reader_agent").info("signal %d: stopping", signum)
        agent.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    agent.run()
    return 0


def _enroll(config_path: Path) -> int:
    from reader_agent.identity import enrollment, load_or_create_key

    config = load_config(config_path)
    key = load_or_create_key(config.key_file)
    print(json.dumps(enrollment(key, config.reader_id, config.agency, config.site), indent=2))
    return 0


def _field_tool(name: str, argv: Sequence[str]) -> int:
    # Imported on use: the field tools live in their own module and need no config.
    tools = importlib.import_module("reader_agent.fieldtools")
    result = getattr(tools, f"{name}_main")(list(argv))
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("decode", "epc"):
        return _field_tool(args[0], args[1:])
    if args and args[0] == "write-tag":
        commission = importlib.import_module("reader_agent.commission")
        return int(commission.main(args[1:]))
    parser = argparse.ArgumentParser(prog="kitledger-agent", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the agent"), ("enroll", "print the enrollment record")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", type=Path, required=True, help="path to agent.toml")
        command.add_argument("--debug", action="store_true",
                             help="log every retry, and tracebacks")
    commands.add_parser("decode", help="decode a captured byte stream (see decode --help)")
    commands.add_parser("epc", help="print the GS1 URI of an EPC (see epc --help)")
    commands.add_parser("write-tag", help="write, verify and register a new asset's tag "
                                          "(see write-tag --help)")
    options = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG if options.debug else logging.INFO,
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if options.command == "enroll":
            return _enroll(options.config)
        return _run(options.config)
    except AgentError as exc:
        print(f"kitledger-agent: {exc}", file=sys.stderr)
        return next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 1)
    except Exception as exc:  # a bug: one line for the operator, the traceback under --debug
        logging.getLogger("reader_agent").debug("traceback", exc_info=exc)
        print(f"kitledger-agent: stopped by an unexpected {type(exc).__name__}: {exc} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
