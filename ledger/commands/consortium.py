"""`kitledger consortium`: the consortium admin signs role and log changes offline; anyone
submits them.

    kitledger consortium enroll --agency north --log LOG_ID --account 0xANCHORER \\
        --contract 0xCONTRACT --key-file admin.key --chain-id 1337 --nonce 7 --gas-price 0 \\
        --out north-enroll.json
    kitledger consortium submit north-enroll.json --rpc http://node:8545

The signing commands (`register-log`, `grant-anchorer`, `revoke-anchorer`, `enroll`,
`rotate-anchorer`, `rotate-admin`) need no network: chain id, nonce and fees come from the
options, or from `--rpc`, a node the admin chooses to ask (it learns the admin's address, never
its key). They write an order file (`ledger.chain.admin_orders`) that holds no secret. `show`
checks a file and prints what it does; `submit` checks it and sends it. Each prints one JSON
verdict; failures are one line on stderr (`ledger.cli`). Needs the `audit` extra (web3).
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ledger.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_UNUSABLE,
    CommandError,
    emit,
)

if TYPE_CHECKING:
    from ledger.chain.admin_orders import AdminOrder, TxTerms

MAX_KEY_FILE_BYTES: Final = 256
"""An account key file holds 64 hex digits (optionally 0x and a newline)."""
_KEY_TEXT = re.compile(r"(0x)?[0-9a-fA-F]{64}")

_SUBJECT_OPTIONS: Final = {
    "agency": "the agency's id, as in its registry (e.g. north)",
    "log": "the agency's log id (its log key id: 32 hex characters; "
           "`kitledger anchoring-identity` prints it on the agency's server)",
    "account": "the agency's anchorer address (0x…)",
    "old": "the address losing the role",
    "new": "the address receiving the role",
}
_ACTION_HELP: Final = {
    "register-log": "register an agency's log to the agency",
    "grant-anchorer": "let an account anchor the agency's logs",
    "revoke-anchorer": "take an account's anchorer role away",
    "enroll": "register-log and grant-anchorer in one order",
    "rotate-anchorer": "grant the agency's new anchorer account, then revoke the old one",
    "rotate-admin": "hand the consortium admin role to a new account (this key loses it)",
}


def read_key_file(path: Path) -> str:
    """The hex of an account key file that only its owner may read; never echoed."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise CommandError(f"{path} is readable by others (mode {mode:o})",
                               f"chmod 600 {path}", EXIT_UNUSABLE, "unusable")
        with path.open("rb") as handle:
            text = handle.read(MAX_KEY_FILE_BYTES + 1).decode("ascii", "replace").strip()
    except OSError as exc:
        raise CommandError(f"cannot read the key file {path}: {exc.strerror}",
                           "give the admin's key file", EXIT_UNUSABLE, "unusable") from None
    if not _KEY_TEXT.fullmatch(text):
        raise CommandError(f"{path} does not hold a 32-byte hex account key",
                           "give the admin's key file", EXIT_UNUSABLE, "unusable")
    return text


def _terms(args: argparse.Namespace, admin: str) -> TxTerms:
    from ledger.chain.admin_orders import ADMIN_GAS, TxTerms, terms_from_node
    from ledger.chain.provider import connect

    if args.rpc:
        terms = terms_from_node(connect(args.rpc, args.chain_id), admin, args.gas_price)
        nonce = terms.nonce if args.nonce is None else args.nonce
        return TxTerms(terms.chain_id, nonce, args.gas or ADMIN_GAS, terms.gas_price,
                       terms.max_fee if args.max_fee is None else args.max_fee,
                       terms.priority_fee if args.max_fee is None else args.priority_fee)
    missing = [f"--{name.replace('_', '-')}" for name in ("chain_id", "nonce")
               if getattr(args, name) is None]
    if args.gas_price is None and args.max_fee is None:
        missing.append("--gas-price or --max-fee")
    if missing:
        raise CommandError(f"offline signing needs {', '.join(missing)}",
                           "give them, or --rpc URL to read them from a node", EXIT_UNUSABLE,
                           "unusable")
    return TxTerms(args.chain_id, args.nonce, args.gas or ADMIN_GAS, args.gas_price,
                   args.max_fee, args.priority_fee)


def _order_view(order: AdminOrder) -> dict[str, object]:
    return {"action": order.action, "chain_id": order.chain_id, "contract": order.contract,
            "admin": order.admin, "subject": order.subject, "nonces": list(order.nonces),
            "transactions": ["0x" + h.hex() for h in order.hashes]}


def run_sign(args: argparse.Namespace) -> int:
    from ledger.chain.admin_orders import OrderError, sign_order
    from ledger.chain.consortium import AccountKeyError, local_account
    from ledger.chain.errors import ChainError, ChainUnavailable

    key = read_key_file(Path(args.key_file))
    subject = {name: getattr(args, name) for name in args.subject_fields}
    try:
        admin = local_account(key).address
        order = sign_order(args.consortium_command, subject, args.contract, key,
                           _terms(args, admin))
    except (OrderError, AccountKeyError) as exc:
        raise CommandError(str(exc), "correct the options", EXIT_UNUSABLE, "unusable") from None
    except ChainUnavailable as exc:
        raise CommandError(str(exc), "check --rpc, or sign offline with --chain-id, --nonce "
                           "and a fee", EXIT_UNREACHABLE, "unreachable") from None
    except ChainError as exc:
        raise CommandError(str(exc), "check --rpc and --chain-id", EXIT_FAILED,
                           "failed") from None
    _write_new(Path(args.out), order.to_json().encode("utf-8"))
    emit({"verdict": "signed", "out": str(args.out), **_order_view(order)})
    return EXIT_OK


