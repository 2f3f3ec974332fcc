"""Signed checkpoints of the agencies' logs, as the database keeps them for the API to serve.

The anchoring process (`api.anchoring`) binds each agency's log key (`bind_log_key`), signs
checkpoints, each committing to the log's head map at its size (`api.head_maps`), and records
where each was anchored (`record_checkpoint`): the transaction, its block and the `Anchored`
receipt log. The HTTP workers only read these rows, so no request ever
needs the chain (which, when embedded, lives inside the anchoring process) and nothing ever
scans chain logs. `DatabaseLog` gives the anchorer a log that reads committed state afresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.agency_keys import log_key, log_key_id
from api.errors import ApiServiceError
from api.head_maps import head_map_at
from api.logstore import open_log
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
    """The agency's log key, bound to its log on first use; refuses a replaced key file."""
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
