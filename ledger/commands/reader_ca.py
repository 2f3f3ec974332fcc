"""`kitledger reader-ca init|issue`: the agency's CA for its readers' TLS client certificates.

    kitledger reader-ca init --dir DIR --name "North Police readers CA"
    kitledger reader-ca issue --dir DIR enrollment.json --out desk-1.crt [--reader desk-1]

`init` makes the CA key (mode 0600) and certificate in DIR; `issue` checks the request in a
reader's enrollment record (what `kitledger-agent enroll` printed on the Pi) and writes the
reader's certificate. Each prints one JSON verdict; failures are one line on stderr
(`ledger.cli`). Needs only `cryptography`, so it runs on the administrator's own machine with
no extra installed. See `ledger.reader_ca` for what is checked.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from ledger.cli import EXIT_FAILED, EXIT_OK, EXIT_UNUSABLE, CommandError, emit
from ledger.reader_ca import (
    CA_CERT_NAME,
    CA_DAYS,
    MAX_REQUEST_BYTES,
    READER_DAYS,
    ReaderCaError,
    init_ca,
    issue,
    issued_record,
    key_fingerprint,
    read_request,
)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def run_init(args: argparse.Namespace) -> int:
    try:
        certificate = init_ca(Path(args.dir), args.name, _now(), args.days)
    except ReaderCaError as exc:
        raise CommandError(str(exc), "give an empty --dir, or use the CA already there",
                           EXIT_UNUSABLE, "unusable") from None
    except OSError as exc:
        raise CommandError(f"cannot write the CA in {args.dir}: {exc.strerror}",
                           "give a --dir you may write", EXIT_FAILED, "failed") from None
    emit({"verdict": "ok", "ca_cert": str(Path(args.dir) / CA_CERT_NAME),
          "not_after": certificate.not_valid_after_utc.isoformat(),
          "key_fingerprint": key_fingerprint(certificate.public_key())})
    return EXIT_OK


def _read_input(name: str) -> bytes:
    try:
        if name == "-":
            return sys.stdin.buffer.read(MAX_REQUEST_BYTES + 1)
        with open(name, "rb") as handle:
            return handle.read(MAX_REQUEST_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}",
                           "give the enrollment record the reader printed",
                           EXIT_UNUSABLE, "unusable") from None


def _write_certificate(path: Path, pem: bytes) -> None:
    """A reader of `path` sees the old certificate or the whole new one (renewals)."""
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(path)


def run_issue(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        request = read_request(_read_input(args.request), args.reader)
        certificate = issue(Path(args.dir), request, _now(), args.days)
    except ReaderCaError as exc:
        raise CommandError(str(exc), "ask the reader's installer for a fresh "
                           "`kitledger-agent enroll` record, or check --dir and --reader",
                           EXIT_UNUSABLE, "unusable") from None
    try:
        _write_certificate(Path(args.out), certificate.public_bytes(Encoding.PEM))
    except OSError as exc:
        raise CommandError(f"cannot write {args.out}: {exc.strerror}",
                           "choose a writable --out path", EXIT_FAILED, "failed") from None
    emit({"verdict": "ok", "out": str(args.out), **issued_record(certificate, request)})
    return EXIT_OK


def register(subparsers: Any) -> None:
    """Add `reader-ca init` and `reader-ca issue` to the `kitledger` parser."""
    parser = subparsers.add_parser(
        "reader-ca", help="the agency's CA for reader TLS certificates (keys stay on the Pi)")
    commands = parser.add_subparsers(dest="reader_ca_command", required=True,
                                     parser_class=type(parser))
    init = commands.add_parser("init", help="make the CA key and certificate in --dir")
    init.add_argument("--dir", required=True, help="the CA directory (made with mode 0700)")
    init.add_argument("--name", required=True, help="the CA's common name")
    init.add_argument("--days", type=int, default=CA_DAYS, help=f"default {CA_DAYS}")
    init.set_defaults(run=run_init)
    issue_parser = commands.add_parser(
        "issue", help="certify a reader's TLS key from its enrollment record")
    issue_parser.add_argument("request", help="the reader's enrollment record (JSON, as "
                              "`kitledger-agent enroll` prints it) or a PEM request; - for "
                              "stdin")
    issue_parser.add_argument("--dir", required=True, help="the CA directory")
    issue_parser.add_argument("--out", required=True, help="certificate file to write")
    issue_parser.add_argument("--reader", help="the reader id you expect (required sense "
                              "check for a bare PEM request)")
    issue_parser.add_argument("--days", type=int, default=READER_DAYS,
                              help=f"validity, default {READER_DAYS}")
    issue_parser.set_defaults(run=run_issue)
