"""Staff accounts of the caller's agency (scope `admin`): create, list, set a role, disable,
reset a password, and read an account's audit trail (who changed it, and when).

The same operations as `kitledger account` (`api.accounts.admin`), limited to the admin's own
agency: another agency's account answers 404, as if unknown. A password is accepted in a
request body and never answered, listed or logged; accounts list without their hashes.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from pydantic import BaseModel, Field

from api.accounts import admin, audit
from api.accounts.admin import USERNAME_PATTERN, AccountRefused
from api.accounts.audit import client_actor
from api.accounts.passwords import MAX_PASSWORD_CHARS, PasswordRefused
from api.accounts.roles import StaffRole
from api.db import utcnow
from api.deps import Admin, SessionDep
from api.models.accounts import (
    MAX_DISPLAY_CHARS,
    AccountAudit,
    StaffAccount,
    StaffAccountPublic,
)
from api.models.registry import RegistryId
from api.problems import Problem
from api.routes.paging import IdPath
from api.scoping import agency_row

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

Password = Annotated[str, Field(min_length=1, max_length=MAX_PASSWORD_CHARS)]


class AccountCreate(BaseModel):
    username: str = Field(pattern=USERNAME_PATTERN)
    role: StaffRole
    password: Password | None = Field(default=None, description="none: cannot sign in until "
                                      "one is set; at least 12 characters")
    display_name: str | None = Field(default=None, min_length=1, max_length=MAX_DISPLAY_CHARS)
    person_id: RegistryId | None = Field(default=None, description="the registry person this "
                                         "account is: custody changes made through the pages "
                                         "are authorised by their commitment")


def _unprocessable(exc: ValueError) -> Problem:
    return Problem(422, "account-refused", str(exc))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=StaffAccountPublic)
def create(data: AccountCreate, session: SessionDep, caller: Admin) -> StaffAccountPublic:
    """A new local account of the caller's agency."""
    try:
        account = admin.create_local(
            session, agency_id=caller.agency_id, username=data.username, role=data.role,
            password=data.password, display_name=data.display_name, person_id=data.person_id,
            now=utcnow(), actor=client_actor(caller.client_id))
    except PasswordRefused as exc:
        raise _unprocessable(exc) from None
    except AccountRefused as exc:
        conflict = "already has" in str(exc)
        raise Problem(409 if conflict else 422, "account-refused", str(exc)) from None
    session.commit()
    return StaffAccountPublic.of(account)


@router.get("", response_model=list[StaffAccountPublic])
def list_accounts(session: SessionDep, caller: Admin) -> list[StaffAccountPublic]:
    """The agency's accounts, disabled ones included; never their passwords."""
    return [StaffAccountPublic.of(a) for a in admin.list_accounts(session, caller.agency_id)]


@router.post("/{account_id}/role", response_model=StaffAccountPublic)
def set_role(account_id: IdPath, session: SessionDep, caller: Admin,
             role: Annotated[StaffRole, Body(embed=True)]) -> StaffAccountPublic:
    """Give the account another role (a single sign-on account's is reset at its next
    sign-in from its groups)."""
    account = agency_row(session, StaffAccount, caller.agency_id, account_id, "account")
    admin.set_role(session, account, role, now=utcnow(),
                   actor=client_actor(caller.client_id))
    session.commit()
    return StaffAccountPublic.of(account)


@router.post("/{account_id}/disable", response_model=StaffAccountPublic)
def disable(account_id: IdPath, session: SessionDep, caller: Admin) -> StaffAccountPublic:
    """Refuse every sign-in of the account from now on; its live sessions end now."""
    account = agency_row(session, StaffAccount, caller.agency_id, account_id, "account")
    admin.disable(session, account, utcnow(), actor=client_actor(caller.client_id))
    session.commit()
    return StaffAccountPublic.of(account)


@router.post("/{account_id}/password", response_model=StaffAccountPublic)
def reset_password(account_id: IdPath, session: SessionDep, caller: Admin,
                   password: Annotated[Password, Body(embed=True)]) -> StaffAccountPublic:
    """A new password for a local account; its live sessions end now."""
    account = agency_row(session, StaffAccount, caller.agency_id, account_id, "account")
    try:
        admin.reset_password(session, account, password, utcnow(),
                             actor=client_actor(caller.client_id))
    except (PasswordRefused, AccountRefused) as exc:
        raise _unprocessable(exc) from None
    session.commit()
    return StaffAccountPublic.of(account)


@router.get("/{account_id}/audit", response_model=list[AccountAudit])
def account_audit(account_id: IdPath, session: SessionDep, caller: Admin,
                  limit: Annotated[int, Query(ge=1, le=audit.MAX_HISTORY)] = 100
                  ) -> list[AccountAudit]:
    """The account's changes, newest first: what, by whom (`account:<id>`, `client:<id>`,
    `cli` or `sso:<issuer>`) and when. Rows are only added, never changed."""
    account = agency_row(session, StaffAccount, caller.agency_id, account_id, "account")
    return audit.history(session, account, limit)
