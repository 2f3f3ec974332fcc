"""The agency admin's account page: list the agency's staff accounts, create one, change a
role, disable one, reset a password, and each account's history (its audit trail).

Every form goes through the same functions as `kitledger account` and `/v1/accounts`
(`api.accounts.admin`: argon2id hashes, sessions ended on disable and reset) and needs the same
scope, `admin`, which of the roles only `agency-admin` holds. Another agency's account answers
404, as on the API. Two rules hold only here, where the signed-in person is known: an admin
may not disable their own account nor give it a role without `admin`, so an agency cannot lock
itself out of its own accounts by a slip of the mouse. A new password is typed twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from api.accounts import admin, audit
from api.accounts.admin import AccountRefused
from api.accounts.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, PasswordRefused
from api.accounts.roles import ROLE_PRECEDENCE, StaffRole
from api.db import utcnow
from api.deps import SessionDep
from api.models.accounts import MAX_DISPLAY_CHARS, StaffAccount
from api.models.clients import Scope
from api.scoping import agency_row
from api.web.session import WebUser, page_user, signed_form
from api.web.templating import page

router = APIRouter(prefix="/web/accounts", include_in_schema=False)

AccountId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")]
ROLES: Final = tuple(reversed(ROLE_PRECEDENCE))
"""The role picker's order: least power first, so a slip picks too little, not too much."""
MAX_FIELD_CHARS: Final = 320
"""The longest field a form takes (a username); longer is refused, not cut."""

AdminUser = Annotated[WebUser, Depends(page_user(Scope.ADMIN))]
"""The accounts page: what `/v1/accounts` needs."""


def _page(request: Request, session: Session, user: WebUser, *, error: str | None = None,
          done: str | None = None, values: dict[str, str] | None = None) -> Response:
    return page(request, "accounts.html", status_code=422 if error else 200, user=user,
                accounts=admin.list_accounts(session, user.caller.agency_id), roles=ROLES,
                error=error, done=done, values=values or {"role": ROLES[0].value},
                min_password=MIN_PASSWORD_CHARS, max_password=MAX_PASSWORD_CHARS,
                max_display=MAX_DISPLAY_CHARS)


DONE: Final = {"created": "created", "role": "role changed", "disabled": "disabled",
               "password": "new password set"}
"""What a form did, as the page it returns to says it: the link names only the key and the
account's id, so no link can make the page say free text."""


def _done(what: str, account: StaffAccount) -> Response:
    return RedirectResponse(f"/web/accounts?done={what}&account={account.id}", status_code=303)


def _confirmation(session: Session, user: WebUser, what: str, account_id: str) -> str | None:
    """The saved change a redirect names: a known change to one of the agency's accounts."""
    account = session.get(StaffAccount, account_id) if account_id else None
    if what not in DONE or account is None or account.agency_id != user.caller.agency_id:
        return None
    return f"{account.username}: {DONE[what]}"


def _field(form: dict[str, str], name: str) -> str:
    value = form.get(name, "")
    if len(value) > MAX_FIELD_CHARS:
        raise AccountRefused(f"{name.replace('_', ' ')} is longer than {MAX_FIELD_CHARS} "
                             "characters")
    return value


def _role(form: dict[str, str]) -> StaffRole:
    try:
        return StaffRole(form.get("role", ""))
    except ValueError:
        raise AccountRefused("choose one of the roles listed") from None


def _password(form: dict[str, str], *, optional: bool = False) -> str | None:
    """The new password, once typed the same twice; None when left empty where optional."""
    password = form.get("password", "")
    if password != form.get("password_confirm", ""):
        raise AccountRefused("the two passwords differ")
    if not password and optional:
        return None
    return password


def _own(session: Session, user: WebUser, account_id: str) -> StaffAccount:
    return agency_row(session, StaffAccount, user.caller.agency_id, account_id, "account")


@router.get("", response_class=HTMLResponse)
def accounts(request: Request, session: SessionDep, user: AdminUser,
             done: Annotated[str, Query(max_length=16)] = "",
             account: Annotated[str, Query(max_length=32)] = "") -> Response:
    """The agency's accounts with their role and state, and the forms that change them."""
    return _page(request, session, user, done=_confirmation(session, user, done, account))


