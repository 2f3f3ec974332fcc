"""Audit bundles from the database: one agency log's events, proofs, checkpoints and anchors.

`export_agency_bundle` gathers, for some assets of one owning agency, every custody event from
genesis (covered by a checkpoint), the signed observations they cite, the registry records they
rest on (`api.registry_log`: the whole chains of the agency's registry, the assets, the readers
that signed those observations or took the agency's inventories, and the assets' classes; for a
time range also of every registry leaf in it; device lines only for readers of other agencies,
whose registrations are in their own logs), and the agency log's checkpoints with their
anchors, then lets `ledger.bundle_export` add the proofs from the stored log and
`ledger.core.bundle` write the format (docs/audit-bundle.md). When the log has anchored
checkpoints only those go in (the verifier demands that no anchor up to the newest one is left
out); otherwise the signed ones.
With `since_size` the checkpoints start at the one of that size (an auditor's last verified
checkpoint), with consistency proofs onward from it.
When the newest commits to a head map, the bundle carries the map's proofs for its scope
(`api.head_maps`), and `site_assets`, `case_assets` and `range_assets` say which assets a
site, case or time-range scope must hold, as the verifier will check them.
Each checkpoint carries the witness cosignatures collected on it so far (api.cosigning).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Final, TypeVar

from sqlmodel import Session, col, select

from api.cosigning import cosignature_lines
from api.errors import ApiServiceError
from api.head_maps import head_map_at
from api.logstore import open_log
from api.models.assets import Asset, HolderKind
from api.models.custody import AgencyLog, CustodyEventRow, LogCheckpoint, RegistryRecordRow
from api.models.evidence import EvidenceReference
from api.models.ingest import IngestedObservation
from api.models.registry import Reader
from ledger.bundle_export import LoggedEvent, export_bundle
from ledger.core.bundle import AnchorProof, BundleCheckpoint, ChainInfo, DeviceRegistration, Scope
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import Envelope
from ledger.core.heads import HeadMap
from ledger.core.records import ASSET_REGISTERED, INVENTORY_TAKEN, format_time

MAX_BUNDLE_ASSETS: Final = 1_000
"""Assets in one exported bundle: a store's radios fit; a whole force is exported by site or
time range in several files, so one request cannot hold the database for minutes."""

IN_BATCH: Final = 400
"""Values per IN (...) query, well under every backend's parameter limit."""


T = TypeVar("T")


class BundleUnavailable(ApiServiceError):
    """Nothing to export yet: the agency's log has no checkpoint covering the assets."""


def _checkpoints(session: Session, agency_id: str) -> tuple[list[LogCheckpoint], bool]:
    rows = list(session.exec(select(LogCheckpoint).where(LogCheckpoint.agency_id == agency_id)
                             .order_by(col(LogCheckpoint.tree_size))))
    anchored = [r for r in rows if r.tx_hash is not None]
    return (anchored, True) if anchored else (rows, False)


def _signed(row: LogCheckpoint) -> Checkpoint:
    return Checkpoint.from_record(Envelope.from_bytes(row.envelope).payload)


def newest_head_map(session: Session, agency_id: str) -> HeadMap | None:
    """The head map the newest checkpoint a bundle would carry commits to (None: it commits to
    none, or there is no checkpoint)."""
    checkpoints, _anchored = _checkpoints(session, agency_id)
    if not checkpoints:
        return None
    newest = _signed(checkpoints[-1])
    if newest.heads is None:
        return None
    head_map = head_map_at(session, agency_id, newest.tree_size)
    if head_map.root != newest.heads:
        raise BundleUnavailable(f"agency {agency_id}'s head map at size {newest.tree_size} is "
                                "not the one its checkpoint signed")
    return head_map


def site_assets(session: Session, agency_id: str, site: str) -> tuple[list[str], HeadMap | None]:
    """The assets the log places at the agency's `site` at the newest checkpoint (its head
    map's site entries), and that map; with no map, the assets whose latest event is there."""
    head_map = newest_head_map(session, agency_id)
    if head_map is not None:
        return head_map.assets_at(site), head_map
    rows = session.exec(select(Asset.id).where(
        Asset.agency_id == agency_id, Asset.holder_kind == HolderKind.LOCATION.value,
        Asset.holder_agency_id == agency_id, Asset.holder_ref == site).order_by(col(Asset.id)))
    return list(rows), None


