"""Each agency's Merkle log as a `NodeStore` on the API database, in the caller's transaction.

Every agency has its own log (one writer per log, each log anchored by its agency's
account), so another agency's activity never shows in a log's size.
`ledger.merkle_log.MerkleLog` decides which nodes exist and hashes them; this store only reads
and writes `log_node` rows (keyed by agency) and the `agency_log` size through the same
SQLAlchemy session as the custody change, so a batch's state changes and its log leaves commit
or roll back together.

`claim_log_writer` makes a transaction the writer of the logs it names, until it ends. On
PostgreSQL each agency's log has a lock of its own (a transaction-scoped advisory lock), so
nodes ingesting different agencies write in parallel; a batch that touches several agencies'
logs (a borrower's desk reading kit lent by another agency appends to the owner's log) takes
all of them in one fixed order (by lock key), so two such batches cannot deadlock. A
claim of every log (periodic scans whose agencies are not known in advance) takes one lock
exclusively that each single-log claim takes shared, and registrations, which keep EPCs unique
across agencies, take a registry lock. A log appended to without its claim is refused
(`UnclaimedLog`): the ingest pipeline then claims it as well and tries the batch again.

On SQLite (one writer anyway) every claim is of every log: the database write lock, taken
before any read so a deferred transaction never has to upgrade (which SQLite would refuse under
contention), and before that the file's writer lock (`api.db.SqliteWriterLock`), so waiting
writers queue without sleeping in SQLite's busy handler.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from sqlalchemy import Engine, bindparam, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session

from api.bulk import insert_rows
from api.db import pairs_in, sqlite_writer_lock, table, utcnow
from api.models.custody import AgencyLog, LogNode, LogState
from ledger.core.merkle import HASH_SIZE
from ledger.core.merkle_plan import Coord
from ledger.merkle_log import LogError, MerkleLog, Node, NodeConflict, NodeMissing

LOG_STATE_ID: Final = 1

_NODES = table(LogNode)
_SIZES = table(AgencyLog)

# Core statements built once: every write transaction runs the first, every batch the second.
_STATE = table(LogState)
_TOUCH_STATE = update(_STATE).where(_STATE.c.id == LOG_STATE_ID).values(
    updated_at=bindparam("now"))
_SIZE_OF = select(_SIZES.c.size).where(_SIZES.c.agency_id == bindparam("agency"))

SELECT_BATCH: Final = 400
"""Coordinates per SELECT: two bound parameters each, well under every backend's limit."""


_HELD_WRITER_LOCK: Final = "kitledger.sqlite_writer_lock"


@event.listens_for(OrmSession, "after_transaction_end")
def _release_writer_lock(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_CLAIMED, None)  # PostgreSQL's advisory locks end with the transaction
        session.info.pop(_REGISTRY_CLAIMED, None)
        lock = session.info.pop(_HELD_WRITER_LOCK, None)
        if lock is not None:
            lock.release()


def _wrote_already(session: Session) -> bool:
    # sqlite3 opens its transaction just before the first write, so this is "has written".
    return bool(getattr(session.connection().connection.dbapi_connection, "in_transaction",
                        False))


LOG_LOCK_CLASS: Final = 0x4B4C4C47
"""PostgreSQL advisory lock class ("KLLG") of the agency logs' writer locks: the second key
is `log_lock_key(agency)`."""

GLOBAL_LOCK_CLASS: Final = 0x4B4C474C
"""Advisory lock class ("KLGL") of the locks above the agency logs' (`EVERY_LOG_KEY`,
`REGISTRY_KEY`)."""

EVERY_LOG_KEY: Final = 1
"""Held shared by every claim of one agency's log and exclusively by a claim of every log."""

REGISTRY_KEY: Final = 2
"""Held by registrations: an EPC is one asset's or one badge's across every agency."""

_CLAIMED: Final = "kitledger.claimed_logs"
"""`session.info` key: the agencies whose logs this transaction claimed (`EVERY_LOG`: all)."""

_REGISTRY_CLAIMED: Final = "kitledger.registry_claimed"

