"""Signed checkpoints of the agencies' logs, as the database keeps them for the API to serve.

The anchoring process (`api.anchoring`) binds each agency's log key (`bind_log_key`), signs
checkpoints, each committing to the log's head map at its size (`api.head_maps`), and records
where each was anchored (`record_checkpoint`): the transaction, its block and the `Anchored`
receipt log. The HTTP workers only read these rows, so no request ever
needs the chain (which, when embedded, lives inside the anchoring process) and nothing ever
scans chain logs. `DatabaseLog` gives the anchorer a log that reads committed state afresh.

A checkpoint row holds only its current anchor. An anchor that stops counting moves to
`AnchorHistory` (`retire_anchor`): `lost` when the chain no longer holds it, `superseded` when
the same checkpoint is anchored on another contract; the row's anchor columns are cleared or
replaced, so whatever reads `tx_hash` (API, web pages, bundles) never shows it as anchored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, func, select

from api.agency_keys import LogKeyError, existing_log_key, log_key, log_key_id
from api.errors import ApiServiceError
from api.head_maps import head_map_at
from api.logstore import open_log
from api.models.anchoring import MAX_STATUS_REASON_CHARS, AnchorHistory
from api.models.custody import AgencyLog, LogCheckpoint
from ledger.core.checkpoint import Checkpoint

if TYPE_CHECKING:  # the HTTP workers never import web3; only the anchorer makes these
    from ledger.chain.consortium import AnchorReceiptLog
from ledger.core.envelope import Envelope, raw_public_key


class LogKeyMismatch(ApiServiceError):
    """The key directory holds another key than the one the agency's log is bound to."""


class DatabaseLog:
    """One agency's log for the anchorer (`ledger.chain.anchorer.AnchoredLog`): each call reads
    the committed log in a short session of its own."""

    def __init__(self, engine: Engine, agency_id: str) -> None:
        self._engine = engine
        self.agency_id = agency_id

    @property
    def size(self) -> int:
        with Session(self._engine) as session:
            return open_log(session, self.agency_id).size

    def root(self, size: int | None = None) -> bytes:
        with Session(self._engine) as session:
            return open_log(session, self.agency_id).root(size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> Sequence[bytes]:
        with Session(self._engine) as session:
            return open_log(session, self.agency_id).consistency_proof(size1, size2)

    def heads_root(self, size: int) -> bytes:
        """The root of the log's head map at `size`, for the checkpoint of that size."""
        with Session(self._engine) as session:
            return head_map_at(session, self.agency_id, size).root


def agencies_with_logs(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(AgencyLog.agency_id).order_by(col(AgencyLog.agency_id))))


def bind_log_key(engine: Engine, key_dir: Path, agency_id: str) -> Ed25519PrivateKey:
    """The agency's log key, bound to its log on first use; refuses a replaced key file, and
    never makes a new key for a log already bound (a key directory resolved elsewhere, a lost
    file): that would only end in a mismatch, with a stray key left behind."""
    with Session(engine) as session:
        bound = session.get(AgencyLog, agency_id)
        bound_id = None if bound is None else bound.log_id
    if bound_id is not None:
        try:
            key = existing_log_key(key_dir, agency_id)
        except LogKeyError as exc:
            raise LogKeyMismatch(
                f"agency {agency_id}'s log is bound to key {bound_id}, which {key_dir} "
                f"does not hold: {exc}") from None
    else:
        key = log_key(key_dir, agency_id)
    kid = log_key_id(key)
    with Session(engine) as session:
        row = session.get(AgencyLog, agency_id)
        if row is None:
            row = AgencyLog(agency_id=agency_id, size=0, updated_at=datetime.now(UTC))
        if row.log_id is None:
            row.log_id, row.public_key = kid, raw_public_key(key.public_key())
            session.add(row)
            session.commit()
        elif row.log_id != kid:
            raise LogKeyMismatch(
                f"agency {agency_id}'s log is {row.log_id} but {key_dir} holds key {kid}")
    return key


