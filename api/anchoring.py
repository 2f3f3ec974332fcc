"""Anchoring inside the service: each agency's log anchored on chain by that agency's account.

`AnchoringService` runs in one process (`kitledger serve` starts it beside the ingest
workers). At start it connects to the chain — by default an embedded py-evm chain created in
this process, with a fresh CustodyAnchor contract deployed — and, as agencies' logs appear, it
binds each log's key and enrols it: on a consortium's node, where the server holds only its
agencies' log keys and anchorer accounts (`api.agency_keys`), it checks that the consortium
admin registered the log and granted the account (`kitledger consortium`), and says
`not_authorised`, with the cause, until it has; with an admin key (the embedded chain, a test
node) it registers, grants and funds itself. Each step runs every
agency's `ledger.chain.anchorer.Anchorer` and copies each newly final anchor (checkpoint,
transaction, block, `Anchored` receipt log) into the database, which is all the HTTP workers
read. With `anchor_chain_url = "none"` it only signs checkpoints. Everything that touches
web3 (accounts, funding, deploy-or-attach, receipts) is `ledger.chain.consortium`'s.

On a node (not embedded), the contract is the `anchor_contract` setting or, without it, the one
this service deployed on its first start and remembered in the database (`AnchorContract`):
a restart never deploys another. Every `CHAIN_CHECK_S` the service checks that the contract
still has code, that the chain's genesis block is the one the contract was first seen on, and
that each log's latest recorded anchor is still in its block and held by the contract. A
contract gone or a chain replaced stops anchoring on it, marks every anchor recorded there
`lost` (`api.checkpoints.retire_anchor`) and waits for the operator to configure another
contract; anchors lost on the same chain (restored from an older state, a deep reorg) are
marked `lost` and the anchorer sends the same signed bytes again, recorded afresh once final.

Whatever happens is said once per change of state: a log line (the reason; a traceback only
at debug level), a row in `AnchoringStatus` that `/readyz` and `/metrics` read
(`api.anchor_status`), and an alert of kind `anchoring` for each agency whose log it touches,
resolved when anchoring works again. A service that cannot anchor at all (neither a contract
nor an admin key, a node serving another chain, a log key that does not match) says so at
start, in one line, and keeps reporting it instead of dying.

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
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from api.agency_keys import LogKeyError, anchoring_secret, log_key_id
from api.anchor_status import (
    HEALTHY,
    HEARTBEAT_S,
    NOT_READY,
    AnchorState,
    raise_alert,
    resolve_alerts,
    write_status,
)
from api.checkpoints import (
    DatabaseLog,
    LogKeyMismatch,
    agencies_with_logs,
    anchored_on,
    bind_log_key,
    latest_anchored_size,
    latest_checkpoint,
    record_checkpoint,
    retire_anchor,
)
from api.config import Settings
from api.errors import ApiServiceError
from api.models.anchoring import SERVICE_SCOPE, AnchorContract
from api.models.custody import AgencyLog, LogCheckpoint
from ledger.chain.anchorer import Anchorer, AnchorPolicy
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.consortium import AccountKeyError, Consortium, NoContract
from ledger.chain.errors import (
    ChainError,
    ChainIdMismatch,
    ChainReplaced,
    ChainUnavailable,
    ConsistencyError,
    ContractRevert,
    NotAuthorised,
)
from ledger.chain.pending import SqlitePendingAnchorStore
from ledger.chain.provider import EMBEDDED_URL
from ledger.chain.txpolicy import FeePolicy
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, sign_checkpoint
from ledger.core.envelope import Envelope
from ledger.core.records import format_time

log = logging.getLogger("kitledger.anchoring")

MAX_KEY_FILE_BYTES: Final = 256
"""An admin key file holds 66 hex characters; anything much longer is not a key file."""

CHAIN_CHECK_S: Final = 15.0
"""How often the contract's code, the genesis block and each log's latest recorded anchor are
read back from the node: a few reads, so a replaced chain is noticed within seconds."""

_REFUSALS: Final = {"NotAnchorer": "no_role", "UnknownLog": "unregistered"}
"""Contract errors on an anchor that only the consortium admin can lift, and their cause."""

_STATE_LEVEL: Final = {
    AnchorState.UNAVAILABLE: logging.WARNING, AnchorState.REFUSED: logging.WARNING,
}
"""Log level on entering a state: these warn (retried on their own), other failures are errors,
healthy states are info."""


class AnchoringError(ApiServiceError):
    """Anchoring cannot start: an unreadable admin key file, an unusable chain."""


@dataclass
class AgencyAnchoring:
    """One agency's anchorer and what of it the database already holds."""

    agency_id: str
    anchorer: Anchorer
    halted: str | None = None
    lost_up_to: int = 0
    """Recorded anchors up to this size were lost on this chain and not yet anchored again."""


