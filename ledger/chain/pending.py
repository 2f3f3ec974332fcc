"""The pending-anchor store: every anchor transaction is written here BEFORE it is sent.

A row holds the nonce, the transaction hash, the checkpoint (size, root, signed envelope) and the
signed raw transaction, so after a crash the anchorer can tell whether the transaction was mined,
is still pending, or was lost, and can re-send the very same bytes (same hash: idempotent).
States: ``sent`` -> ``mined`` -> ``final``; ``mined`` -> ``sent`` on a reorg; ``dropped`` when
the nonce went to another transaction and the checkpoint must be anchored afresh; ``lost`` when
the chain itself was replaced (a node restored empty, a network reset) or the contract is gone:
such a row is never re-sent, and is kept as history.

A store serves one contract: each row names the contract it was sent to, and a store opened for
another contract sees none of them, so moving to a new contract starts afresh. A file written
before rows named their contract is upgraded in place, its rows given to the first contract
that opens it (the one the service used until then).
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, Protocol

from ledger.chain.errors import PendingStoreError

AnchorState = Literal["sent", "mined", "final", "dropped", "lost"]
UNFINISHED: Final = ("sent", "mined")


@dataclass(frozen=True, slots=True)
class PendingAnchor:
    """One anchor transaction of one checkpoint, as recorded before and after sending."""

    log_id: bytes
    tree_size: int
    root: bytes
    nonce: int
    tx_hash: bytes
    raw_tx: bytes
    sender: str
    checkpoint: bytes
    created_at: float
    state: AnchorState = "sent"
    block_number: int | None = None
    block_hash: bytes | None = None


class PendingAnchorStore(Protocol):
    """What the client and anchorer need from durable storage (SQLite here; injectable)."""

    def record_sent(self, anchor: PendingAnchor) -> None: ...

    def update(self, anchor: PendingAnchor) -> None: ...

    def unfinished(self, log_id: bytes) -> list[PendingAnchor]: ...

    def latest_final(self, log_id: bytes) -> PendingAnchor | None: ...

    def count(self, log_id: bytes, state: AnchorState) -> int: ...

    def mark_lost(self, log_id: bytes) -> int: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS pending_anchor (
    tx_hash BLOB PRIMARY KEY,
    log_id BLOB NOT NULL,
    tree_size INTEGER NOT NULL,
    root BLOB NOT NULL,
    nonce INTEGER NOT NULL,
    raw_tx BLOB NOT NULL,
    sender TEXT NOT NULL,
    checkpoint BLOB NOT NULL,
    created_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('sent', 'mined', 'final', 'dropped', 'lost')),
    block_number INTEGER,
    block_hash BLOB,
    contract TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS pending_anchor_log
    ON pending_anchor (contract, log_id, state, tree_size);
"""
_CREATE_TABLE: Final = _SCHEMA.split(";")[0]
_COLUMNS: Final = (
    "log_id, tree_size, root, nonce, tx_hash, raw_tx, sender, checkpoint, created_at, state,"
    " block_number, block_hash"
)


class SqlitePendingAnchorStore:
    """The store in one SQLite file (or ``:memory:``); every write is committed at once.

    `contract` scopes every read and write to the anchors sent to that contract ("" in tests
    that use one contract)."""

    def __init__(self, path: Path | str, contract: str = "") -> None:
        # One connection shared under a lock: the anchorer thread and API readers may both use it.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self.contract = contract.lower()
        _upgrade(self._db, self.contract)
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def record_sent(self, anchor: PendingAnchor) -> None:
        row = _row(anchor)
        with self._lock:
            try:
                self._db.execute(
                    f"INSERT INTO pending_anchor ({_COLUMNS}, contract)"  # noqa: S608 - fixed list
                    f" VALUES ({', '.join('?' * 13)})",
                    (*row, self.contract),
                )
            except sqlite3.IntegrityError:
                raise PendingStoreError(
                    f"transaction 0x{anchor.tx_hash.hex()} is already recorded"
                ) from None

    def update(self, anchor: PendingAnchor) -> None:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE pending_anchor SET state = ?, block_number = ?, block_hash = ?"
                " WHERE tx_hash = ? AND contract = ?",
                (anchor.state, anchor.block_number, anchor.block_hash, anchor.tx_hash,
                 self.contract),
            )
        if cursor.rowcount != 1:
            raise PendingStoreError(f"transaction 0x{anchor.tx_hash.hex()} was never recorded")

    def unfinished(self, log_id: bytes) -> list[PendingAnchor]:
        return self._select(
            "state IN ('sent', 'mined') ORDER BY nonce, tree_size", log_id
        )

    def latest_final(self, log_id: bytes) -> PendingAnchor | None:
        rows = self._select(
            "state = 'final' ORDER BY tree_size DESC LIMIT 1", log_id
        )
        return rows[0] if rows else None

    def count(self, log_id: bytes, state: AnchorState) -> int:
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM pending_anchor"
                " WHERE contract = ? AND log_id = ? AND state = ?",
                (self.contract, log_id, state),
            ).fetchone()
        return int(n)

    def mark_lost(self, log_id: bytes) -> int:
        """Every anchor of `log_id` still in flight or final is lost (the chain was replaced):
        none is re-sent again. Returns how many rows changed."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE pending_anchor SET state = 'lost' WHERE contract = ? AND log_id = ?"
                " AND state IN ('sent', 'mined', 'final')", (self.contract, log_id))
        return int(cursor.rowcount)

    def _select(self, where: str, log_id: bytes) -> list[PendingAnchor]:
        """Rows of this store's contract and `log_id` that also match `where` (a fixed clause)."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM pending_anchor"  # noqa: S608 - fixed clauses
                f" WHERE contract = ? AND log_id = ? AND {where}",
                (self.contract, log_id),
            ).fetchall()
        return [_anchor(row) for row in rows]


def _upgrade(db: sqlite3.Connection, contract: str) -> None:
    """Give a file from before rows named their contract (and before ``lost``) the current
    table, its rows going to `contract`; a file already current, or new, is left alone."""
    columns = [row[1] for row in db.execute("PRAGMA table_info(pending_anchor)")]
    if not columns or "contract" in columns:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP INDEX IF EXISTS pending_anchor_log")
        db.execute("ALTER TABLE pending_anchor RENAME TO pending_anchor_before")
        db.execute(_CREATE_TABLE)
        db.execute(
            f"INSERT INTO pending_anchor ({_COLUMNS}, contract)"  # noqa: S608 - fixed list
            f" SELECT {_COLUMNS}, ? FROM pending_anchor_before", (contract,))
        db.execute("DROP TABLE pending_anchor_before")
        db.execute("COMMIT")
    except sqlite3.Error:
        db.execute("ROLLBACK")
        raise


def _row(a: PendingAnchor) -> tuple[object, ...]:
    return (
        a.log_id, a.tree_size, a.root, a.nonce, a.tx_hash, a.raw_tx, a.sender, a.checkpoint,
        a.created_at, a.state, a.block_number, a.block_hash,
    )


def _anchor(row: tuple[Any, ...]) -> PendingAnchor:
    (log_id, size, root, nonce, tx_hash, raw, sender, cp, created, state, number, block) = row
    return PendingAnchor(
        log_id=bytes(log_id),
        tree_size=int(size),
        root=bytes(root),
        nonce=int(nonce),
        tx_hash=bytes(tx_hash),
        raw_tx=bytes(raw),
        sender=str(sender),
        checkpoint=bytes(cp),
        created_at=float(created),
        state=state,
        block_number=None if number is None else int(number),
        block_hash=None if block is None else bytes(block),
    )