def case_assets(session: Session, agency_id: str, case: str) -> tuple[list[str], HeadMap | None]:
    """The exhibits the log's latest references put in `case` at the newest checkpoint (its
    head map's case entries), and that map; with no map, those the reference table lists."""
    head_map = newest_head_map(session, agency_id)
    if head_map is not None:
        return head_map.assets_in_case(case), head_map
    rows = session.exec(select(EvidenceReference.asset_id).where(
        EvidenceReference.agency_id == agency_id, EvidenceReference.case_ref == case)
        .order_by(col(EvidenceReference.asset_id)))
    return list(rows), None


def range_assets(session: Session, agency_id: str, start: str, end: str
                 ) -> tuple[list[str], str]:
    """The assets of every leaf between the checkpoints bracketing [start, end), and the end,
    moved back to the newest checkpoint's time if it is later (nothing since is proven)."""
    points = [_signed(r) for r in _checkpoints(session, agency_id)[0]]
    if not points:
        return [], end
    if points[-1].time < end:  # fixed-width UTC times compare as text
        end = points[-1].time
    low, high = _range_leaves(points, start, end)
    if start >= end or low >= high:
        return [], end
    ids = session.exec(select(CustodyEventRow.asset_id).where(
        CustodyEventRow.agency_id == agency_id, col(CustodyEventRow.leaf_index) >= low,
        col(CustodyEventRow.leaf_index) < high).distinct().order_by(
            col(CustodyEventRow.asset_id)).limit(MAX_BUNDLE_ASSETS + 1))
    return list(ids), end


def _range_leaves(points: Sequence[Checkpoint], start: str, end: str) -> tuple[int, int]:
    """The leaves [low, high) between the checkpoints bracketing [start, end)."""
    low = max((p.tree_size for p in points if p.time <= start), default=0)
    high = min((p.tree_size for p in points if p.time >= end), default=low)
    return low, high


def _subject_rows(session: Session, agency_id: str, kind: str, ids: set[str], covered: int
                  ) -> list[RegistryRecordRow]:
    rows: list[RegistryRecordRow] = []
    for batch in _in_batches(sorted(ids)):
        rows += session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.agency_id == agency_id, RegistryRecordRow.subject_kind == kind,
            col(RegistryRecordRow.subject_id).in_(batch),
            col(RegistryRecordRow.leaf_index) < covered))
    return rows


def registry_rows(session: Session, agency_id: str, *, assets: Sequence[str],
                  readers: set[str], covered: int, leaves: tuple[int, int] | None = None
                  ) -> list[RegistryRecordRow]:
    """The registry records (leaf below `covered`) a bundle of `assets` needs, whole chains:
    the agency's registry, the assets, the `readers` and those the agency's inventories name,
    and the assets' classes; and those of every subject with a record among `leaves` [low,
    high) (a time range's)."""
    wanted: dict[str, set[str]] = {"agency": {agency_id}, "asset": set(assets),
                                   "reader": set(readers), "class": set()}
    if leaves is not None:
        for kind, ident in session.exec(select(
                RegistryRecordRow.subject_kind, RegistryRecordRow.subject_id).where(
                RegistryRecordRow.agency_id == agency_id,
                col(RegistryRecordRow.leaf_index) >= leaves[0],
                col(RegistryRecordRow.leaf_index) < min(leaves[1], covered))):
            wanted[kind].add(ident)
    rows = {r.id: r for r in _subject_rows(session, agency_id, "agency", wanted["agency"],
                                           covered)}
    # The readers the agency's inventories credit: the verifier holds each to its registration.
    wanted["reader"] |= {json.loads(r.record)["reader"] for r in rows.values()
                         if r.kind == INVENTORY_TAKEN}
    rows |= {r.id: r for kind in ("asset", "reader")
             for r in _subject_rows(session, agency_id, kind, wanted[kind], covered)}
    wanted["class"] |= {json.loads(r.record)["class"] for r in rows.values()
                        if r.kind == ASSET_REGISTERED}
    rows |= {r.id: r for r in _subject_rows(session, agency_id, "class", wanted["class"],
                                            covered)}
    return sorted(rows.values(), key=lambda r: r.leaf_index)


def _anchor(row: LogCheckpoint) -> AnchorProof | None:
    if row.tx_hash is None or row.block_hash is None or row.block_number is None:
        return None
    return AnchorProof(row.tx_hash, row.block_number, row.block_hash, row.anchorer or "",
                       row.receipt_address or "",
                       tuple(bytes.fromhex(t) for t in row.receipt_topics or []),
                       row.receipt_data or b"")