@dataclass
class _Standing:
    """A scope's current state as this process last reported it."""

    state: AnchorState
    reason: str
    since: float
    written: float
    quiet: bool = False
    """Entered without a log line (the service's own line said it): leaves without one too."""


class AnchoringService:
    """Anchors every agency's log; `step()` does one round, `run()` loops until stopped."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.policy = AnchorPolicy(settings.anchor_interval_s, settings.anchor_max_new_leaves,
                                   settings.anchor_confirmations)
        self.agencies: dict[str, AgencyAnchoring] = {}
        self.consortium: Consortium | None = None
        self.embedded = settings.anchor_chain_url == EMBEDDED_URL
        # Opened once the contract is known: each contract has its own anchors in flight.
        self.pending: SqlitePendingAnchorStore | None = None
        self.blocked: str | None = None
        """Why nothing is anchored until the operator acts (settings, a replaced chain)."""
        self._standing: dict[str, _Standing] = {}
        self._next_check = 0.0
        self._join_at: dict[str, float] = {}

    # -- start --------------------------------------------------------------------------

    def start(self, now: float | None = None) -> None:
        """Connect, check the chain and the contract (deployed once when none is configured),
        and check every bound log key. Never raises for a setting or a chain: the state says
        what is wrong (`/readyz` answers 503 for those that need the operator)."""
        moment = time.time() if now is None else now
        if self.settings.anchor_chain_url == "none":
            self._enter(SERVICE_SCOPE, AnchorState.SIGN_ONLY,
                        "anchor_chain_url is none: checkpoints are signed, not anchored", moment)
            return
        self._enter(SERVICE_SCOPE, AnchorState.STARTING, "connecting to the chain", moment)
        self._check_log_keys(moment)
        self._connect(moment)

    def _connect(self, now: float) -> None:
        settings = self.settings
        try:
            admin_key = self._admin_key()
            self.consortium = Consortium.open(
                settings.anchor_chain_url, chain_id=settings.anchor_chain_id,
                contract=settings.anchor_contract, admin_key=admin_key,
                remembered=None if self.embedded else self._remembered_contract,
                fees=FeePolicy(gas_price=settings.anchor_gas_price))
        except AccountKeyError as exc:
            self._block(AnchorState.MISCONFIGURED, f"consortium admin key: {exc}", now)
            return
        except (AnchoringError, ChainIdMismatch, NoContract) as exc:
            self._block(AnchorState.MISCONFIGURED, str(exc), now)
            return
        except ChainError as exc:
            self._enter(SERVICE_SCOPE, AnchorState.UNAVAILABLE, _said(exc), now, exc)
            return
        consortium = self.consortium
        self.pending = SqlitePendingAnchorStore(
            # The embedded chain dies with the process, so its pending anchors may too.
            ":memory:" if self.embedded else _pending_path(settings), consortium.address)
        if consortium.deployed and not self.embedded:
            log.warning("deployed CustodyAnchor contract %s on chain %s; it is remembered in "
                        "the database (set anchor_contract = \"%s\" to make it explicit)",
                        consortium.address, consortium.chain_id, consortium.address)
        log.info("anchoring on chain %s, contract %s", consortium.chain_id, consortium.address)
        self._check_all(now)

    def _admin_key(self) -> str | None:
        """The configured admin key (environment or file), None when there is none: the
        embedded chain makes one, an agency's server on a node has none. The key's text never
        reaches an error message."""
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
        return None

    def _remembered_contract(self, chain_id: int) -> str | None:
        """The contract this service deployed on `chain_id` before, if any."""
        with Session(self.engine) as session:
            return session.exec(select(AnchorContract.address).where(
                AnchorContract.chain_id == chain_id, col(AnchorContract.deployed)).order_by(
                col(AnchorContract.id).desc())).first()

    def _check_log_keys(self, now: float) -> None:
        """Every log already bound must find its key: fail at start, not at the first leaf."""
        with Session(self.engine) as session:
            bound = list(session.exec(select(AgencyLog.agency_id).where(
                col(AgencyLog.log_id).is_not(None)).order_by(col(AgencyLog.agency_id))))
        for agency_id in bound:
            try:
                bind_log_key(self.engine, self.settings.log_key_dir, agency_id)
            except (LogKeyMismatch, LogKeyError) as exc:
                self._enter(agency_id, AnchorState.MISCONFIGURED, str(exc), now)

    # -- the chain as a whole -------------------------------------------------------------

    def _check_all(self, now: float) -> None:
        """The contract, the chain and the recorded anchors, read back from the node."""
        self._next_check = now + CHAIN_CHECK_S
        try:
            self._check_chain(now)
            if self.blocked is None:
                for agency_id in agencies_with_logs(self.engine):
                    self._verify_recorded(agency_id, now)
        except ChainError as exc:
            self._enter(SERVICE_SCOPE, _failure_state(exc), _said(exc), now, exc)
            return
        if self.blocked is None:
            self._enter(SERVICE_SCOPE, AnchorState.OK, "anchoring", now)

    def _check_chain(self, now: float) -> None:
        """The contract still has code, on the chain it was first seen on; else stop."""
        consortium = self.consortium
        if consortium is None or self.embedded or self.blocked is not None:
            return
        admin = consortium.admin
        where = f"contract {consortium.address} on chain id {consortium.chain_id}"
        if not admin.has_code():
            self._chain_gone(AnchorState.CONTRACT_MISSING,
                             f"no code at {where}: the chain was replaced or reset, or the "
                             "address is wrong; configure a new anchor_contract", now)
            return
        genesis = admin.genesis_hash()
        with Session(self.engine) as session:
            known = list(session.exec(select(AnchorContract).where(
                AnchorContract.chain_id == consortium.chain_id,
                AnchorContract.address == consortium.address)))
            if not known:
                number, block = admin.head()
                session.add(AnchorContract(
                    chain_id=consortium.chain_id, address=consortium.address,
                    genesis_hash=genesis, seen_block_number=number, seen_block_hash=block,
                    deployed=consortium.deployed, adopted_at=datetime.fromtimestamp(now, UTC)))
                session.commit()
                return
        if not any(k.genesis_hash == genesis and admin.block_hash(k.seen_block_number)
                   == k.seen_block_hash for k in known):
            first = known[0]
            self._chain_gone(AnchorState.CHAIN_REPLACED,
                             f"the chain under {where} was replaced: it no longer has block "
                             f"{first.seen_block_number} (0x{first.seen_block_hash.hex()[:16]}) "
                             "seen when the contract was first used; configure a new "
                             "anchor_contract", now)

    def _chain_gone(self, state: AnchorState, reason: str, now: float) -> None:
        """Every anchor recorded on this contract is lost; nothing is anchored here again."""
        consortium = self.consortium
        assert consortium is not None
        moment = datetime.fromtimestamp(now, UTC)
        lost: dict[str, int] = {}
        with Session(self.engine) as session:
            for agency_id in agencies_with_logs(self.engine):
                rows = anchored_on(session, agency_id, consortium.chain_id, consortium.address)
                for row in rows:
                    retire_anchor(session, row, "lost", reason, moment)
                if rows:
                    lost[agency_id] = len(rows)
            session.commit()
        for agency in self._known_logs():
            if self.pending is not None:
                self.pending.mark_lost(agency)
        self._block(state, reason, now)
        for agency_id, count in lost.items():
            log.error("anchoring %s: %d recorded anchor(s) on %s marked lost", agency_id, count,
                      consortium.address)

    def _known_logs(self) -> list[bytes]:
        with Session(self.engine) as session:
            ids = session.exec(select(AgencyLog.log_id).where(col(AgencyLog.log_id).is_not(None)))
            return [chain_log_id(i) for i in ids if i is not None]

    def _block(self, state: AnchorState, reason: str, now: float) -> None:
        """Nothing can be anchored until the operator acts: the service and every log say so."""
        self.blocked = reason
        self._enter(SERVICE_SCOPE, state, reason, now)
        for agency_id in agencies_with_logs(self.engine):
            self._enter(agency_id, state, reason, now, quiet=True)  # the service's line says it

    # -- rounds ---------------------------------------------------------------------------

    def step(self, now: float | None = None) -> None:
        """One round over every agency's log."""
        moment = time.time() if now is None else now
        if self.blocked is not None:
            self._heartbeat(moment)
            return
        if self.settings.anchor_chain_url != "none" and self.consortium is None:
            if moment >= self._next_check:
                self._next_check = moment + CHAIN_CHECK_S
                self._connect(moment)  # the node was down at start: try again
            if self.consortium is None:
                self._heartbeat(moment)
                return
        elif self.consortium is not None and moment >= self._next_check:
            self._check_all(moment)
            if self.blocked is not None:
                self._heartbeat(moment)
                return
        for agency_id in agencies_with_logs(self.engine):
            try:
                self._step_agency(agency_id, moment)
            except NotAuthorised as exc:
                self._not_authorised(agency_id, exc.cause, exc.account, str(exc), moment)
            except ChainError as exc:
                # A node that stays down at set-up: try again next round, say why.
                self._enter(agency_id, _failure_state(exc), _said(exc), moment, exc,
                            quiet=self._node_down())
            except (LogKeyMismatch, LogKeyError) as exc:
                self._enter(agency_id, AnchorState.MISCONFIGURED, str(exc), moment)
            if self.blocked is not None:
                return
        self._heartbeat(moment)

    def _step_agency(self, agency_id: str, now: float) -> None:
        if self.settings.anchor_chain_url == "none":
            self._sign_only(agency_id, now)
            self._enter(agency_id, AnchorState.SIGN_ONLY, "signing checkpoints only", now)
            return
        agency = self.agencies.get(agency_id)
        if agency is None:
            if now < self._join_at.get(agency_id, 0.0):
                return  # refused lately: asked again every CHAIN_CHECK_S, not every round
            self._join_at[agency_id] = now + CHAIN_CHECK_S
            agency = self.agencies[agency_id] = self._join(agency_id)
        if agency.halted:
            return
        try:
            agency.anchorer.step(now)
        except ConsistencyError as exc:
            # Never anchor a log that does not extend what is on chain: stop and alert.
            agency.halted = str(exc)
            self._enter(agency_id, AnchorState.HALTED, str(exc), now)
            return
        except ChainReplaced as exc:
            self._check_chain(now)  # a contract without code says so more precisely
            if self.blocked is None:
                self._chain_gone(AnchorState.CHAIN_REPLACED, str(exc), now)
            return
        self._record_final(agency, now)
        failure = agency.anchorer.last_failure
        if isinstance(failure, ContractRevert) and failure.error_name in _REFUSALS:
            # Revoked (or the log unregistered) since it joined: only the admin can lift it.
            self._not_authorised(agency_id, _REFUSALS[failure.error_name],
                                 agency.anchorer.client.account.address, str(failure), now)
        elif failure is not None:
            self._enter(agency_id, _failure_state(failure), _said(failure), now, failure,
                        quiet=self._node_down())
        elif agency.lost_up_to:
            self._enter(agency_id, AnchorState.ANCHORS_LOST,
                        f"the chain no longer holds our anchors up to size {agency.lost_up_to};"
                        " the same transactions are being sent again", now)
        else:
            self._enter(agency_id, AnchorState.OK, "anchoring", now)

    def _join(self, agency_id: str) -> AgencyAnchoring:
        """Bind the agency's log key; on chain, register its log and empower its account."""
        key = bind_log_key(self.engine, self.settings.log_key_dir, agency_id)
        assert self.consortium is not None and self.pending is not None
        client = self.consortium.enroll(
            chain_log_id(log_key_id(key)), chain_agency_id(agency_id),
            anchoring_secret(self.settings.log_key_dir, agency_id))
        log_view = DatabaseLog(self.engine, agency_id)
        anchorer = Anchorer(log_view, key, client, self.pending, self.policy,
                            heads=log_view.heads_root)
        return AgencyAnchoring(agency_id, anchorer)

    def _not_authorised(self, agency_id: str, cause: str, account: str, detail: str,
                        now: float) -> None:
        """Say what the consortium admin must sign for this agency to anchor again."""
        with Session(self.engine) as session:
            log_id = session.exec(select(AgencyLog.log_id).where(
                AgencyLog.agency_id == agency_id)).first()
        todo = {
            "unregistered": f"the consortium admin must register it: kitledger consortium "
                            f"register-log --agency {agency_id} --log {log_id}",
            "other_agency": "the log key belongs to another agency's registration: check "
                            "log_key_dir",
            "no_role": f"the consortium admin must grant it: kitledger consortium "
                       f"grant-anchorer --agency {agency_id} --account {account}",
        }[cause]
        self._enter(agency_id, AnchorState.NOT_AUTHORISED, f"{cause}: {detail}; {todo}", now)

    def _recorded(self, session: Session, agency_id: str) -> int:
        """The largest anchored size recorded for the contract in use (any contract on the
        embedded chain, whose earlier contracts died with earlier processes)."""
        if self.embedded:
            return latest_anchored_size(session, agency_id)
        assert self.consortium is not None
        rows = anchored_on(session, agency_id, self.consortium.chain_id, self.consortium.address)
        return rows[0].tree_size if rows else 0

    def _record_final(self, agency: AgencyAnchoring, now: float) -> None:
        """Copy the latest final anchor into the database unless it is there already; one in
        a new block (the chain restored, the same bytes mined again) replaces the recorded
        one, which the chain no longer holds and so is marked lost first."""
        assert self.consortium is not None and self.pending is not None
        final = self.pending.latest_final(agency.anchorer.chain_log_id)
        if final is None:
            return
        with Session(self.engine) as session:
            recorded = self._recorded(session, agency.agency_id)
            row = session.exec(select(LogCheckpoint).where(
                LogCheckpoint.agency_id == agency.agency_id,
                LogCheckpoint.tree_size == final.tree_size)).first()
            here = row is not None and row.tx_hash is not None and (
                row.tx_hash, row.block_hash) == (final.tx_hash, final.block_hash)
        if here or final.tree_size < recorded or (
                self.embedded and final.tree_size <= recorded):
            return
        if final.tree_size == recorded:
            self._verify_recorded(agency.agency_id, now)
        record_checkpoint(self.engine, agency.agency_id, Envelope.from_bytes(final.checkpoint),
                          self.consortium.anchor_receipt(final), datetime.fromtimestamp(now, UTC))
        if final.tree_size >= agency.lost_up_to:
            agency.lost_up_to = 0

    def _verify_recorded(self, agency_id: str, now: float) -> None:
        """The log's latest anchors recorded on this contract are still on chain, in their
        block, held by the contract; those that are not are marked lost (newest first, down
        to the first that holds). Raises ChainError when the node cannot say."""
        consortium = self.consortium
        if consortium is None or self.embedded:
            return
        lost: list[tuple[int, str]] = []
        with Session(self.engine) as session:
            for row in anchored_on(session, agency_id, consortium.chain_id, consortium.address):
                why = _missing(consortium.admin, row)
                if why is None:
                    break
                retire_anchor(session, row, "lost", why, datetime.fromtimestamp(now, UTC))
                lost.append((row.tree_size, why))
            session.commit()
        if not lost:
            return
        top, why = lost[0]
        agency = self.agencies.get(agency_id)
        if agency is not None:
            agency.lost_up_to = max(agency.lost_up_to, top)
        log.error("anchoring %s: %d recorded anchor(s) no longer on chain, marked lost "
                  "(size %d: %s)", agency_id, len(lost), top, why)
        self._enter(agency_id, AnchorState.ANCHORS_LOST,
                    f"the chain no longer holds our anchor of size {top}: {why}", now)

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

    # -- states ---------------------------------------------------------------------------

    def _enter(self, scope: str, state: AnchorState, reason: str, now: float,
               failure: Exception | None = None, *, quiet: bool = False) -> None:
        """Report `state` for `scope`: logged (unless `quiet`), stored and alerted once per
        change of state; the stored row is refreshed every `HEARTBEAT_S` while nothing
        changes."""
        before = self._standing.get(scope)
        if before is not None and before.state == state:
            if now - before.written >= HEARTBEAT_S:
                self._write(scope, state, reason, now)
                before.written, before.reason = now, reason
            return
        who = "anchoring" if scope == SERVICE_SCOPE else f"anchoring {scope}"
        if state in HEALTHY:
            if before is not None and before.state not in HEALTHY and not before.quiet:
                log.info("%s recovered after %.1f s (was %s: %s)", who, now - before.since,
                         before.state, before.reason)
            if scope != SERVICE_SCOPE and state == AnchorState.OK:
                resolve_alerts(self.engine, scope, datetime.fromtimestamp(now, UTC))
        else:
            if not quiet:
                log.log(_STATE_LEVEL.get(state, logging.ERROR), "%s %s: %s", who, state, reason)
            if failure is not None:
                log.debug("%s: %s", who, type(failure).__name__, exc_info=failure)
            if state in NOT_READY:  # an outage is retried alone: logs and metrics, no alert
                raise_alert(self.engine, scope, f"anchoring {state}: {reason}",
                            datetime.fromtimestamp(now, UTC))
        self._standing[scope] = _Standing(state, reason, now, now, quiet)
        self._write(scope, state, reason, now)

    def _node_down(self) -> bool:
        """The service already said the node is down: its logs need not each say it again."""
        standing = self._standing.get(SERVICE_SCOPE)
        return standing is not None and standing.state == AnchorState.UNAVAILABLE

    def _write(self, scope: str, state: AnchorState, reason: str, now: float) -> None:
        consortium = self.consortium
        write_status(self.engine, scope, state, reason, datetime.fromtimestamp(now, UTC),
                     chain_id=None if consortium is None else consortium.chain_id,
                     contract=None if consortium is None else consortium.address)

    def _heartbeat(self, now: float) -> None:
        for scope, standing in list(self._standing.items()):
            self._enter(scope, standing.state, standing.reason, now)

    def hand_over(self, deadline: float, poll_s: float = 0.5) -> bool:
        """Before this process lets go of the anchorer's role: wait, until `deadline`
        (monotonic), for every anchor transaction in flight to be final or dropped, and record
        the finals; send nothing new. True when nothing is left in flight. A transaction still
        in flight at the deadline is safe (the next holder's anchor of the same size is
        refused by the contract, and this node settles it when it holds the role again), only
        wasteful."""
        if self.consortium is None or self.pending is None or self.blocked is not None:
            return True
        while True:
            waiting = []
            for agency in self.agencies.values():
                if agency.halted:
                    continue
                try:
                    if not agency.anchorer.settle():
                        why = agency.anchorer.last_error or "in flight"
                        waiting.append(f"{agency.agency_id} ({why})")
                except ChainError as exc:
                    waiting.append(f"{agency.agency_id} ({type(exc).__name__})")
                try:  # best effort: the next holder records what is final too
                    self._record_final(agency, time.time())
                except (ChainError, SQLAlchemyError) as exc:
                    log.debug("handing over: recording %s's final anchor: %s", agency.agency_id,
                              type(exc).__name__)
            if not waiting:
                return True
            if time.monotonic() >= deadline:
                log.warning("handing over anchoring: still in flight at the deadline: %s",
                            ", ".join(waiting)[:500])
                return False
            time.sleep(poll_s)

    def run(self, stop: threading.Event, poll_s: float = 0.5) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(poll_s)

    def close(self) -> None:
        if self.pending is not None:
            self.pending.close()


def _missing(admin: CustodyAnchorClient, row: LogCheckpoint) -> str | None:
    """Why the chain no longer holds a recorded anchor, or None when it does."""
    assert row.tx_hash is not None and row.block_number is not None
    found = admin.block_hash(row.block_number)
    if found != row.block_hash:
        return (f"block {row.block_number} of transaction 0x{row.tx_hash.hex()} is no longer "
                "on chain")
    receipt = admin.receipt(row.tx_hash)
    if receipt is None or receipt.block_hash != row.block_hash:
        return f"transaction 0x{row.tx_hash.hex()} is no longer in block {row.block_number}"
    held = admin.root_at(chain_log_id(row.log_id), row.tree_size)
    if held != row.root:
        return f"the contract holds no root of ours at size {row.tree_size}"
    return None


def _failure_state(exc: Exception) -> AnchorState:
    return AnchorState.UNAVAILABLE if isinstance(exc, ChainUnavailable) else AnchorState.REFUSED


def _said(exc: Exception) -> str:
    return str(exc) or type(exc).__name__


def _pending_path(settings: Settings) -> str:
    settings.log_key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return str(settings.log_key_dir / "pending-anchors.sqlite")
