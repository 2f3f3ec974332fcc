"""`kitledger verify --tiles URL|DIR`: the bundle's proofs recomputed from the log's published
tiles alone (C2SP tlog-tiles, `ledger.tiled_log`), not taken from the bundle.

The tiles' checkpoint note must be signed by the bundle's log key and be at least as new as
the bundle's newest checkpoint; its root must be the root the tiles hash to; every signed
checkpoint of the bundle must be consistent with it, and every event and registry record must
be included in its checkpoint, by proofs computed from the tiles. A tampered, missing or
truncated tile fails the check saying which tile or which root did not match.
"""

from __future__ import annotations

from hmac import compare_digest

from ledger.core.bundle import AuditBundle
from ledger.core.checkpoint import Checkpoint, verify_checkpoint
from ledger.core.envelope import public_key_from_raw
from ledger.core.errors import LedgerError
from ledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from ledger.core.note import (
    ED25519,
    NoteVerifier,
    log_origin,
    parse_checkpoint_text,
    parse_note,
    verify_note,
)
from ledger.tiled_log import TiledLog, TileSource
from ledger.verify.report import CheckResult, VerificationReport

CHECK_NAME = "tiles"


def check_tiles(bundle: AuditBundle, source: TileSource, report: VerificationReport) -> None:
    """Recompute the bundle's consistency and inclusion proofs from `source`'s tiles."""
    result = CheckResult(CHECK_NAME)
    report.checks.append(result)
    try:
        _check(bundle, _signed_checkpoints(bundle), source, result)
    except LedgerError as exc:
        result.fail(str(exc))


def _signed_checkpoints(bundle: AuditBundle) -> list[Checkpoint]:
    """The bundle's checkpoints its log key signed (the others fail `checkpoint-signatures`)."""
    key = public_key_from_raw(bundle.log_public_key)
    signed = []
    for item in bundle.checkpoints:
        try:
            signed.append(verify_checkpoint(item.envelope, key))
        except LedgerError:
            continue
    return signed


def _check(bundle: AuditBundle, signed: list[Checkpoint], source: TileSource,
           result: CheckResult) -> None:
    origin = log_origin(bundle.log_id)
    note = parse_note(TiledLog(source, 0).checkpoint_note())
    verify_note(note, (NoteVerifier(origin, ED25519, bundle.log_public_key),))
    body = parse_checkpoint_text(note.text)
    if body.origin != origin:
        result.fail(f"tiles checkpoint: expected origin {origin}, found {body.origin[:80]}")
        return
    newest = max((p.tree_size for p in signed), default=0)
    if body.size < newest:
        result.fail(f"tiles checkpoint is of size {body.size}, older than the bundle's newest "
                    f"({newest}): publish newer tiles")
        return
    log = TiledLog(source, body.size)
    computed = log.root(body.size)
    if not compare_digest(computed, body.root):
        result.fail(f"tiles hash to root {computed.hex()} at size {body.size}, their signed "
                    f"checkpoint says {body.root.hex()}")
        return
    roots = {}
    for point in signed:
        result.items += 1
        roots[point.tree_size] = point.root
        try:
            verify_consistency(point.tree_size, body.size, point.root, body.root,
                               log.consistency_proof(point.tree_size, body.size))
        except LedgerError as exc:
            result.fail(f"checkpoint {point.tree_size} -> tiles checkpoint {body.size}: the "
                            f"consistency proof computed from the tiles fails: {exc}")
            return
    for kind, items in (("event", bundle.events), ("registry record", bundle.registry)):
        for item in items:
            result.items += 1
            root = roots.get(item.tree_size)
            if root is None:
                continue  # the bundle's own check already fails an unsigned size
            try:
                verify_inclusion(leaf_hash(item.record), item.leaf_index, item.tree_size,
                                 log.inclusion_proof(item.leaf_index, item.tree_size), root)
            except LedgerError as exc:
                result.fail(f"{kind} at leaf {item.leaf_index}, size {item.tree_size}: the "
                            f"inclusion proof computed from the tiles fails: {exc}")
                return