def _write_new(path: Path, body: bytes) -> None:
    """Never overwrite an order: two files with the same nonce would cancel each other."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except FileExistsError:
        raise CommandError(f"{path} exists already", "choose a new --out file",
                           EXIT_UNUSABLE, "unusable") from None
    except OSError as exc:
        raise CommandError(f"cannot write {path}: {exc.strerror}", "choose a writable --out",
                           EXIT_FAILED, "failed") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(body)


def _read_order(name: str) -> AdminOrder:
    from ledger.chain.admin_orders import MAX_ORDER_BYTES, OrderError, read_order

    try:
        with open(name, "rb") as handle:
            body = handle.read(MAX_ORDER_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {name}: {exc.strerror}", "give the order file the "
                           "consortium admin signed", EXIT_UNUSABLE, "unusable") from None
    try:
        return read_order(body)
    except OrderError as exc:
        raise CommandError(f"refused {name}: {exc}", "ask the consortium admin for a freshly "
                           "signed order", EXIT_UNUSABLE, "unusable") from None


def run_show(args: argparse.Namespace) -> int:
    emit({"verdict": "ok", **_order_view(_read_order(args.order))})
    return EXIT_OK


def run_submit(args: argparse.Namespace) -> int:
    from ledger.chain.admin_orders import OrderError, submit_order
    from ledger.chain.errors import ChainError, ChainIdMismatch, ChainUnavailable, ContractRevert
    from ledger.chain.provider import connect

    order = _read_order(args.order)
    try:
        done = submit_order(connect(args.rpc, args.chain_id), order)
    except ChainUnavailable as exc:
        raise CommandError(str(exc), "check --rpc and try again", EXIT_UNREACHABLE,
                           "unreachable") from None
    except (OrderError, ChainIdMismatch) as exc:
        raise CommandError(f"refused {args.order}: {exc}", "submit each order once, to the "
                           "chain it was signed for", EXIT_FAILED, "refused") from None
    except ContractRevert as exc:
        raise CommandError(f"the contract refuses {order.action}: {exc}", "nothing was sent; "
                           "check the subject against the chain's state", EXIT_FAILED,
                           "refused") from None
    except ChainError as exc:
        raise CommandError(str(exc), "check the node and the admin's balance", EXIT_FAILED,
                           "failed") from None
    emit({"verdict": "submitted", **_order_view(order),
          "blocks": [d.block_number for d in done]})
    return EXIT_OK


def _signing_options(parser: argparse.ArgumentParser, fields: tuple[str, ...]) -> None:
    for name in fields:
        parser.add_argument(f"--{name}", required=True, help=_SUBJECT_OPTIONS[name])
    parser.add_argument("--contract", required=True, help="the CustodyAnchor contract address")
    parser.add_argument("--key-file", required=True, help="the admin's account key (mode 0600)")
    parser.add_argument("--out", required=True, help="the order file to write (never "
                        "overwritten)")
    parser.add_argument("--rpc", help="read chain id, nonce and fees from this node instead")
    parser.add_argument("--chain-id", type=int, help="the chain's id (checked against --rpc)")
    parser.add_argument("--nonce", type=int, help="the admin account's next nonce")
    parser.add_argument("--gas-price", type=int, help="wei per gas (0 on a free-gas network)")
    parser.add_argument("--max-fee", type=int, help="EIP-1559 maximum fee per gas, in wei")
    parser.add_argument("--priority-fee", type=int, default=0, help="EIP-1559 tip, in wei")
    parser.add_argument("--gas", type=int, help="gas limit per transaction (default 120000)")
    parser.set_defaults(run=run_sign, subject_fields=fields)


def register(subparsers: Any) -> None:
    """Add `consortium …` to the `kitledger` parser."""
    from ledger.chain.order_actions import SUBJECT_FIELDS

    parser = subparsers.add_parser(
        "consortium", help="the consortium admin's offline-signed orders, and their submission")
    commands = parser.add_subparsers(dest="consortium_command", required=True,
                                     parser_class=type(parser))
    for action, fields in SUBJECT_FIELDS.items():
        _signing_options(commands.add_parser(action, help=_ACTION_HELP[action]), fields)
    show = commands.add_parser("show", help="check an order file and print what it does")
    show.add_argument("order", help="the order file")
    show.set_defaults(run=run_show)
    submit = commands.add_parser("submit", help="check an order file and send it to a node")
    submit.add_argument("order", help="the order file")
    submit.add_argument("--rpc", required=True, help="the node to send it to")
    submit.add_argument("--chain-id", type=int, help="the chain id you expect")
    submit.set_defaults(run=run_submit)
