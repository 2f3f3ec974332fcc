"""Custody outcomes: accepted events (log leaves), refusals, alerts, decisions, desk sessions,
and the Merkle log's stored nodes.

`custody_event` holds the exact canonical bytes of each `ledger.core.records.CustodyEvent`, its
place in the asset's hash chain and its leaf index in the Merkle log; `log_node` holds the hash
of every perfect subtree, addressed (level, index) as in `ledger.core.merkle_plan`. Both are
written in the transaction that changes the asset, so state and log can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from sqlalchemy import JSON, Column, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from api.db import BigInt, Bytes, UTCDateTime, utcnow
from api.models.registry import MAX_ID_CHARS, MAX_NAME_CHARS

MAX_REASON_CHARS: Final = 200
"""A refusal or alert reason shown on a reader's display and in reports."""


class CustodyEventRow(SQLModel, table=True):
    __tablename__ = "custody_event"
    __table_args__ = (
        # An asset's chain is its agency's: ids are per agency.
        UniqueConstraint("asset_id", "agency_id", "seq", name="uq_custody_event_asset_seq"),
        # Each agency has its own Merkle log, so a leaf index is unique within an agency only.
        # Its index also serves every look-up by agency (an agency's own would only cost
        # ingest a second entry per event).
        UniqueConstraint("agency_id", "leaf_index", name="uq_custody_event_agency_leaf"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    asset_id: str = Field(max_length=MAX_ID_CHARS)
    seq: int = Field(sa_type=BigInt)
    action: str = Field(max_length=32)
    record: bytes = Field(sa_type=Bytes)
    event_hash: bytes = Field(sa_type=Bytes)
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RegistryRecordRow(SQLModel, table=True):
    """A `ledger.core.records.RegistryRecord` as logged: its canonical bytes, its subject and
    place in the subject's chain, and its leaf in the agency's Merkle log (`api.registry_log`).
    Written in the transaction that changes the registry row it mirrors."""

    __tablename__ = "registry_record"
    __table_args__ = (
        UniqueConstraint("agency_id", "leaf_index", name="uq_registry_record_agency_leaf"),
        UniqueConstraint("agency_id", "subject_kind", "subject_id", "seq",
                         name="uq_registry_record_subject_seq"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    subject_kind: str = Field(max_length=16)
    subject_id: str = Field(max_length=MAX_ID_CHARS)
    seq: int = Field(sa_type=BigInt)
    kind: str = Field(max_length=32)
    record: bytes = Field(sa_type=Bytes)
    record_hash: bytes = Field(sa_type=Bytes)
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ManualEntry(SQLModel, table=True):
    """A custody change an officer entered by hand at a desk (`api.custody.manual`): who, at
    which desk, why, and the leaf of the custody event that records it. Kept so manual
    entries can be counted per desk and officer without reading the log."""

    __tablename__ = "manual_entry"
    __table_args__ = (
        Index("ix_manual_entry_agency_desk", "agency_id", "desk_id"),
        Index("ix_manual_entry_agency_officer", "agency_id", "officer_id"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    asset_id: str = Field(max_length=MAX_ID_CHARS)
    action: str = Field(max_length=32)
    desk_id: str = Field(max_length=MAX_ID_CHARS)
    officer_id: str = Field(max_length=MAX_ID_CHARS)
    supervisor_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    client_id: str = Field(max_length=32)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    leaf_index: int = Field(sa_type=BigInt)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Refusal(SQLModel, table=True):
    """A custody change that was asked for (by a read or an API call) and refused, with why."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    asset_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    reader_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    action: str = Field(max_length=32)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


READER_ALERT_KINDS: Final = ("reader_down", "antenna_fault", "disk_low", "outbox_full",
                              "reader_overheat")
"""Alert kinds about a reader's health (`api.custody.reader_health`): at most one open alert
of each kind per reader, which the database enforces (`ix_alert_open_reader_kind`)."""

_OPEN_READER_ALERT = text(
    "resolved_at IS NULL AND kind IN ("
    + ", ".join(f"'{kind}'" for kind in READER_ALERT_KINDS) + ")")


class Alert(SQLModel, table=True):
    """Something a person should look at: unauthorised removal, unexpected site, overdue loan,
    a reader down or faulty."""

    __table_args__ = (
        Index("ix_alert_open_reader_kind", "reader_id", "kind", unique=True,
              postgresql_where=_OPEN_READER_ALERT, sqlite_where=_OPEN_READER_ALERT),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    kind: str = Field(index=True, max_length=32)
    asset_id: str | None = Field(default=None, index=True, max_length=MAX_ID_CHARS)
    reader_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    site_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    detail: str = Field(max_length=MAX_REASON_CHARS)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


MAX_ALERT_NOTE_CHARS: Final = 1000
"""A note on an alert: what was found and done, a paragraph, not a report."""


class AlertAction(SQLModel, table=True):
    """Someone acknowledged or resolved an alert, with their note. Rows are only ever added:
    the alert's history of who saw it, when, and what they said stays whole."""

    __tablename__ = "alert_action"
    # Once each: two staff answering the same banner at once cannot both acknowledge it.
    __table_args__ = (UniqueConstraint("alert_id", "action", name="uq_alert_action_once"),)

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    alert_id: int = Field(foreign_key="alert.id", sa_type=BigInt)
    agency_id: str = Field(max_length=MAX_ID_CHARS)
    action: str = Field(max_length=16)
    note: str = Field(default="", max_length=MAX_ALERT_NOTE_CHARS)
    actor_kind: str = Field(max_length=16)
    """What `actor_id` names: "api_client", or "account" (a staff account signed in to a page)."""
    actor_id: str = Field(max_length=MAX_ID_CHARS)
    actor_name: str = Field(max_length=MAX_NAME_CHARS)
    """The name as it was when they acted (a client or account renamed later keeps this)."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Decision(SQLModel, table=True):
    """The answer to one observation, published to the reader's decisions topic after commit.

    `published_at` stays empty until the broker has it, so a crash between commit and publish
    leaves the decision to be sent on restart rather than lost.
    """

    __table_args__ = (
        # "Has this read been answered?" is asked by (reader, seq) for every held read.
        Index("ix_decision_reader_id_seq", "reader_id", "seq"),
        # The decisions still to send, oldest first (`api.ingest.publishing`): only those,
        # so the index stays as small as the backlog, and marking one sent removes it.
        Index("ix_decision_unpublished", "id", postgresql_where=text("published_at IS NULL"),
              sqlite_where=text("published_at IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    reader_id: str = Field(max_length=MAX_ID_CHARS)
    topic: str = Field(max_length=512)
    seq: int = Field(sa_type=BigInt)
    decision: str = Field(max_length=8)
    reason: str = Field(max_length=MAX_REASON_CHARS)
    asset_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    action: str | None = Field(default=None, max_length=32)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeskSession(SQLModel, table=True):
    """A badge session open at a desk reader: who badged in, and when it was last active."""

    __tablename__ = "desk_session"

    reader_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    session: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    person_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    opened_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime)


class LogNode(SQLModel, table=True):
    """The hash of the perfect subtree over leaves [idx * 2**level, (idx + 1) * 2**level) of
    agency `agency_id`'s log."""

    __tablename__ = "log_node"

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True, sa_type=BigInt)
    hash: bytes = Field(sa_type=Bytes)


class LogState(SQLModel, table=True):
    """The log writers' lock: one row, locked while appending to any agency's log, so every
    log has one writer (and a batch touching several agencies' logs takes one lock)."""

    __tablename__ = "log_state"

    id: int = Field(default=1, primary_key=True)
    size: int = Field(default=0, sa_type=BigInt)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AgencyLog(SQLModel, table=True):
    """One agency's Merkle log: its size and, once its first checkpoint is signed, its id.

    A log's id is the key id of the Ed25519 key that signs its checkpoints (`api.agency_keys`);
    the key is bound when the first checkpoint is made and never changes afterwards.
    """

    __tablename__ = "agency_log"

    agency_id: str = Field(primary_key=True, max_length=MAX_ID_CHARS)
    size: int = Field(default=0, sa_type=BigInt)
    log_id: str | None = Field(default=None, unique=True, max_length=32)
    public_key: bytes | None = Field(default=None, sa_type=Bytes)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LogCheckpoint(SQLModel, table=True):
    """A signed checkpoint of an agency's log and, once anchored, where: the transaction, its
    block, and the `Anchored` receipt log exactly as the node returned it (an audit bundle
    embeds it, so `kitledger verify --offline` can decode what the chain recorded)."""

    __tablename__ = "log_checkpoint"
    __table_args__ = (
        UniqueConstraint("agency_id", "tree_size", name="uq_log_checkpoint_agency_size"),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    log_id: str = Field(max_length=32)
    tree_size: int = Field(sa_type=BigInt)
    root: bytes = Field(sa_type=Bytes)
    envelope: bytes = Field(sa_type=Bytes)
    signed_at: datetime = Field(sa_type=UTCDateTime)
    chain_id: int | None = Field(default=None, sa_type=BigInt)
    contract: str | None = Field(default=None, max_length=42)
    tx_hash: bytes | None = Field(default=None, sa_type=Bytes)
    block_number: int | None = Field(default=None, sa_type=BigInt)
    block_hash: bytes | None = Field(default=None, sa_type=Bytes)
    anchorer: str | None = Field(default=None, max_length=42)
    receipt_address: str | None = Field(default=None, max_length=42)
    receipt_topics: list[str] | None = Field(default=None, sa_column=Column(JSON))
    receipt_data: bytes | None = Field(default=None, sa_type=Bytes)
    anchored_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Transfer(SQLModel, table=True):
    """A two-sided custody change offered through the API: to another person ("transfer") or
    on loan to another agency ("loan_out"). It changes custody only when accepted, and is
    re-checked at acceptance."""

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInt)
    agency_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    asset_id: str = Field(index=True, max_length=MAX_ID_CHARS)
    action: str = Field(max_length=32)
    from_kind: str = Field(max_length=16)
    from_ref: str = Field(max_length=MAX_ID_CHARS)
    to_kind: str = Field(max_length=16)
    to_ref: str = Field(index=True, max_length=MAX_ID_CHARS)
    loan_days: int | None = None
    status: str = Field(default="offered", index=True, max_length=16)
    offered_at: datetime = Field(sa_type=UTCDateTime)
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS)
