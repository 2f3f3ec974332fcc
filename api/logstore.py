"""The Merkle log's `NodeStore` on the API database, inside the caller's transaction.

`ledger.log.MerkleLog` decides which nodes exist and hashes them; this store only reads and
writes `log_node` rows through the same SQLAlchemy session as the custody change, so a batch's
state changes and its log leaves commit or roll back together. `claim_log_writer` takes the
single-writer lock (the `log_state` row) at the start of a write transaction: on PostgreSQL a
row lock held to commit, on SQLite the database write lock, taken before any read so a
deferred transaction never has to upgrade (which SQLite would refuse under contention).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

from sqlalchemy import tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.models.custody import LogNode, LogState
from ledger.core.merkle import HASH_SIZE
from ledger.core.merkle_plan import Coord
from ledger.log import MerkleLog, Node, NodeConflict, NodeMissing

LOG_STATE_ID: Final = 1

SELECT_BATCH: Final = 400
"""Coordinates per SELECT: two bound parameters each, well under every backend's limit."""


def claim_log_writer(session: Session, now: datetime) -> None:
    """Become the log's only writer until this transaction ends."""
    result = session.execute(
        update(LogState).where(col(LogState.id) == LOG_STATE_ID).values(updated_at=now)
    )
    if getattr(result, "rowcount", 0) == 0:
        # First write ever; a concurrent first writer makes one of us fail and retry.
        session.add(LogState(id=LOG_STATE_ID, size=0, updated_at=now))
        session.flush()


class DatabaseNodeStore:
    """`ledger.log.NodeStore` over the `log_node` and `log_state` tables of one session."""

    def __init__(self, session: Session) -> None:
        self._session = session

    def size(self) -> int:
        state = self._session.get(LogState, LOG_STATE_ID)
        return 0 if state is None else state.size

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        found: dict[Coord, bytes] = {}
        for start in range(0, len(coords), SELECT_BATCH):
            batch = list(coords[start:start + SELECT_BATCH])
            rows = self._session.exec(
                select(LogNode.level, LogNode.idx, LogNode.hash).where(
                    tuple_(col(LogNode.level), col(LogNode.idx)).in_(batch)
                )
            )
            for level, idx, digest in rows:
                found[(level, idx)] = digest
        try:
            return [found[coord] for coord in coords]
        except KeyError as missing:
            raise NodeMissing(f"node {missing.args[0]} is not stored") from None

    def put_many(self, nodes: Sequence[Node]) -> None:
        state = self._session.get(LogState, LOG_STATE_ID)
        if state is None:
            raise NodeConflict("log state row missing: claim_log_writer was not called")
        leaves = [index for level, index, _ in nodes if level == 0]
        if leaves != list(range(state.size, state.size + len(leaves))):
            raise NodeConflict(f"leaves {leaves[:3]}... do not follow log size {state.size}")
        for level, index, digest in nodes:
            if len(digest) != HASH_SIZE:
                raise NodeConflict(f"node ({level}, {index}) is not {HASH_SIZE} bytes")
        try:
            self._session.add_all(LogNode(level=lv, idx=ix, hash=h) for lv, ix, h in nodes)
            state.size += len(leaves)
            self._session.add(state)
            self._session.flush()
        except IntegrityError as exc:
            raise NodeConflict(f"node already stored: {type(exc.orig).__name__}") from None


def open_log(session: Session) -> MerkleLog:
    """The Merkle log as stored in `session`'s transaction (call `claim_log_writer` first to
    append)."""
    return MerkleLog(DatabaseNodeStore(session))
