"""Anchoring inside the service: each agency's log anchored on chain by that agency's account.

`AnchoringService` runs in one process (`kitledger serve` starts it beside the ingest
workers). At start it connects to the chain — by default an embedded py-evm chain created in
this process, with a fresh CustodyAnchor contract deployed — and, as agencies' logs appear, it
binds each log's key, registers the log to its agency on chain, grants the agency's own
account (`api.agency_keys`) the agency's anchorer role, and funds it. Each step runs every
agency's `ledger.chain.anchorer.Anchorer` and copies each newly final anchor (checkpoint,
transaction, block, `Anchored` receipt log) into the database, which is all the HTTP workers
read. With `anchor_chain_url = "none"` it only signs checkpoints. Everything that touches
web3 (accounts, funding, deploy-or-attach, receipts) is `ledger.chain.consortium`'s.

The embedded chain lives only inside this process and is gone when it stops, so its anchors
(transaction, block, receipt log, all kept in the database) can be checked only with
`kitledger verify --offline`; anchors on a real node verify against it with `--rpc`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Engine
from sqlmodel import Session

from api.agency_keys import anchoring_secret, log_key_id
from api.checkpoints import (
    DatabaseLog,
    agencies_with_logs,
    bind_log_key,
    latest_anchored_size,
    latest_checkpoint,
    record_checkpoint,
)
from api.config import Settings
from api.errors import ApiServiceError
from ledger.chain.anchorer import Anchorer, AnchorPolicy
from ledger.chain.consortium import AccountKeyError, Consortium
from ledger.chain.errors import ChainError, ConsistencyError
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import EMBEDDED_URL
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, sign_checkpoint
from ledger.core.envelope import Envelope
from ledger.core.records import format_time

log = logging.getLogger("kitledger.anchoring")

MAX_KEY_FILE_BYTES: Final = 256
"""An admin key file holds 66 hex characters; anything much longer is not a key file."""


class AnchoringError(ApiServiceError):
    """Anchoring cannot start: no admin key for a node, an unreadable key, an unusable chain."""


@dataclass
class AgencyAnchoring:
    """One agency's anchorer and what of it the database already holds."""

    agency_id: str
    anchorer: Anchorer
    recorded_size: int
    halted: str | None = None


class AnchoringService:
    """Anchors every agency's log; `step()` does one round, `run()` loops until stopped."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.policy = AnchorPolicy(settings.anchor_interval_s, settings.anchor_max_new_leaves,
                                   settings.anchor_confirmations)
        self.agencies: dict[str, AgencyAnchoring] = {}
        self.consortium: Consortium | None = None
        url = settings.anchor_chain_url
        embedded = url == EMBEDDED_URL
        # The embedded chain dies with the process, so its pending anchors may too.
        self.pending = SqlitePendingAnchorStore(
            ":memory:" if embedded or url == "none" else _pending_path(settings))

    def start(self) -> None:
        """Connect, check the chain, and deploy the contract when none is configured."""
        settings = self.settings
        if settings.anchor_chain_url == "none":
            return
        try:
            self.consortium = Consortium.open(
                settings.anchor_chain_url, chain_id=settings.anchor_chain_id,
                contract=settings.anchor_contract, admin_key=self._admin_key())
        except AccountKeyError as exc:
            raise AnchoringError(f"consortium admin key: {exc}") from None
        log.info("anchoring on chain %s, contract %s", self.consortium.chain_id,
                 self.consortium.address)

    def _admin_key(self) -> str | None:
        """The configured admin key (environment or file); None lets the embedded chain make
        one. The key's text never reaches an error message."""
        settings = self.settings
        if settings.anchor_chain_url == EMBEDDED_URL:
            return None
        if settings.anchor_admin_key is not None:
            return settings.anchor_admin_key.get_secret_value()
        if settings.anchor_admin_key_file is not None:
            try:
                with settings.anchor_admin_key_file.open("r", encoding="ascii") as handle:
                    return handle.read(MAX_KEY_FILE_BYTES).strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise AnchoringError(
                    f"cannot use admin key file {settings.anchor_admin_key_file}: "
                    f"{type(exc).__name__}") from None
        raise AnchoringError("a chain node needs KITLEDGER_ANCHOR_ADMIN_KEY(_FILE)")

    def _join(self, agency_id: str) -> AgencyAnchoring:
        """Bind the agency's log key; on chain, register its log and empower its account."""
        key = bind_log_key(self.engine, self.settings.log_key_dir, agency_id)
        assert self.consortium is not None
        client = self.consortium.enroll(
            chain_log_id(log_key_id(key)), chain_agency_id(agency_id),
            anchoring_secret(self.settings.log_key_dir, agency_id))
        log_view = DatabaseLog(self.engine, agency_id)
        anchorer = Anchorer(log_view, key, client, self.pending, self.policy,
                            heads=log_view.heads_root)
        with Session(self.engine) as session:
            recorded = latest_anchored_size(session, agency_id)
        return AgencyAnchoring(agency_id, anchorer, recorded)

    def step(self, now: float | None = None) -> None:
        """One round over every agency's log."""
        moment = time.time() if now is None else now
        for agency_id in agencies_with_logs(self.engine):
            try:
                self._step_agency(agency_id, moment)
            except ChainError as exc:
                # A node that stays down at set-up: try again next round, say why.
                log.warning("anchoring %s: %s", agency_id, type(exc).__name__)

    def _step_agency(self, agency_id: str, now: float) -> None:
        if self.consortium is None:
            self._sign_only(agency_id, now)
            return
        agency = self.agencies.get(agency_id)
        if agency is None:
            agency = self.agencies[agency_id] = self._join(agency_id)
        if agency.halted:
            return
        try:
            agency.anchorer.step(now)
        except ConsistencyError as exc:
            # Never anchor a log that does not extend what is on chain: stop and alert.
            agency.halted = str(exc)
            log.error("anchoring %s halted: %s", agency_id, exc)
            return
        self._record_final(agency, now)

    def _record_final(self, agency: AgencyAnchoring, now: float) -> None:
        final = self.pending.latest_final(agency.anchorer.chain_log_id)
        if final is None or final.tree_size <= agency.recorded_size:
            return
        assert self.consortium is not None
        record_checkpoint(self.engine, agency.agency_id, Envelope.from_bytes(final.checkpoint),
                          self.consortium.anchor_receipt(final), datetime.fromtimestamp(now, UTC))
        agency.recorded_size = final.tree_size

    def _sign_only(self, agency_id: str, now: float) -> None:
        key = bind_log_key(self.engine, self.settings.log_key_dir, agency_id)
        log_view = DatabaseLog(self.engine, agency_id)
        with Session(self.engine) as session:
            last = latest_checkpoint(session, agency_id)
        size = log_view.size
        if size == 0 or (last is not None and (last.tree_size >= size or (
                now - last.signed_at.timestamp() < self.settings.anchor_interval_s
                and size - last.tree_size < self.settings.anchor_max_new_leaves))):
            return
        moment = datetime.fromtimestamp(now, UTC)
        point = Checkpoint(log_key_id(key), size, log_view.root(size), format_time(moment),
                           heads=log_view.heads_root(size))
        record_checkpoint(self.engine, agency_id, sign_checkpoint(point, key), None, moment)

    def run(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(poll_s)

    def close(self) -> None:
        self.pending.close()


def _pending_path(settings: Settings) -> str:
    settings.log_key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(settings.log_key_dir / "pending-anchors.sqlite")