EVERY_LOG: Final = frozenset({"*"})
"""What a transaction that claimed every log holds (never a real agency id set)."""

_LOCK = text("SELECT pg_advisory_xact_lock(CAST(:cls AS integer), CAST(:key AS integer))")
_LOCK_SHARED = text(
    "SELECT pg_advisory_xact_lock_shared(CAST(:cls AS integer), CAST(:key AS integer))")


class UnclaimedLog(LogError):
    """A transaction appended to an agency's log it had not claimed (`claim_log_writer`)."""

    def __init__(self, agency_id: str) -> None:
        super().__init__(f"the log of agency {agency_id!r} was not claimed")
        self.agency_id = agency_id


def log_lock_key(agency_id: str) -> int:
    """The second key of agency `agency_id`'s writer lock: 31 bits of its id's SHA-256 (two
    agencies sharing one only wait for each other; it never lets two writers in at once)."""
    return int.from_bytes(hashlib.sha256(agency_id.encode()).digest()[:4], "big") >> 1


def claimed_logs(session: Session) -> frozenset[str]:
    """The agencies whose logs this transaction may append to (`EVERY_LOG`: all of them)."""
    return frozenset(session.info.get(_CLAIMED, frozenset()))


def claim_log_writer(
    session: Session, now: datetime, agencies: Iterable[str] | None = None, *,
    registry: bool = False,
) -> None:
    """Become the only writer of `agencies`' logs (None: of every log) until this transaction
    ends; `registry`: also the only registration of EPCs. Claim everything a transaction needs
    at once, before reading what the logs guard: a second claim takes its locks after the
    first's, out of the fixed order (PostgreSQL then breaks a deadlock by failing one side,
    which is retried)."""
    if session.get_bind().dialect.name == "sqlite":
        _claim_sqlite(session, now)
        return
    held = claimed_logs(session)
    if held == EVERY_LOG:
        return
    wanted = None if agencies is None else set(agencies) - held
    registering = registry and not session.info.get(_REGISTRY_CLAIMED)
    if not registering and wanted is not None and not wanted:
        return
    connection = session.connection()
    # The fixed order: the every-log lock, the registry's, then the agencies' by key.
    if not held and not session.info.get(_REGISTRY_CLAIMED):
        every = _LOCK if wanted is None else _LOCK_SHARED
        connection.execute(every, {"cls": GLOBAL_LOCK_CLASS, "key": EVERY_LOG_KEY})
    elif wanted is None:
        connection.execute(_LOCK, {"cls": GLOBAL_LOCK_CLASS, "key": EVERY_LOG_KEY})
    if registering:
        connection.execute(_LOCK, {"cls": GLOBAL_LOCK_CLASS, "key": REGISTRY_KEY})
        session.info[_REGISTRY_CLAIMED] = True
    if wanted is None:
        session.info[_CLAIMED] = EVERY_LOG
        return
    for key in sorted({log_lock_key(agency) for agency in wanted}):
        connection.execute(_LOCK, {"cls": LOG_LOCK_CLASS, "key": key})
    session.info[_CLAIMED] = held | wanted


def _claim_sqlite(session: Session, now: datetime) -> None:
    """SQLite's one writer: the file's writer lock, then the database's (a write)."""
    if claimed_logs(session) == EVERY_LOG:
        return
    bind = session.get_bind()
    if _HELD_WRITER_LOCK not in session.info and isinstance(bind, Engine):
        lock = sqlite_writer_lock(bind)
        # A transaction that has written already holds SQLite's lock: waiting for the file
        # lock now could wait on a writer that waits for us. Go without it (it is a courtesy).
        if lock is not None and not _wrote_already(session):
            lock.acquire()
            session.info[_HELD_WRITER_LOCK] = lock
    result = session.connection().execute(_TOUCH_STATE, {"now": now})
    if getattr(result, "rowcount", 0) == 0:
        # First write ever; a concurrent first writer makes one of us fail and retry.
        session.add(LogState(id=LOG_STATE_ID, size=0, updated_at=now))
        session.flush()
    session.info[_CLAIMED] = EVERY_LOG


