"""Managing staff accounts: create, list, set a role, disable, reset a password, sign in.

The same operations serve `kitledger account` and `/v1/accounts` (scope `admin`, limited to
the admin's agency). Disabling an account or resetting its password ends its web sessions at
once, as revoking an API key ends the key's: a password changed because it leaked must not
live on in a cookie. Accounts are never deleted (custody changes made through the pages name
them); a disabled one can never sign in again, by password or by single sign-on. Every change
takes who makes it (`actor`) and adds its row to the audit trail (`audit.record`) in the same
transaction; a change that changes nothing (the same role again, disabling a disabled account)
adds none.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select, update

from api.accounts import audit, passwords
from api.accounts.roles import StaffRole
from api.models.accounts import MAX_DISPLAY_CHARS, AccountAction, StaffAccount
from api.models.clients import WebSession
from api.models.people import Person
from api.scoping import own_row

USERNAME_PATTERN: Final = r"^[a-z0-9][a-z0-9._-]{0,63}$"
"""A local username: lower case, no colon (single sign-on accounts are `<provider>:<sub>`)."""
_USERNAME: Final = re.compile(USERNAME_PATTERN)

MAX_LISTED: Final = 1000
"""Accounts one `list` shows: a force's stores staff, not its whole workforce."""


class AccountRefused(ValueError):
    """An account change the rules forbid; the message says why (answered 409 or 422)."""


def end_account_sessions(session: Session, account_id: str, now: datetime) -> None:
    """Sign out every browser signed in as `account_id`."""
    session.execute(update(WebSession).where(
        col(WebSession.account_id) == account_id, col(WebSession.ended_at).is_(None))
        .values(ended_at=now))


def _check_person(session: Session, agency_id: str, person_id: str | None) -> None:
    if person_id is None:
        return
    if own_row(session, Person, agency_id, person_id) is None:
        raise AccountRefused(f"no person {person_id!r} in this agency")


def create_local(session: Session, *, agency_id: str, username: str, role: StaffRole,
                 password: str | None, now: datetime, actor: str,
                 display_name: str | None = None, person_id: str | None = None) -> StaffAccount:
    """A new local account; without a password it cannot sign in until one is set."""
    if not _USERNAME.fullmatch(username):
        raise AccountRefused("a username is 1-64 of a-z, 0-9, '.', '_', '-', starting with a "
                             "letter or digit")
    if display_name is not None and not 0 < len(display_name) <= MAX_DISPLAY_CHARS:
        raise AccountRefused(f"a display name is 1-{MAX_DISPLAY_CHARS} characters")
    if find_local(session, agency_id, username) is not None:
        raise AccountRefused(f"the agency already has an account {username!r}")
    _check_person(session, agency_id, person_id)
    account = StaffAccount(
        id=secrets.token_hex(8), agency_id=agency_id, username=username, role=role.value,
        display_name=display_name, person_id=person_id, created_at=now,
        password_hash=passwords.hash_password(password) if password is not None else None)
    session.add(account)
    session.flush()
    audit.record(session, account, AccountAction.CREATED, actor=actor, now=now,
                 detail=f"role {role.value}")
    return account


def find_local(session: Session, agency_id: str, username: str) -> StaffAccount | None:
    return session.exec(select(StaffAccount).where(
        StaffAccount.agency_id == agency_id, StaffAccount.username == username)).first()


def list_accounts(session: Session, agency_id: str | None = None) -> list[StaffAccount]:
    """Accounts of one agency (or all), oldest first, disabled ones included."""
    query = select(StaffAccount)
    if agency_id is not None:
        query = query.where(StaffAccount.agency_id == agency_id)
    return list(session.exec(query.order_by(col(StaffAccount.created_at),
                                            col(StaffAccount.id)).limit(MAX_LISTED)))


def set_role(session: Session, account: StaffAccount, role: StaffRole, *, now: datetime,
             actor: str) -> None:
    """Give `account` another role; its open sessions hold the new scopes from their next page.
    A single sign-on account's role is set by its provider's groups at each sign-in."""
    if account.role == role.value:
        return
    audit.record(session, account, AccountAction.ROLE_CHANGED, actor=actor, now=now,
                 detail=f"{account.role} -> {role.value}")
    account.role = role.value
    session.add(account)


def disable(session: Session, account: StaffAccount, now: datetime, *, actor: str) -> None:
    """Refuse every sign-in of `account` from now on and end its live sessions."""
    if account.disabled_at is None:
        account.disabled_at = now
        session.add(account)
        audit.record(session, account, AccountAction.DISABLED, actor=actor, now=now,
                     detail="sessions ended")
    end_account_sessions(session, account.id, now)


def reset_password(session: Session, account: StaffAccount, password: str,
                   now: datetime, *, actor: str) -> None:
    """A new password for a local account; its live sessions end."""
    if account.oidc_provider is not None:
        raise AccountRefused("a single sign-on account has no password here")
    account.password_hash = passwords.hash_password(password)
    session.add(account)
    audit.record(session, account, AccountAction.PASSWORD_RESET, actor=actor, now=now,
                 detail="sessions ended")
    end_account_sessions(session, account.id, now)


def sign_in_locally(session: Session, agency_id: str, username: str, password: str,
                    now: datetime) -> StaffAccount | None:
    """The account if `password` is right and the account may sign in, else None."""
    account = find_local(session, agency_id, username) if _USERNAME.fullmatch(username) else None
    stored = account.password_hash if account is not None else None
    if not passwords.check(stored, password) or account is None or stored is None:
        return None
    if account.disabled_at is not None:
        return None
    if passwords.needs_rehash(stored) and passwords.password_problem(password) is None:
        account.password_hash = passwords.hash_password(password)
    account.last_sign_in_at = now
    session.add(account)
    return account
