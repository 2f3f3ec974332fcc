"""`kitledger account`: staff accounts from the command line (`api.accounts.admin`).

`create`, `list`, `set-role`, `disable`, `reset-password` and `audit` (an account's changes:
who made them, when), each printing one JSON verdict.
A password is never an argument (argv is visible to every user of the machine and kept in
shell history): `create --password-stdin` and `reset-password` read it from a prompt on a
terminal (typed twice), or as the first line of standard input otherwise.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ledger.cli import EXIT_OK, EXIT_UNUSABLE, CommandError, emit

ROLE_NAMES = ("read-only", "auditor", "stores-officer", "supervisor", "agency-admin")
"""The roles `--role` takes (api.accounts.roles.StaffRole, named here so --help needs no
import of the server's models)."""


def read_password() -> str:
    """A new password: prompted for twice on a terminal, else standard input's first line."""
    from getpass import getpass

    if sys.stdin.isatty():
        first = getpass("New password: ")
        if getpass("Again: ") != first:
            raise CommandError("the two passwords differ", "type the same password twice")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _view(account: Any) -> dict[str, object]:
    from api.models.accounts import StaffAccountPublic

    return StaffAccountPublic.of(account).model_dump(mode="json")


def run_account(args: argparse.Namespace) -> int:
    """`kitledger account create|list|set-role|disable|reset-password|audit`."""
    from sqlmodel import Session

    from api.accounts import admin
    from api.accounts.admin import AccountRefused
    from api.accounts.audit import CLI_ACTOR, history
    from api.accounts.passwords import PasswordRefused
    from api.accounts.roles import StaffRole
    from api.commands import _settings, database
    from api.db import utcnow
    from api.models import Agency, StaffAccount

    settings = _settings(args)
    now = utcnow()
    with database(settings, existing=True) as engine, Session(engine) as session:
        if args.action == "list":
            emit({"verdict": "ok", "accounts": [
                _view(a) for a in admin.list_accounts(session, args.agency)]})
            return EXIT_OK
        try:
            if args.action == "audit":
                found = session.get(StaffAccount, args.account_id)
                if found is None or found.agency_id != args.agency:
                    raise AccountRefused(f"no account {args.account_id!r} in agency "
                                         f"{args.agency!r}")
                emit({"verdict": "ok", "audit": [
                    row.model_dump(mode="json") for row in history(session, found)]})
                return EXIT_OK
            if args.action == "create":
                if session.get(Agency, args.agency) is None:
                    raise AccountRefused(f"no agency {args.agency!r}")
                password = read_password() if args.password_stdin else None
                account = admin.create_local(
                    session, agency_id=args.agency, username=args.username,
                    role=StaffRole(args.role), password=password, now=now,
                    actor=CLI_ACTOR, display_name=args.display_name, person_id=args.person)
            else:
                found = session.get(StaffAccount, args.account_id)
                if found is None:
                    raise AccountRefused(f"no account {args.account_id!r}")
                account = found
                if args.action == "set-role":
                    admin.set_role(session, account, StaffRole(args.role), now=now,
                                   actor=CLI_ACTOR)
                elif args.action == "disable":
                    admin.disable(session, account, now, actor=CLI_ACTOR)
                else:
                    admin.reset_password(session, account, read_password(), now,
                                         actor=CLI_ACTOR)
        except (AccountRefused, PasswordRefused) as exc:
            raise CommandError(str(exc), "see `kitledger account --help` and "
                               "`kitledger account list`", EXIT_UNUSABLE, "unusable") from None
        session.commit()
        emit({"verdict": "ok", "account": _view(account)})
        return EXIT_OK


def register_account(subparsers: Any, settings_arguments: Any) -> None:
    """`account` and its actions; every action prints one JSON verdict."""
    account = subparsers.add_parser(
        "account", help="manage staff accounts: create, list, set-role, disable, "
        "reset-password, audit")
    actions = account.add_subparsers(dest="action", required=True, parser_class=type(account))
    create = actions.add_parser("create", help="a new local account of an existing agency")
    settings_arguments(create)
    create.add_argument("--agency", required=True, help="agency id")
    create.add_argument("--username", required=True, help="a-z, 0-9, '.', '_', '-'")
    create.add_argument("--role", required=True, choices=ROLE_NAMES)
    create.add_argument("--display-name", help="the name the pages show")
    create.add_argument("--person", help="the registry person this account is")
    create.add_argument("--password-stdin", action="store_true",
                        help="set a password: prompted for, or read from standard input")
    listing = actions.add_parser("list", help="accounts (never their passwords)")
    settings_arguments(listing)
    listing.add_argument("--agency", help="only this agency's accounts")
    for name, text in (("set-role", "give the account another role"),
                       ("disable", "refuse its sign-ins from now on; ends its sessions"),
                       ("reset-password", "a new password (prompted for, or standard "
                        "input); ends its sessions")):
        action = actions.add_parser(name, help=text)
        settings_arguments(action)
        action.add_argument("account_id", help="the account id (`kitledger account list`)")
        if name == "set-role":
            action.add_argument("role", choices=ROLE_NAMES)
    history = actions.add_parser("audit", help="an account's changes, newest first: what, by "
                                 "whom, when")
    settings_arguments(history)
    history.add_argument("agency", help="agency id")
    history.add_argument("account_id", help="the account id (`kitledger account list`)")
    account.set_defaults(run=run_account)