def record_checkpoint(
    engine: Engine, agency_id: str, envelope: Envelope, anchor: AnchorReceiptLog | None,
    now: datetime,
) -> LogCheckpoint:
    """Store a signed checkpoint (or add its anchor to the stored one of the same size)."""
    point = Checkpoint.from_record(envelope.payload)
    with Session(engine) as session:
        row = session.exec(select(LogCheckpoint).where(
            LogCheckpoint.agency_id == agency_id, LogCheckpoint.tree_size == point.tree_size,
        )).first()
        if row is None:
            row = LogCheckpoint(
                agency_id=agency_id, log_id=point.log_id, tree_size=point.tree_size,
                root=point.root, envelope=envelope.to_bytes(), signed_at=now)
        if anchor is not None:
            if row.tx_hash is not None and (row.tx_hash, row.block_hash) != (
                    anchor.tx_hash, anchor.block_hash):
                retire_anchor(session, row, "superseded",
                              f"anchored again on {anchor.contract} (chain id {anchor.chain_id})"
                              f" in transaction 0x{anchor.tx_hash.hex()}", now)
            # The anchored envelope is the one on chain: it replaces a sign-only one.
            row.envelope = envelope.to_bytes()
            row.chain_id, row.contract = anchor.chain_id, anchor.contract
            row.tx_hash, row.block_number = anchor.tx_hash, anchor.block_number
            row.block_hash, row.anchorer = anchor.block_hash, anchor.anchorer
            row.receipt_address = anchor.address
            row.receipt_topics = [t.hex() for t in anchor.topics]
            row.receipt_data, row.anchored_at = anchor.data, now
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def retire_anchor(session: Session, row: LogCheckpoint, status: str, reason: str,
                  now: datetime) -> AnchorHistory:
    """Move the row's anchor to the history as `status` ("lost" or "superseded") and clear it
    from the row; the caller commits."""
    assert row.tx_hash is not None, "only an anchored checkpoint has an anchor to retire"
    former = AnchorHistory(
        agency_id=row.agency_id, tree_size=row.tree_size, root=row.root, status=status,
        reason=reason[:MAX_STATUS_REASON_CHARS], chain_id=row.chain_id, contract=row.contract,
        tx_hash=row.tx_hash, block_number=row.block_number, block_hash=row.block_hash,
        anchorer=row.anchorer, envelope=row.envelope, receipt_address=row.receipt_address,
        receipt_topics=row.receipt_topics, receipt_data=row.receipt_data,
        anchored_at=row.anchored_at, recorded_at=now)
    session.add(former)
    row.chain_id = row.contract = row.tx_hash = row.block_number = row.block_hash = None
    row.anchorer = row.receipt_address = row.receipt_topics = row.receipt_data = None
    row.anchored_at = None
    session.add(row)
    return former


def anchored_on(session: Session, agency_id: str, chain_id: int | None,
                contract: str | None) -> list[LogCheckpoint]:
    """The agency's checkpoints anchored on `contract` of `chain_id` (any, when None), the
    largest first."""
    query = select(LogCheckpoint).where(
        LogCheckpoint.agency_id == agency_id, col(LogCheckpoint.tx_hash).is_not(None))
    if contract is not None:
        query = query.where(LogCheckpoint.chain_id == chain_id,
                            func.lower(LogCheckpoint.contract) == contract.lower())
    return list(session.exec(query.order_by(col(LogCheckpoint.tree_size).desc())))


def latest_anchored_size(session: Session, agency_id: str) -> int:
    size = session.exec(select(LogCheckpoint.tree_size).where(
        LogCheckpoint.agency_id == agency_id, col(LogCheckpoint.tx_hash).is_not(None),
    ).order_by(col(LogCheckpoint.tree_size).desc())).first()
    return size or 0


def latest_checkpoint(
    session: Session, agency_id: str, *, anchored: bool = False
) -> LogCheckpoint | None:
    query = select(LogCheckpoint).where(LogCheckpoint.agency_id == agency_id)
    if anchored:
        query = query.where(col(LogCheckpoint.tx_hash).is_not(None))
    return session.exec(query.order_by(col(LogCheckpoint.tree_size).desc())).first()
