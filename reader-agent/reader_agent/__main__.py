"""`kitledger-agent`: run the agent, enroll the reader, and the field tools.

    kitledger-agent run --config agent.toml       the agent, until SIGTERM/SIGINT
    kitledger-agent enroll --config agent.toml    make the keys; print what an administrator
                                                  registers, with the TLS certificate request
        [--api-key HEX]                           and pin the API's answers key in agent.toml
    kitledger-agent decode --protocol NAME ...    decode a capture (reader_agent.fieldtools)
    kitledger-agent epc HEX                       an EPC's GS1 URI (reader_agent.fieldtools)
    kitledger-agent write-tag --uri URN ...       commission an asset's tag at the desk
                                                  (reader_agent.commission)

Exit status: 0 after a clean stop, 2 for a configuration error, 3 for an identity error,
4 for an outbox error, 1 otherwise (70 for a bug, 130 when interrupted before the agent ran).
Errors are one line on stderr, as for every kitledger command: `kitledger-agent COMMAND: what
failed; what to do`. `--debug` adds tracebacks (and the agent's retries, which are otherwise
logged once per outage). `--version` prints the installed version.
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
from reader_agent.errors import (
    AgentError,
    ConfigError,
    IdentityError,
    OutboxError,
    PublisherError,
)

EXIT_CODES = {ConfigError: 2, IdentityError: 3, OutboxError: 4}
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

WHAT_TO_DO: dict[type[AgentError], str] = {
    ConfigError: "fix agent.toml (reader-agent/agent.example.toml explains every key)",
    IdentityError: "check the key files' owner and mode 0600 (docs/deploy.md, The Pi)",
    OutboxError: "check the outbox path's disk and permissions",
    PublisherError: "check the [mqtt] credential files named in agent.toml",
}
"""The second half of each error line, by the error's family."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("kitledger")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _error_line(command: str, what: str, todo: str) -> None:
    print(" ".join(f"kitledger-agent {command}: {what}; {todo}".split()), file=sys.stderr)


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


def _enroll(config_path: Path, api_key: str | None) -> int:
    """Make the signing key and, when [mqtt] names a tls_key, the TLS key, both on this device;
    print the public values and the TLS certificate request for the agency's administrator.
    With `api_key` (`kitledger answers-key`), pin it in agent.toml first
    (`reader_agent.pinning`)."""
    from reader_agent.identity import (
        enrollment,
        load_or_create_key,
        load_or_create_tls_key,
        tls_fingerprint,
        tls_request,
    )
    from reader_agent.pinning import fingerprint, pin_api_key

    config = load_config(config_path) if api_key is None else pin_api_key(config_path, api_key)
    key = load_or_create_key(config.key_file)
    record = enrollment(key, config.reader_id, config.agency, config.site)
    if config.mqtt.tls_key is not None:
        tls_key = load_or_create_tls_key(config.mqtt.tls_key)
        record["tls_key_fingerprint"] = tls_fingerprint(tls_key)
        record["tls_csr_pem"] = tls_request(tls_key, config.reader_id, config.agency,
                                            config.site)
    if config.mqtt.api_key is not None:  # what the reader trusts, for the administrator to check
        record["api_key_pinned"] = fingerprint(config.mqtt.api_key)
    print(json.dumps(record, indent=2))
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
    if args and args[0] in ("write-tag", "stocktake"):
        tool = importlib.import_module("reader_agent.commission" if args[0] == "write-tag"
                                       else "reader_agent.stocktake")
        return int(tool.main(args[1:]))
    parser = argparse.ArgumentParser(prog="kitledger-agent", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"kitledger-agent {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the agent"), ("enroll", "print the enrollment record")):
        command = commands.add_parser(name, help=text)
        command.add_argument("--config", type=Path, required=True, help="path to agent.toml")
        command.add_argument("--debug", action="store_true",
                             help="log every retry, and tracebacks")
    commands.choices["enroll"].add_argument(
        "--api-key", metavar="HEX", help="the agency's answers public key (`kitledger "
        "answers-key`) to pin as [mqtt] api_key in agent.toml")
    commands.add_parser("decode", help="decode a captured byte stream (see decode --help)")
    commands.add_parser("epc", help="print the GS1 URI of an EPC (see epc --help)")
    commands.add_parser("write-tag", help="write, verify and register a new asset's tag "
                                          "(see write-tag --help)")
    commands.add_parser("stocktake", help="a handheld's offline stocktake: collect, then "
                                          "upload (see stocktake --help)")
    options = parser.parse_args(args)
    logging.basicConfig(level=logging.DEBUG if options.debug else logging.INFO,
                        stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        if options.command == "enroll":
            return _enroll(options.config, options.api_key)
        return _run(options.config)
    except AgentError as exc:
        todo = next((text for kind, text in WHAT_TO_DO.items() if isinstance(exc, kind)),
                    "see the log above; run again with --debug for details")
        _error_line(options.command, str(exc), todo)
        return next((code for kind, code in EXIT_CODES.items() if isinstance(exc, kind)), 1)
    except KeyboardInterrupt:  # Ctrl-C before the agent set its own handler
        _error_line(options.command, "interrupted", "nothing was left half-done")
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: one line for the operator, the traceback under --debug
        logging.getLogger("reader_agent").debug("traceback", exc_info=exc)
        _error_line(options.command, f"stopped by an unexpected {type(exc).__name__}: {exc}",
                    "run it again with --debug for the traceback, and report it")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
