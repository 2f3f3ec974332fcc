"""People who hold kit: pseudonymous ids, badges, qualifications, and commitment secrets.

The log names a person only by `commit(PERSON, person id, salt)`. The salt and the committed
value live in `person_secret`, a table of their own with no log row pointing at it, so erasing a
person deletes their secret (and, if wished, their row) without touching a single hash.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

from pydantic import StrictBool, StringConstraints
from sqlalchemy import JSON, Column, ForeignKeyConstraint, Index
from sqlmodel import Field, SQLModel

from api.db import Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS, RegistryId
from ledger.core.bounds import EPC_HEX_PATTERN, HASH_HEX_CHARS, MAX_EPC_HEX_CHARS

MAX_QUALIFICATIONS: Final = 32
"""Qualification names per person (taser, firearms, evidence handling...): a short list."""

MAX_BADGES: Final = 8
"""Badges per person: a current card plus spares and replacements awaiting collection."""

BadgeEpc = Annotated[str, StringConstraints(pattern=EPC_HEX_PATTERN)]
Qualification = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]


class PersonBase(SQLModel):
    qualifications: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    active: bool = True


class Person(PersonBase, table=True):
    agency_id: str = Field(foreign_key="agency.id", primary_key=True, max_length=MAX_ID_CHARS)
    id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    """Unique within the agency: ids are per agency, so one agency's say nothing of another's."""
    # The commitment the log uses for this person; kept so the API can find a person's events.
    commitment: str = Field(unique=True, max_length=HASH_HEX_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonSecret(SQLModel, table=True):
    """The opening of a person's commitment: deleting this row is erasure."""

    __tablename__ = "person_secret"
    __table_args__ = (
        ForeignKeyConstraint(["agency_id", "person_id"], ["person.agency_id", "person.id"],
                             name="fk_person_secret_person", ondelete="CASCADE"),
    )

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    person_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    salt: bytes = Field(sa_type=Bytes)
    value: str = Field(max_length=MAX_ID_CHARS)


class Badge(SQLModel, table=True):
    """A staff badge's EPC, read at a desk to open a session for its holder. Unique within the
    agency: a reader knows its own agency's badges only."""

    __table_args__ = (
        ForeignKeyConstraint(["agency_id", "person_id"], ["person.agency_id", "person.id"],
                             name="fk_badge_person", ondelete="CASCADE"),
        Index("ix_badge_agency_person", "agency_id", "person_id"),
    )

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    epc_hex: str = Field(primary_key=True, max_length=MAX_EPC_HEX_CHARS)
    person_id: str = Field(max_length=MAX_ID_CHARS)


class PersonCreate(PersonBase):
    id: RegistryId
    qualifications: list[Qualification] = Field(
        default_factory=list, max_length=MAX_QUALIFICATIONS
    )
    badges: list[BadgeEpc] = Field(default_factory=list, max_length=MAX_BADGES)
    active: StrictBool = True  # JSON true or false: 0, 1 and "yes" are not coerced


class PersonUpdate(SQLModel):
    qualifications: list[Qualification] | None = Field(
        default=None, max_length=MAX_QUALIFICATIONS
    )
    active: StrictBool | None = None


class PersonPublic(PersonBase):
    id: str
    agency_id: str
    commitment: str
