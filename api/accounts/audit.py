"""The accounts' audit trail: one `AccountAudit` row per change, added by the change itself.

`record` is called only from the functions that change accounts (`admin.create_local`,
`set_role`, `disable`, `reset_password`, and `oidc.account_for` at a sign-on), each of which
takes its `actor` as a required argument, so the page, the REST API, the command and single
sign-on cannot change an account without saying who did: the row is added in the change's own
transaction and commits or rolls back with it. A detail names roles, never a password or hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlmodel import Session, col, select

from api.models.accounts import AccountAction, AccountAudit, StaffAccount

CLI_ACTOR: Final = "cli"
"""Changes made by `kitledger account`: whoever may run it holds the database already."""
MAX_HISTORY: Final = 1000
"""Rows one history answers, newest first."""


def account_actor(account_id: str) -> str:
    """A staff account signed in to the pages."""
    return f"account:{account_id}"


def client_actor(client_id: str) -> str:
    """An API key, through the REST API or signed in to the pages."""
    return f"client:{client_id}"


def sso_actor(issuer: str) -> str:
    """A single sign-on provider, making or re-roling an account at a sign-in."""
    return f"sso:{issuer}"


def record(session: Session, account: StaffAccount, action: AccountAction, *, actor: str,
           now: datetime, detail: str = "") -> None:
    """Add one row for a change of `account`, in the session's transaction."""
    session.add(AccountAudit(agency_id=account.agency_id, account_id=account.id,
                             action=action.value, detail=detail, actor=actor, at=now))


def history(session: Session, account: StaffAccount,
            limit: int = MAX_HISTORY) -> list[AccountAudit]:
    """The account's changes, newest first."""
    return list(session.exec(select(AccountAudit).where(
        AccountAudit.agency_id == account.agency_id, AccountAudit.account_id == account.id)
        .order_by(col(AccountAudit.id).desc()).limit(limit)))