@router.get("/{account_id}/history", response_class=HTMLResponse)
def history(account_id: AccountId, request: Request, session: SessionDep,
            user: AdminUser) -> Response:
    """One account's changes, newest first: what, by whom, when (as
    `GET /v1/accounts/{id}/audit`)."""
    account = _own(session, user, account_id)
    return page(request, "account_history.html", user=user, account=account,
                rows=audit.history(session, account))


@router.post("/new", response_class=HTMLResponse)
async def create(request: Request, session: SessionDep, user: AdminUser) -> Response:
    """A new local account, as `kitledger account create` and `POST /v1/accounts`."""
    form = await signed_form(request, user, Scope.ADMIN)
    values = {k: form.get(k, "")[:MAX_FIELD_CHARS]
              for k in ("username", "display_name", "role", "person_id")}
    try:
        account = admin.create_local(
            session, agency_id=user.caller.agency_id, username=_field(form, "username"),
            role=_role(form), password=_password(form, optional=True), now=utcnow(),
            actor=user.actor,
            display_name=_field(form, "display_name") or None,
            person_id=_field(form, "person_id") or None)
    except (AccountRefused, PasswordRefused) as exc:
        session.rollback()
        return _page(request, session, user, error=f"Not created: {exc}", values=values)
    session.commit()
    return _done("created", account)


AccountChange = Callable[[dict[str, str], StaffAccount], str]
"""One account form's change: applied to the account, or `AccountRefused` or
`PasswordRefused`; returns what was done, a key of `DONE`."""


async def _change(request: Request, session: Session, user: WebUser, account_id: str,
                  failed: str, change: AccountChange) -> Response:
    """Apply a signed form's `change` to one of the agency's accounts and commit; if refused,
    the page again with `failed` and the reason, nothing changed."""
    form = await signed_form(request, user, Scope.ADMIN)
    account = _own(session, user, account_id)
    try:
        done = change(form, account)
    except (AccountRefused, PasswordRefused) as exc:
        session.rollback()
        return _page(request, session, user, error=f"{failed}: {exc}")
    session.commit()
    return _done(done, account)


@router.post("/{account_id}/role", response_class=HTMLResponse)
async def change_role(account_id: AccountId, request: Request, session: SessionDep,
                      user: AdminUser) -> Response:
    """Another role for an account; the admin's own keeps `admin`."""

    def change(form: dict[str, str], account: StaffAccount) -> str:
        role = _role(form)
        if account.id == user.account_id and role is not StaffRole.AGENCY_ADMIN:
            raise AccountRefused("you cannot take away your own agency-admin role: another "
                                 "admin must")
        admin.set_role(session, account, role, now=utcnow(), actor=user.actor)
        return "role"

    return await _change(request, session, user, account_id, "Not changed", change)


@router.post("/{account_id}/disable", response_class=HTMLResponse)
async def disable(account_id: AccountId, request: Request, session: SessionDep,
                  user: AdminUser) -> Response:
    """Disable an account (its sessions end now), once the confirm box is ticked."""

    def change(form: dict[str, str], account: StaffAccount) -> str:
        if account.id == user.account_id:
            raise AccountRefused("you cannot disable your own account: another admin must")
        if form.get("confirm") != "yes":
            raise AccountRefused(f"tick the box to confirm disabling {account.username}")
        admin.disable(session, account, utcnow(), actor=user.actor)
        return "disabled"

    return await _change(request, session, user, account_id, "Not disabled", change)


@router.post("/{account_id}/password", response_class=HTMLResponse)
async def reset_password(account_id: AccountId, request: Request, session: SessionDep,
                         user: AdminUser) -> Response:
    """A new password for a local account, typed twice; its sessions end now."""

    def change(form: dict[str, str], account: StaffAccount) -> str:
        admin.reset_password(session, account, _password(form) or "", utcnow(),
                             actor=user.actor)
        return "password"

    return await _change(request, session, user, account_id, "Password not set", change)
