"""The auditor's own memory: the last checkpoint it verified of each log, and the check that a
new bundle is consistent with it.

Like a checksum-database client keeping its tree head, the verifier stores the newest checkpoint
of every bundle it judged VALID (one small JSON file per log key, in `--state DIR`, by default
`$XDG_STATE_HOME/kitledger` or `~/.local/state/kitledger`). A later bundle of that log must hold
a checkpoint at the stored size with the stored root, so that its consistency proofs tie the
new history to the one already seen: an operator who forked the log, or shows an older view,
is caught even if every signature in the new bundle holds.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.verify.report import CheckResult, VerificationReport

STATE_VERSION: Final = 1
MAX_STATE_FILE_BYTES: Final = 4096


class StateError(ValueError):
    """The stored checkpoint cannot be read (exit 2: remove the file or use --no-state)."""


@dataclass(frozen=True, slots=True)
class KnownCheckpoint:
    """The newest checkpoint of one log that this auditor verified."""

    log_public_key: bytes
    size: int
    root: bytes
    fingerprint: str
    """The bundle it was verified in."""


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kitledger"


class CheckpointStore:
    """One JSON file per log key under `directory`, replaced atomically."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, log_public_key: bytes) -> Path:
        return self.directory / f"log-{hashlib.sha256(log_public_key).hexdigest()[:32]}.json"

    def load(self, log_public_key: bytes) -> KnownCheckpoint | None:
        path = self.path(log_public_key)
        try:
            with path.open("rb") as file:
                data = file.read(MAX_STATE_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc.strerror or exc}") from None
        try:
            record = json.loads(data)
            known = KnownCheckpoint(bytes.fromhex(record["log_public_key"]), int(record["size"]),
                                    bytes.fromhex(record["root"]), str(record["fingerprint"]))
            if record["v"] != STATE_VERSION or len(data) > MAX_STATE_FILE_BYTES:
                raise ValueError("unknown version or oversize")
        except (ValueError, KeyError, TypeError) as exc:
            raise StateError(f"stored checkpoint {path} is unreadable ({exc}): remove it, or "
                             "verify with --no-state") from None
        if known.log_public_key != log_public_key:
            raise StateError(f"stored checkpoint {path} belongs to another log key")
        return known

    def save(self, known: KnownCheckpoint) -> None:
        """Keep `known` unless a larger checkpoint of the log is stored already."""
        stored = self.load(known.log_public_key)
        if stored is not None and stored.size >= known.size:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(known.log_public_key)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps({
            "v": STATE_VERSION, "log_public_key": known.log_public_key.hex(),
            "size": known.size, "root": known.root.hex(), "fingerprint": known.fingerprint,
        }, sort_keys=True) + "\n")
        partial.replace(path)


def newest_checkpoint(bundle: AuditBundle) -> KnownCheckpoint:
    """The checkpoint to remember after `bundle` was judged VALID (its signatures held)."""
    point = Checkpoint.from_record(bundle.checkpoints[-1].envelope.payload)
    return KnownCheckpoint(bundle.log_public_key, point.tree_size, point.root,
                           bundle.fingerprint.hex())


def _ask_since(size: int) -> str:
    return (f"ask the operator for a bundle that starts there (GET /v1/audit/bundles?...&"
            f"since_size={size}, or kitledger export ... --since-size {size})")


def check_known_checkpoint(points: list[Checkpoint | None], known: KnownCheckpoint | None,
                           report: VerificationReport) -> int | None:
    """The bundle's checkpoints extend the auditor's last verified one; the size of that one
    when the bundle starts at it (so anchors before it were checked when it was stored)."""
    result = CheckResult("known-checkpoint")
    report.checks.append(result)
    signed = [p for p in points if p is not None]
    if known is None:
        result.passed = None
        result.detail = "no checkpoint of this log verified before (or --no-state)"
        return None
    result.items = 1
    if not signed:
        result.passed, result.detail = None, "no signed checkpoint to compare"
        return None
    same = next((p for p in signed if p.tree_size == known.size), None)
    if same is not None:
        if same.root != known.root:
            result.fail(f"fork: your last verified checkpoint at size {known.size} has root "
                        f"{known.root.hex()}, the bundle's has {same.root.hex()}")
            return None
        result.detail = f"extends your last verified checkpoint (size {known.size})"
        return known.size if same is signed[0] else None
    first, last = signed[0].tree_size, signed[-1].tree_size
    if known.size > last:
        result.fail(f"the bundle's newest checkpoint (size {last}) is older than your last "
                    f"verified checkpoint (size {known.size}): ask for a newer bundle, or "
                    "verify this one alone with --no-state")
    else:
        where = "starts at" if known.size < first else "has no checkpoint at it, sizes"
        result.fail(f"expected a checkpoint at your last verified size {known.size} to prove "
                    f"the bundle consistent with it, the bundle {where} {first}..{last}: "
                    + _ask_since(known.size))
    return None
