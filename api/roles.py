"""Work that exactly one process of all the nodes does: elected through PostgreSQL.

Several `kitledger serve` nodes share one database and one broker. Ingest splits among them
(the broker's shared subscription), but some work must run once: the anchorer (every log's
checkpoints on chain; two raced to record the same checkpoint), the cosigner, the webhook
dispatcher (two would deliver each event twice), and the ingest workers' scans for overdue
loans and for reads held too long, and the reader-health scan (its alerts). Each is a `Role`;
a process that may do one asks an `Election` before each round, and does the round only
while it holds the role.

A role is a PostgreSQL session advisory lock (`pg_try_advisory_lock`) on a connection the
election keeps for nothing else. The lock lives as long as that session: when its holder is
killed (kill -9, a crash, a lost host), the server ends the session, the lock goes with it and
the next process that asks takes the role over; PostgreSQL never grants it to two sessions.
Each round starts by asking the server which roles this session still holds, so a process
whose connection broke stops within one round. Which node holds what is visible on the server:
the connection's `application_name` names the node (`node_label`), read back by
`roles_of_node` for `/readyz` and the `kitledger_role_held` gauge.

On SQLite there is one node (the database is a local file), so every role is held locally.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from enum import StrEnum
from typing import Final

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from api.node import node_id as node_id  # re-exported: the roles' callers name nodes
from api.outage import DATABASE

log = logging.getLogger("kitledger.roles")

ROLE_LOCK_CLASS: Final = 0x4B4C524C
"""PostgreSQL advisory lock class ("KLRL") of the roles; the second key is `role_key(role)`."""

MAX_APPLICATION_NAME: Final = 63
"""PostgreSQL keeps this many bytes of `application_name`."""

ELECTION_CONNECT_TIMEOUT_S: Final = 5
"""How long an election waits to connect: a round is skipped rather than held up."""


class Role(StrEnum):
    """The work one process of all the nodes does."""

    ANCHORER = "anchorer"
    COSIGNER = "cosigner"
    WEBHOOKS = "webhooks"
    OVERDUE_SCAN = "overdue-scan"
    HELD_SCAN = "held-read-scan"
    READER_HEALTH = "reader-health-scan"


def role_key(role: Role) -> int:
    """The second key of `role`'s advisory lock: 31 bits of its name's SHA-256."""
    return int.from_bytes(hashlib.sha256(role.value.encode()).digest()[:4], "big") >> 1


_ROLE_OF_KEY: Final = {role_key(role): role for role in Role}


def node_label(node: str) -> str:
    """The `application_name` of a node's election connections."""
    return f"kitledger {node}"[:MAX_APPLICATION_NAME]


def is_elected(engine: Engine) -> bool:
    """Whether roles on `engine` are elected (PostgreSQL) rather than all held (SQLite)."""
    return engine.dialect.name != "sqlite"


_TRY = text("SELECT pg_try_advisory_lock(CAST(:cls AS integer), CAST(:key AS integer))")
_HELD = text(
    "SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND classid = CAST(:cls AS oid) AND objsubid = 2 AND pid = pg_backend_pid()"
)
_HELD_BY_NODE = text(
    "SELECT DISTINCT l.objid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:cls AS oid)"
    " AND l.objsubid = 2 AND a.application_name = :label"
)


class Election:
    """This process's bid for `roles`: `refresh()` before each round, then `holds(role)`."""

    def __init__(self, engine: Engine, roles: Iterable[Role], *, node: str) -> None:
        self._roles = frozenset(roles)
        self._label = node_label(node)
        self._local = not is_elected(engine)
        # Its own engine without a pool: closing the connection must end the session (and
        # its locks), never hand it back to a pool with the locks still held.
        self._engine = None if self._local else create_engine(
            engine.url, poolclass=NullPool, connect_args={
                "application_name": self._label, "connect_timeout": ELECTION_CONNECT_TIMEOUT_S})
        self._connection: Connection | None = None
        self.held: frozenset[Role] = self._roles if self._local else frozenset()

    def holds(self, role: Role) -> bool:
        return role in self.held

    def refresh(self) -> frozenset[Role]:
        """Ask for every role not held yet and find which this session still holds; a
        database that does not answer means none (another node may take them meanwhile)."""
        if self._local:
            return self.held
        before = self.held
        try:
            self.held = self._bid()
        except SQLAlchemyError as exc:
            DATABASE.failed(exc, "role election")
            self._drop()
            self.held = frozenset()
        for role in sorted(self.held - before):
            log.info("this process now holds role %s", role.value)
        for role in sorted(before - self.held):
            log.warning("this process no longer holds role %s", role.value)
        return self.held

    def _bid(self) -> frozenset[Role]:
        if self._connection is None:
            assert self._engine is not None
            self._connection = self._engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        connection = self._connection
        held = {_ROLE_OF_KEY[int(key)] for (key,) in connection.execute(
            _HELD, {"cls": ROLE_LOCK_CLASS}) if int(key) in _ROLE_OF_KEY}
        for role in sorted(self._roles - held):
            if connection.execute(_TRY, {"cls": ROLE_LOCK_CLASS, "key": role_key(role)}).scalar():
                held.add(role)
        return frozenset(held & self._roles)

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()  # never reused: its session may be gone
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None

    def close(self) -> None:
        """Give every role up (ending the session releases its locks)."""
        self._drop()
        if self._engine is not None:
            self._engine.dispose()
        if not self._local:
            self.held = frozenset()


def roles_of_node(engine: Engine, node: str) -> list[str]:
    """The roles node `node` holds, as the database sees them (all of them on SQLite)."""
    if not is_elected(engine):
        return sorted(role.value for role in Role)
    with engine.connect() as connection:
        keys = connection.execute(_HELD_BY_NODE, {"cls": ROLE_LOCK_CLASS,
                                                  "label": node_label(node)}).scalars()
        return sorted(_ROLE_OF_KEY[int(k)].value for k in keys if int(k) in _ROLE_OF_KEY)
