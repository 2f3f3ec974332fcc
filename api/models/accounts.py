"""Staff accounts (`StaffAccount`) and the single sign-on attempts in flight (`SsoAttempt`).

An account is a person's way into the web pages: a local one has an argon2id password hash, a
single sign-on one is keyed by its provider and the provider's subject (`sub`). It may name
the registry person it is (`person_id`), whose commitment then authorises custody changes made
through the pages; the log never holds the account's username or the provider's subject.

Every change of an account (made, re-roled, disabled, its password reset, made or re-roled by
single sign-on) adds one `AccountAudit` row, in the change's own transaction: what, by whom,
when. Rows are only ever added; no route or command updates or deletes them.

A sign-on attempt is stored under the SHA-256 of its `state`, with the nonce and PKCE verifier
it was started with and the SHA-256 of the browser cookie that started it; it is spent once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Final

from sqlalchemy import ForeignKeyConstraint, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from api.db import BigInt, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS

MAX_USERNAME_CHARS: Final = 320
"""A local username (64) or `<provider>:<subject>` (the subject is at most 255, OIDC §2)."""
MAX_DISPLAY_CHARS: Final = 128
MAX_PASSWORD_HASH_CHARS: Final = 256
"""An argon2id PHC string is about 100 characters at our parameters."""
MAX_PROVIDER_CHARS: Final = 32
MAX_SUBJECT_CHARS: Final = 255
"""OpenID Connect Core §2: `sub` is at most 255 ASCII characters."""
MAX_ACTOR_CHARS: Final = 2052
"""`sso:` and an issuer URL (at most 2048, `api.config.OidcProvider`), or a shorter actor."""
MAX_AUDIT_DETAIL_CHARS: Final = 200


class StaffAccount(SQLModel, table=True):
    __tablename__ = "staff_account"
    __table_args__ = (
        UniqueConstraint("agency_id", "username", name="uq_staff_account_username"),
        UniqueConstraint("oidc_provider", "oidc_subject", name="uq_staff_account_subject"),
        ForeignKeyConstraint(["agency_id", "person_id"], ["person.agency_id", "person.id"],
                             name="fk_staff_account_person"),
    )

    id: str = Field(primary_key=True, max_length=32)
    agency_id: str = Field(foreign_key="agency.id", index=True, max_length=MAX_ID_CHARS)
    username: str = Field(max_length=MAX_USERNAME_CHARS)
    display_name: str | None = Field(default=None, max_length=MAX_DISPLAY_CHARS)
    role: str = Field(max_length=32)
    password_hash: str | None = Field(default=None, max_length=MAX_PASSWORD_HASH_CHARS)
    oidc_provider: str | None = Field(default=None, max_length=MAX_PROVIDER_CHARS)
    oidc_subject: str | None = Field(default=None, max_length=MAX_SUBJECT_CHARS)
    person_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_sign_in_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class StaffAccountPublic(SQLModel):
    """What listing an account shows: never its password hash."""

    id: str
    agency_id: str
    username: str
    display_name: str | None
    role: str
    local: bool
    oidc_provider: str | None
    person_id: str | None
    created_at: datetime
    last_sign_in_at: datetime | None
    disabled_at: datetime | None

    @classmethod
    def of(cls, account: StaffAccount) -> StaffAccountPublic:
        fields = {name: getattr(account, name) for name in cls.model_fields if name != "local"}
        return cls(**fields, local=account.password_hash is not None)


class AccountAction(StrEnum):
    """What an `AccountAudit` row records."""

    CREATED = "created"
    ROLE_CHANGED = "role_changed"
    DISABLED = "disabled"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - an action's name
    SSO_CREATED = "sso_created"
    SSO_ROLE_MAPPED = "sso_role_mapped"


class AccountAudit(SQLModel, table=True):
    """One change of a staff account: which, what (`AccountAction`, and `detail` such as
    `read-only -> supervisor`, never a password or hash), by whom (`actor`: `account:<id>`,
    `client:<id>`, `cli` or `sso:<issuer>`) and when (`at`, UTC). Only ever added."""

    __tablename__ = "account_audit"
    __table_args__ = (Index("ix_account_audit_account", "agency_id", "account_id"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(foreign_key="agency.id", max_length=MAX_ID_CHARS)
    account_id: str = Field(foreign_key="staff_account.id", max_length=32)
    action: str = Field(max_length=32)
    detail: str = Field(max_length=MAX_AUDIT_DETAIL_CHARS)
    actor: str = Field(max_length=MAX_ACTOR_CHARS)
    at: datetime = Field(sa_type=UTCDateTime)


class SsoAttempt(SQLModel, table=True):
    """A sign-on sent to a provider and not yet back: spent by its callback, or expired."""

    __tablename__ = "sso_attempt"

    id: str = Field(primary_key=True, max_length=64)
    provider: str = Field(max_length=MAX_PROVIDER_CHARS)
    browser: str = Field(max_length=64)
    nonce: str = Field(max_length=64)
    code_verifier: str = Field(max_length=128)
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