def _in_batches(values: Sequence[T]) -> list[list[T]]:
    return [list(values[i:i + IN_BATCH]) for i in range(0, len(values), IN_BATCH)]


def export_agency_bundle(
    session: Session, *, agency_id: str, asset_ids: Sequence[str], scope: Scope, now: datetime,
    head_map: HeadMap | None = None,
    since_size: int | None = None,
) -> bytes:
    """The bundle of `asset_ids` (all owned by `agency_id`) from the agency's log; `head_map`
    the newest checkpoint's, if the caller has it already; its checkpoints start at size
    `since_size` when given."""
    checkpoints, anchored = _checkpoints(session, agency_id)
    if not checkpoints:
        raise BundleUnavailable(f"agency {agency_id}'s log has no checkpoint yet")
    if since_size is not None:
        checkpoints = [c for c in checkpoints if c.tree_size >= since_size]
        if not checkpoints or checkpoints[0].tree_size != since_size:
            kind = "anchored" if anchored else "signed"
            raise BundleUnavailable(f"agency {agency_id}'s log has no {kind} checkpoint at "
                                    f"size {since_size}")
    covered = checkpoints[-1].tree_size
    events: list[CustodyEventRow] = []
    for assets in _in_batches(sorted(set(asset_ids))):
        events += session.exec(select(CustodyEventRow).where(
            CustodyEventRow.agency_id == agency_id, col(CustodyEventRow.asset_id).in_(assets),
            col(CustodyEventRow.leaf_index) < covered,
        ))
    events.sort(key=lambda e: e.leaf_index)
    records = [json.loads(e.record) for e in events]
    cited = sorted({bytes.fromhex(h) for r in records for h in r.get("observations", [])})
    desks = {r["reader"] for r in records if "manual" in r}
    """The desks of manual entries: the registry proves them, as it proves readers."""
    observations: list[IngestedObservation] = []
    for hashes in _in_batches(cited):
        observations += session.exec(select(IngestedObservation).where(
            col(IngestedObservation.envelope_hash).in_(hashes)))
    observations.sort(key=lambda o: (o.device_id, o.seq))
    reader_ids = {o.device_id for o in observations}
    leaves = None
    if scope.kind == "time-range" and scope.start is not None and scope.end is not None:
        leaves = _range_leaves([_signed(r) for r in checkpoints], scope.start, scope.end)
    registry = registry_rows(session, agency_id, assets=asset_ids,
                             readers=reader_ids | desks, covered=covered, leaves=leaves)
    readers: list[Reader] = []
    for ids in _in_batches(sorted(reader_ids)):
        readers += session.exec(select(Reader).where(col(Reader.id).in_(ids)))
    if registry:  # the log names the agency's own readers; device lines only for others'
        readers = [r for r in readers if r.agency_id != agency_id]
    log_row = session.get(AgencyLog, agency_id)
    if log_row is None or log_row.public_key is None:
        raise BundleUnavailable(f"agency {agency_id}'s log has no key yet")
    if head_map is None:
        head_map = newest_head_map(session, agency_id)
    first = checkpoints[0]
    cosigned = cosignature_lines(session, agency_id, [r.tree_size for r in checkpoints])
    chain = (ChainInfo(first.chain_id, first.contract, agency_id)
             if anchored and first.chain_id is not None and first.contract else None)
    return export_bundle(
        open_log(session, agency_id), scope=scope, created=format_time(now),
        log_public_key=log_row.public_key, chain=chain,
        devices=[DeviceRegistration(
            r.id, r.agency_id, r.key_id, bytes.fromhex(r.public_key),
            format_time(r.registered_at),
            None if r.revoked_at is None else format_time(r.revoked_at),
        ) for r in sorted(readers, key=lambda r: r.id)],
        checkpoints=[BundleCheckpoint(Envelope.from_bytes(r.envelope), _anchor(r),
                                      cosigned.get(r.tree_size, ()))
                     for r in checkpoints],
        observations=[Envelope.from_bytes(o.envelope) for o in observations],
        events=[LoggedEvent(e.record, e.leaf_index) for e in events], head_map=head_map,
        registry=[LoggedEvent(r.record, r.leaf_index) for r in registry], agency=agency_id,
    )
