"""Collecting witness cosignatures on the agencies' checkpoints, beside the anchorer.

`CosigningService` runs in its own process (`kitledger serve` starts it when `witnesses` are
configured), so neither ingest nor anchoring ever waits for a witness. Each round, for every
agency log and every configured witness that has not cosigned the log's newest checkpoint, it
signs that checkpoint as a C2SP note with the log key (`Checkpoint.note_text()`, key name
`kitledger/<log id>`) and asks the witness (`ledger.witness.client`), from the size the
witness last cosigned for this log (what this database holds; a 409 corrects it). The verified
cosignature line is stored (`CheckpointCosignature`); bundles copy it. A witness that is down
or refuses is asked again after a backoff doubling from `witness_interval_s` up to
`witness_backoff_max_s`; since only the newest checkpoint is asked for, a witness that was
down catches up with one request when it is back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.agency_keys import LogKeyError, existing_log_key, log_key_id
from api.checkpoints import DatabaseLog, latest_checkpoint
from api.config import Settings, WitnessEndpoint
from api.models.custody import AgencyLog
from api.models.witnesses import CheckpointCosignature
from ledger.core import note
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import Envelope
from ledger.core.errors import LedgerError
from ledger.witness.client import Cosigned, WitnessError, request_cosignature

log = logging.getLogger("kitledger.cosigning")

IN_BATCH: Final = 400
"""Values per IN (...) query, well under every backend's parameter limit."""


@dataclass
class Backoff:
    """When a witness may be asked again about one log, and how long the next wait is."""

    next_at: float = 0.0
    wait_s: float = 0.0
    last_error: str = ""


@dataclass
class CosigningService:
    """Asks every configured witness to cosign every agency log's newest checkpoint."""

    settings: Settings
    engine: Engine
    backoff: dict[tuple[str, str], Backoff] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.witnesses = [(w, note.parse_vkey(w.vkey)) for w in self.settings.witnesses]

    def step(self, now: float | None = None) -> int:
        """One round; the number of cosignatures stored."""
        moment = time.time() if now is None else now
        jobs = []
        with Session(self.engine) as session:
            for row in session.exec(select(AgencyLog).where(col(AgencyLog.log_id).is_not(None))):
                newest = latest_checkpoint(session, row.agency_id)
                if newest is None:
                    continue
                for endpoint, verifier in self.witnesses:
                    state = self.backoff.setdefault((row.agency_id, verifier.vkey()), Backoff())
                    if moment < state.next_at:
                        continue
                    if _has_cosigned(session, row.agency_id, newest.tree_size, verifier):
                        continue
                    held = _held_size(session, row.agency_id, verifier)
                    jobs.append((row.agency_id, newest.envelope, endpoint, verifier, held,
                                 state))
        if not jobs:
            return 0
        with ThreadPoolExecutor(min(len(jobs), 8)) as pool:
            results = list(pool.map(lambda job: self._ask(*job, now=moment), jobs))
        return sum(results)

    def _ask(self, agency_id: str, envelope: bytes, endpoint: WitnessEndpoint,
             verifier: note.NoteVerifier, held: int, state: Backoff, *, now: float) -> int:
        point = Checkpoint.from_record(Envelope.from_bytes(envelope).payload)
        try:
            signed = self._signed_note(agency_id, point)
            log_view = DatabaseLog(self.engine, agency_id)
            size = point.tree_size

            def proof_from(old: int) -> Sequence[bytes]:
                return log_view.consistency_proof(old, size) if 0 < old < size else []

            cosigned = request_cosignature(endpoint.url, verifier, signed, held, proof_from,
                                           self.settings.witness_timeout_s)
        except (WitnessError, LogKeyError, LedgerError) as exc:
            state.wait_s = min(max(state.wait_s * 2, self.settings.witness_interval_s),
                               self.settings.witness_backoff_max_s)
            state.next_at, state.last_error = now + state.wait_s, str(exc)
            log.warning("witness %s did not cosign %s at size %d: %s (next try in %.0fs)",
                        verifier.name, agency_id, point.tree_size, exc, state.wait_s)
            return 0
        state.wait_s, state.next_at, state.last_error = 0.0, 0.0, ""
        return _store(self.engine, agency_id, verifier, cosigned, now)

    def _signed_note(self, agency_id: str, point: Checkpoint) -> bytes:
        """The checkpoint as a C2SP note signed by the agency's log key (read, never made)."""
        key = existing_log_key(self.settings.log_key_dir, agency_id)
        if log_key_id(key) != point.log_id:
            raise LogKeyError(f"the key directory's log key for {agency_id} is "
                              f"{log_key_id(key)}, the checkpoint's log is {point.log_id}")
        text = point.note_text()
        return note.Note(text, (note.sign_note(text, note.log_origin(point.log_id), key),)
                         ).to_bytes()


def _has_cosigned(session: Session, agency_id: str, size: int,
                  verifier: note.NoteVerifier) -> bool:
    return session.exec(select(CheckpointCosignature.id).where(
        CheckpointCosignature.agency_id == agency_id, CheckpointCosignature.tree_size == size,
        CheckpointCosignature.witness == verifier.name,
        CheckpointCosignature.key_id == verifier.key_id.hex())).first() is not None


def _held_size(session: Session, agency_id: str, verifier: note.NoteVerifier) -> int:
    """The largest size this witness cosigned for the log, as far as this database knows."""
    size = session.exec(select(func.max(CheckpointCosignature.tree_size)).where(
        CheckpointCosignature.agency_id == agency_id,
        CheckpointCosignature.witness == verifier.name,
        CheckpointCosignature.key_id == verifier.key_id.hex())).first()
    return int(size or 0)


def _store(engine: Engine, agency_id: str, verifier: note.NoteVerifier, cosigned: Cosigned,
           now: float) -> int:
    with Session(engine) as session:
        session.add(CheckpointCosignature(
            agency_id=agency_id, tree_size=cosigned.size, witness=verifier.name,
            key_id=verifier.key_id.hex(), line=cosigned.line,
            cosigned_at=datetime.fromtimestamp(cosigned.timestamp, UTC),
            received_at=datetime.fromtimestamp(now, UTC)))
        try:
            session.commit()
        except IntegrityError:  # stored by an earlier round already
            return 0
    return 1


def cosignature_lines(session: Session, agency_id: str, sizes: Sequence[int]
                      ) -> dict[int, tuple[str, ...]]:
    """The stored cosignature lines of the agency's checkpoints of `sizes`, by size."""
    lines: dict[int, list[str]] = {}
    for start in range(0, len(sizes), IN_BATCH):
        for row in session.exec(select(CheckpointCosignature).where(
                CheckpointCosignature.agency_id == agency_id,
                col(CheckpointCosignature.tree_size).in_(list(sizes[start:start + IN_BATCH])))
                .order_by(col(CheckpointCosignature.witness),
                          col(CheckpointCosignature.key_id))):
            lines.setdefault(row.tree_size, []).append(row.line)
    return {size: tuple(found) for size, found in lines.items()}
