"""`kitledger witness keygen` and `kitledger witness serve`: run a witness for kitledger logs.

`keygen --name NAME --out FILE` writes a fresh cosigning key (mode 0600, never overwriting) and
prints its verifier key, the line a log operator puts in the server's settings and an auditor
gives `kitledger verify --witness`; on stderr it also prints the key's `[[log.witnesses.key]]`
table for an auditor's trust file (name and hex public key, the form that file pins).
`serve --key FILE --state DB --listen HOST:PORT --log ORIGIN=VKEY...` answers the
c2sp.org/tlog-witness protocol for the listed logs until interrupted. Exit codes: 0 done,
2 unusable arguments or files.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from ledger.cli import EXIT_OK, CommandError
from ledger.core import note


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]") or "127.0.0.1", int(port)


def run_keygen(args: argparse.Namespace) -> int:
    from ledger.witness.keys import write_key_file

    try:
        key = write_key_file(Path(args.out), args.name)
    except FileExistsError:
        raise CommandError(f"{args.out} exists; not overwritten",
                           "choose another --out, or keep using the existing key") from None
    except (OSError, note.NoteError) as exc:
        raise CommandError(f"cannot write a witness key: {exc}",
                           "check --out is writable and --name is a C2SP key name") from None
    sys.stdout.write(key.verifier.vkey() + "\n")
    sys.stderr.write(f'# for an auditor\'s trust file, under [log.witnesses]:\n'
                     f'[[log.witnesses.key]]\nname = "{key.name}"\n'
                     f'public_key = "{key.verifier.public_key.hex()}"\n')
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    from ledger.witness.keys import KeyFileError, parse_log_argument, read_key_file
    from ledger.witness.server import WitnessServer
    from ledger.witness.service import Witness
    from ledger.witness.state import WitnessState

    logs: dict[str, list[note.NoteVerifier]] = defaultdict(list)
    try:
        key = read_key_file(Path(args.key))
        for text in args.log:
            origin, verifier = parse_log_argument(text)
            logs[origin].append(verifier)
        state = WitnessState(Path(args.state))
    except (KeyFileError, OSError) as exc:
        raise CommandError(str(exc), "check --key, --state and each --log ORIGIN=VKEY") from None
    witness = Witness(key, state, {o: tuple(v) for o, v in logs.items()})
    try:
        server = WitnessServer(args.listen, witness)
    except OSError as exc:
        raise CommandError(f"cannot listen on {args.listen}: {exc.strerror}",
                           "choose a free --listen HOST:PORT") from None
    host, port = server.server_address[:2]
    sys.stdout.write(f"witness {key.verifier.vkey()} listening on {host!s}:{port}\n")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `witness keygen` and `witness serve` to the `kitledger` parser."""
    parser = subparsers.add_parser("witness", help="run a C2SP tlog-witness for kitledger logs")
    commands = parser.add_subparsers(dest="witness_command", required=True,
                                     parser_class=type(parser))
    keygen = commands.add_parser("keygen", help="write a witness key file, print its vkey")
    keygen.add_argument("--name", required=True, help="the witness's C2SP key name, e.g. "
                        "witness.inspectorate.example/w1")
    keygen.add_argument("--out", required=True, metavar="FILE", help="private key file to create")
    keygen.set_defaults(run=run_keygen)
    serve = commands.add_parser("serve", help="answer add-checkpoint requests")
    serve.add_argument("--key", required=True, metavar="FILE", help="the witness key file")
    serve.add_argument("--state", required=True, metavar="DB", help="SQLite state file")
    serve.add_argument("--listen", required=True, type=_listen, metavar="HOST:PORT")
    serve.add_argument("--log", action="append", required=True, metavar="ORIGIN=VKEY",
                       help="a log to witness: its origin (kitledger/<log id>) and verifier key")
    serve.set_defaults(run=run_serve)
