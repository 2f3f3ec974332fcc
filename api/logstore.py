"""The Merkle log's `NodeStore` on the API database, inside the caller's transaction.

`ledger.log.MerkleLog` decides which nodes exist and hashes them; this store only reads and
writes `log_node` rows through the same SQLAlchemy session as the custody change, so a batch's
state changes and its log leaves commit or roll back together. `claim_log_writer` takes the
single-writer lock (the `log_state` row) at the start of a write transaction: on PostgreSQL a
row lock held to commit, on SQLite the database write lock, taken before any read so a
deferred transaction never has to upgrade (which SQLite would refuse under contention).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from sqlalchemy import insert, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, SQLModel, col, select

from api.models.custody import LogNode, LogState
from ledger.core.merkle import HASH_SIZE
from ledger.core.merkle_plan import Coord
from ledger.log import MerkleLog, Node, NodeConflict, NodeMissing

LOG_STATE_ID: Final = 1

_NODES = SQLModel.metadata.tables["log_node"]
_STATE = SQLModel.metadata.tables["log_state"]

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
    """`ledger.log.NodeStore` over the `log_node` and `log_state` tables of one session.

    Appended nodes are held until `write()`, which stores them all with one multi-row INSERT
    and one UPDATE of the size, on the session's connection (same transaction, no ORM unit of
    work): a batch of thousands of appends costs two statements. Use `appending_log`, which
    writes on leaving the block, so no appended node can be forgotten.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._size: int | None = None
        self._stored_size = 0
        self._pending: list[Node] = []

    def size(self) -> int:
        if self._size is None:
            stored = self._session.exec(
                select(LogState.size).where(LogState.id == LOG_STATE_ID)
            ).first()
            self._stored_size = self._size = 0 if stored is None else stored
        return self._size

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        found = {(lv, ix): h for lv, ix, h in self._pending}
        wanted = [c for c in coords if c not in found]
        for start in range(0, len(wanted), SELECT_BATCH):
            batch = wanted[start:start + SELECT_BATCH]
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
        size = self.size()
        leaves = [index for level, index, _ in nodes if level == 0]
        if leaves != list(range(size, size + len(leaves))):
            raise NodeConflict(f"leaves {leaves[:3]}... do not follow log size {size}")
        for level, index, digest in nodes:
            if len(digest) != HASH_SIZE:
                raise NodeConflict(f"node ({level}, {index}) is not {HASH_SIZE} bytes")
        self._pending.extend(nodes)
        self._size = size + len(leaves)

    def write(self) -> None:
        """Store the pending nodes and the new size in the session's transaction."""
        if not self._pending:
            return
        connection = self._session.connection()
        try:
            connection.execute(
                insert(_NODES), [{"level": lv, "idx": ix, "hash": h} for lv, ix, h in self._pending]
            )
            result = connection.execute(
                update(_STATE)
                .where(_STATE.c.id == LOG_STATE_ID, _STATE.c.size == self._stored_size)
                .values(size=self._size)
            )
        except IntegrityError as exc:
            raise NodeConflict(f"node already stored: {type(exc.orig).__name__}") from None
        if getattr(result, "rowcount", 0) != 1:
            raise NodeConflict("log size moved under us: claim_log_writer was not called")
        self._pending.clear()
        self._stored_size = self.size()


class LogAppender:
    """The Merkle log of one write transaction, opened on first use; `write()` stores it."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._store: DatabaseNodeStore | None = None
        self._log: MerkleLog | None = None

    @property
    def log(self) -> MerkleLog:
        if self._log is None:
            self._store = DatabaseNodeStore(self._session)
            self._log = MerkleLog(self._store)
        return self._log

    def write(self) -> None:
        if self._store is not None:
            self._store.write()


@contextmanager
def appending_log(session: Session) -> Iterator[MerkleLog]:
    """The log for appending inside `session`'s transaction (writer lock already claimed);
    its new nodes are stored when the block ends without an error."""
    appender = LogAppender(session)
    yield appender.log
    appender.write()


def open_log(session: Session) -> MerkleLog:
    """The Merkle log as stored, for reading roots and proofs."""
    return MerkleLog(DatabaseNodeStore(session))