def _check_claimed(session: Session, agency_id: str) -> None:
    held = claimed_logs(session)
    if held != EVERY_LOG and agency_id not in held:
        raise UnclaimedLog(agency_id)


class DatabaseNodeStore:
    """`ledger.merkle_log.NodeStore` over agency `agency_id`'s `log_node` rows and its size.

    Appended nodes are held until `write()`, which stores them all with one bulk INSERT
    and one UPDATE of the size, on the session's connection (same transaction, no ORM unit of
    work): a batch of thousands of appends costs two statements. Use `appending_log`, which
    writes on leaving the block, so no appended node can be forgotten.
    """

    def __init__(self, session: Session, agency_id: str) -> None:
        self._session = session
        self.agency_id = agency_id
        self._size: int | None = None
        self._stored_size = 0
        self._row_exists = False
        self._pending: list[Node] = []

    def size(self) -> int:
        if self._size is None:
            stored = self._session.connection().execute(
                _SIZE_OF, {"agency": self.agency_id}).scalar()
            self._row_exists = stored is not None
            self._stored_size = self._size = 0 if stored is None else stored
        return self._size

    def get_many(self, coords: Sequence[Coord]) -> list[bytes]:
        found = {(lv, ix): h for lv, ix, h in self._pending}
        wanted = [c for c in coords if c not in found]
        for start in range(0, len(wanted), SELECT_BATCH):
            batch = wanted[start:start + SELECT_BATCH]
            rows = self._session.connection().execute(
                select(_NODES.c.level, _NODES.c.idx, _NODES.c.hash).where(pairs_in(
                    _NODES.c.level, _NODES.c.idx, batch, also={_NODES.c.agency_id: self.agency_id},
                    bind=self._session,
                ))
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

    def write(self, now: datetime | None = None) -> None:
        """Store the pending nodes and the new size in the session's transaction."""
        if not self._pending:
            return
        connection = self._session.connection()
        when = now or utcnow()
        try:
            insert_rows(connection, _NODES, [
                {"agency_id": self.agency_id, "level": lv, "idx": ix, "hash": h}
                for lv, ix, h in self._pending
            ])
            if self._row_exists:
                result = connection.execute(
                    update(_SIZES)
                    .where(_SIZES.c.agency_id == self.agency_id,
                           _SIZES.c.size == self._stored_size)
                    .values(size=self._size, updated_at=when)
                )
                moved = getattr(result, "rowcount", 0) != 1
            else:
                # The agency's first leaf: the writers' lock makes this insert uncontended.
                connection.execute(insert(_SIZES), {
                    "agency_id": self.agency_id, "size": self._size, "updated_at": when})
                moved = False
        except IntegrityError as exc:
            raise NodeConflict(f"node already stored: {type(exc.orig).__name__}") from None
        if moved:
            raise NodeConflict("log size moved under us: claim_log_writer was not called")
        self._pending.clear()
        self._row_exists = True
        self._stored_size = self.size()


class AgencyLogs:
    """The agencies' Merkle logs within one write transaction, each opened on first use."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._stores: dict[str, DatabaseNodeStore] = {}
        self._logs: dict[str, MerkleLog] = {}

    def of(self, agency_id: str) -> MerkleLog:
        """Agency `agency_id`'s log, for appending its custody events."""
        log = self._logs.get(agency_id)
        if log is None:
            _check_claimed(self._session, agency_id)
            store = self._stores[agency_id] = DatabaseNodeStore(self._session, agency_id)
            log = self._logs[agency_id] = MerkleLog(store)
        return log

    def write(self) -> None:
        for store in self._stores.values():
            store.write()


@contextmanager
def appending_log(session: Session) -> Iterator[AgencyLogs]:
    """The logs for appending inside `session`'s transaction (writer lock already claimed);
    their new nodes are stored when the block ends without an error."""
    logs = AgencyLogs(session)
    yield logs
    logs.write()


def open_log(session: Session, agency_id: str) -> MerkleLog:
    """Agency `agency_id`'s Merkle log as stored, for reading roots and proofs."""
    return MerkleLog(DatabaseNodeStore(session, agency_id))
