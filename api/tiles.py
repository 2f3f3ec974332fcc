"""An agency's Merkle log as C2SP tlog-tiles, read from the API database (`ledger.core.tiles`).

A hash tile is `log_node` rows: tile level L is the stored nodes of Merkle level 8 * L. An
entry bundle holds each leaf's *entry*, the exact bytes whose RFC 9162 leaf hash is the leaf:
a custody event's canonical record (`custody_event.record`) or a registry record's
(`registry_record.record`), whichever holds that leaf index. The checkpoint is the agency's
latest signed checkpoint as a C2SP signed note (`Checkpoint.note_text()`, origin
`kitledger/<log id>`), signed with the log key (read from `log_key_dir`, never made) and
carrying the witnesses' stored cosignatures; the JSON checkpoint envelope is unchanged and
still served at `/v1/checkpoints`.

The same functions serve the API's routes (`api.routes.tiles`) and `kitledger tiles export`.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session, select

from api.agency_keys import LogKeyError, existing_log_key, log_key_id
from api.checkpoints import latest_checkpoint
from api.cosigning import cosignature_lines
from api.errors import ApiServiceError
from api.logstore import DatabaseNodeStore
from api.models.custody import LogCheckpoint
from ledger.core import note
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import Envelope
from ledger.core.tiles import (
    TileError,
    TileRef,
    encode_entries,
    partial_tiles,
    tile_coords,
    tile_exists,
    tiles_for_size,
)
from ledger.merkle_log import NodeMissing

_ENTRIES = text(
    "SELECT leaf_index, record FROM custody_event WHERE agency_id = :a"
    " AND leaf_index >= :lo AND leaf_index < :hi UNION ALL "
    "SELECT leaf_index, record FROM registry_record WHERE agency_id = :a"
    " AND leaf_index >= :lo AND leaf_index < :hi ORDER BY leaf_index")


class NoCheckpointNote(ApiServiceError):
    """The log has no signed checkpoint yet, or its key is not in the key directory."""


def log_size(session: Session, agency_id: str) -> int:
    return DatabaseNodeStore(session, agency_id).size()


def tile_body(session: Session, agency_id: str, ref: TileRef, size: int) -> bytes:
    """The bytes of tile or entry bundle `ref` of the agency's log of `size` leaves; TileError
    when the tree of that size does not hold it."""
    if not tile_exists(ref, size):
        raise TileError(f"{ref.path()} is beyond the log's {size} leaves")
    if ref.level is None:
        return encode_entries(_entries(session, agency_id, ref))
    try:
        hashes = DatabaseNodeStore(session, agency_id).get_many(tile_coords(ref))
    except NodeMissing as exc:
        raise TileError(f"{ref.path()}: {exc}") from None
    return b"".join(hashes)


def _entries(session: Session, agency_id: str, ref: TileRef) -> list[bytes]:
    low = ref.n * 256
    rows = session.connection().execute(
        _ENTRIES, {"a": agency_id, "lo": low, "hi": low + ref.width}).all()
    if [leaf for leaf, _record in rows] != list(range(low, low + ref.width)):
        raise TileError(f"{ref.path()}: the log's entries {low}..{low + ref.width - 1} are "
                        "not all stored")
    return [bytes(record) for _leaf, record in rows]


def checkpoint_note(session: Session, agency_id: str, key_dir: Path) -> bytes:
    """The agency's latest signed checkpoint as a C2SP signed note: the log key's signature,
    then every stored witness cosignature of that size."""
    row = latest_checkpoint(session, agency_id)
    if row is None:
        raise NoCheckpointNote(f"agency {agency_id}'s log has no signed checkpoint yet")
    point = Checkpoint.from_record(Envelope.from_bytes(row.envelope).payload)
    try:
        key = existing_log_key(key_dir, agency_id)
    except LogKeyError as exc:
        raise NoCheckpointNote(f"the log key is not available: {exc}") from None
    if log_key_id(key) != point.log_id:
        raise NoCheckpointNote(f"the key directory's log key is {log_key_id(key)}, the "
                               f"checkpoint's log is {point.log_id}")
    text_ = point.note_text()
    lines = cosignature_lines(session, agency_id, [point.tree_size]).get(point.tree_size, ())
    witnesses = tuple(note.parse_signature_line(line.rstrip("\n")) for line in lines)
    signed = note.sign_note(text_, note.log_origin(point.log_id), key)
    return note.Note(text_, (signed, *witnesses)).to_bytes()


def export_tiles(session: Session, agency_id: str, key_dir: Path, out: Path) -> tuple[int, int]:
    """Write the agency's log as static tiles under `out` at its latest signed checkpoint's
    size: every hash tile and entry bundle, the partial tiles of older checkpoints whose tile
    is still partial, then the checkpoint note (last, so a reader never sees a checkpoint
    whose tiles are not there yet). A full tile already written is left alone: it cannot
    change. Returns (tree size, files written)."""
    body = checkpoint_note(session, agency_id, key_dir)
    row = latest_checkpoint(session, agency_id)
    assert row is not None  # checkpoint_note found it
    size = row.tree_size
    wanted = set(tiles_for_size(size))
    older = session.exec(select(LogCheckpoint.tree_size).where(
        LogCheckpoint.agency_id == agency_id, LogCheckpoint.tree_size < size))
    for old in older:
        wanted.update(ref for ref in partial_tiles(old) if TileRef(ref.level, ref.n) not in wanted)
    wanted.update(TileRef(None, ref.n, ref.width) for ref in list(wanted) if ref.level == 0)
    written = 0
    for ref in sorted(wanted, key=lambda r: (r.level is None, r.level or 0, r.n, r.width)):
        target = out / ref.path()
        if ref.full and target.is_file():
            continue
        _write(target, tile_body(session, agency_id, ref, size))
        written += 1
    _write(out / "checkpoint", body)
    return size, written + 1


def _write(path: Path, body: bytes) -> None:
    """Write beside, then rename: a web server serving `path` never sends half a tile."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(body)
    partial.replace(path)
