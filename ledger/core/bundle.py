"""The audit bundle: everything an auditor needs to check a chain of custody, in one file.

Format `kitledger-audit-bundle` version 3 (docs/audit-bundle.md): JSON Lines, every line one
RFC 8785 canonical JSON object of at most MAX_RECORD_BYTES, in fixed sections whose lengths the
header line announces::

    header | device x D | checkpoint x C | consistency x (C-1) | observation x O
           | (event, inclusion) x E | (registry record, inclusion) x R | head x H | end

Version 3 adds the registry records the events rest on (reader registrations and revocations,
class policies, asset tags and shares: `ledger.core.records.RegistryRecord`), each a log leaf
with its inclusion proof like an event, and head lines for registry subjects (a `"subject"`
field) and for the case index (a `"case"` field; a `case` scope names its case in the
header's scope). Versions 1 and 2 are still read; they carry no registry, so the verifier
cannot prove the reader keys they list.

The head lines prove, in the head map of the newest checkpoint (`ledger.core.heads`), each
scope asset's latest event and, for a site, every asset the log places there; for a case,
every exhibit the log's latest references put in it. Version 1 is the
same without head lines (and without their count); it is still read.

An observation line is the signed envelope's wire bytes and an event line is the custody
event's canonical record, i.e. exactly the Merkle leaf: the verifier hashes the line itself.
The end line carries the fingerprint, `domain_hash("audit-bundle", every line before it, each
with its newline)`, which a printed report quotes. Nothing may follow the end line.

Version 2 adds an optional `"cosignatures"` list to a `bundle-checkpoint` line: the C2SP
cosignature lines (`— <witness name> <base64>`) witnesses returned for that checkpoint's note
(`Checkpoint.note_text()`). Version 1 bundles are still read; they carry none.

This module builds bundles from plain values (the API and `ledger.bundle_export` feed it) and
parses them strictly (`ledger.core.bundle_parse`). Pure: no I/O, no clock. Changing it changes
every bundle's fingerprint: bump BUNDLE_VERSION.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.core import hashing
from ledger.core.encoding import MAX_RECORD_BYTES, canonical_bytes
from ledger.core.envelope import Envelope
from ledger.core.errors import LedgerError
from ledger.core.heads import HeadProof

BUNDLE_FORMAT: Final = "kitledger-audit-bundle"
BUNDLE_VERSION: Final = 3
READABLE_VERSIONS: Final = frozenset({1, 2, 3})
REGISTRY_VERSION: Final = 3
"""The first version that carries registry records and registry head lines."""
FINGERPRINT_PURPOSE: Final = "audit-bundle"

MAX_BUNDLE_BYTES: Final = 1024**3
"""1 GiB: a bundle of 100,000 custody events with proofs and observations is about 250 MB; a
whole store's multi-year history fits, a hostile file cannot exhaust memory."""

MAX_EVENTS: Final = 1_000_000
"""Custody events in one bundle (ten years of a large store); larger audits are split by site
or time range."""

MAX_OBSERVATIONS: Final = 4 * MAX_EVENTS
"""Signed observations: an event is justified by a few reads (badge plus item, dual sign-off)."""

MAX_DEVICES: Final = 100_000
"""Reader registrations: a national deployment has thousands of readers, not millions."""

MAX_CHECKPOINTS: Final = 100_000
"""Signed checkpoints: one per anchoring interval; 100k is years of minute-by-minute anchors."""

MAX_REGISTRY: Final = 2 * MAX_EVENTS
"""Registry records: each scope asset's tag and shares, the readers and classes its events
name; a few per asset."""

MAX_HEAD_LINES: Final = 2 * MAX_EVENTS + MAX_REGISTRY + 4
"""Head-map proofs: an asset's entry (and its site entry) plus the neighbours of a run."""
MAX_COSIGNATURES: Final = 64
"""Cosignature lines on one checkpoint: policies name a handful of witnesses; C2SP asks
verifiers to accept at least 16 signatures on a note."""

SCOPE_KINDS: Final = frozenset({"asset", "assets", "site", "time-range", "case"})


class BundleError(LedgerError):
    """A bundle that cannot be built or read: malformed, oversize, wrong version, truncated."""


@dataclass(frozen=True, slots=True)
class Scope:
    """What the bundle covers. Every asset in it comes with its whole chain from genesis."""

    kind: str
    assets: tuple[str, ...] = ()
    site: str | None = None
    start: str | None = None
    end: str | None = None
    case: str | None = None
    """A `case` scope's case reference: every exhibit the log's case index lists under it."""

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"kind": self.kind, "assets": list(self.assets),
                                  "site": self.site, "start": self.start, "end": self.end}
        if self.case is not None:  # only a case scope's header names one
            record["case"] = self.case
        return record


@dataclass(frozen=True, slots=True)
class ChainInfo:
    """Where the log is anchored: chain id, CustodyAnchor address and the log's agency id."""

    chain_id: int
    contract: str
    agency: str

    def to_record(self) -> dict[str, Any]:
        return {"chain_id": self.chain_id, "contract": self.contract, "agency": self.agency}


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """A reader's registered Ed25519 key and the period it was valid (revoked: exclusive end)."""

    reader: str
    agency: str
    kid: str
    public_key: bytes
    registered: str
    revoked: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {"type": "device", "reader": self.reader, "agency": self.agency, "kid": self.kid,
                "public_key": self.public_key.hex(), "registered": self.registered,
                "revoked": self.revoked}


@dataclass(frozen=True, slots=True)
class AnchorProof:
    """The transaction that anchored a checkpoint, with its `Anchored` receipt log (topics and
    data as the node returned them), so `--offline` can decode what the chain recorded."""

    tx_hash: bytes
    block_number: int
    block_hash: bytes
    anchorer: str
    log_address: str
    log_topics: tuple[bytes, ...]
    log_data: bytes

    def to_record(self) -> dict[str, Any]:
        return {"tx": self.tx_hash.hex(), "block": self.block_number,
                "block_hash": self.block_hash.hex(), "anchorer": self.anchorer,
                "log": {"address": self.log_address,
                        "topics": [t.hex() for t in self.log_topics],
                        "data": self.log_data.hex()}}


@dataclass(frozen=True, slots=True)
class BundleCheckpoint:
    """A signed checkpoint, once anchored the proof of its anchoring, and the witnesses'
    cosignature lines on its C2SP note (without their newlines)."""

    envelope: Envelope
    anchor: AnchorProof | None = None
    cosignatures: tuple[str, ...] = ()

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "bundle-checkpoint", "envelope": self.envelope.to_record(),
            "anchor": self.anchor.to_record() if self.anchor else None}
        if self.cosignatures:
            record["cosignatures"] = list(self.cosignatures)
        return record


@dataclass(frozen=True, slots=True)
class ConsistencyStep:
    """PROOF(size1, D[size2]) between two consecutive checkpoints."""

    size1: int
    size2: int
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class BundleEvent:
    """A custody event's or registry record's canonical record (the Merkle leaf) and its
    inclusion proof at the checkpoint of `tree_size`."""

    record: bytes
    leaf_index: int
    tree_size: int
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class AuditBundle:
    """A parsed bundle; the verifier decides whether what it says holds. Observation and event
    lines are kept as bytes: reading them is part of verification (`ledger.core.record_scan`)."""

    scope: Scope
    created: str
    log_id: str
    log_public_key: bytes
    chain: ChainInfo | None
    devices: tuple[DeviceRegistration, ...]
    checkpoints: tuple[BundleCheckpoint, ...]
    consistency: tuple[ConsistencyStep, ...]
    observations: tuple[bytes, ...]
    events: tuple[BundleEvent, ...]
    registry: tuple[BundleEvent, ...]
    """Registry records with their inclusion proofs, in leaf order (none before version 3)."""
    heads: tuple[HeadProof, ...]
    """Head-map proofs at the newest checkpoint, in entry order (none in a version 1 bundle)."""
    version: int
    fingerprint: bytes
    """What the end line declares; `computed_fingerprint` is what the lines hash to."""
    computed_fingerprint: bytes


fast_canonical: Final = canonical_bytes
"""A bundle line's bytes: `canonical_bytes` itself, so a line is built exactly when
`bundle_parse.parse_line` would accept it back."""


class FingerprintHasher:
    """The running fingerprint over a bundle's lines, as `domain_hash` would compute it."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256(
            hashing.DOMAIN_PREFIX + FINGERPRINT_PURPOSE.encode("ascii") + b"\x00"
        )

    def add(self, line: bytes) -> None:
        self._hash.update(line + b"\n")

    def digest(self) -> bytes:
        return self._hash.digest()


def _line(record: Mapping[str, Any]) -> bytes:
    data = canonical_bytes(record)
    if len(data) > MAX_RECORD_BYTES:
        raise BundleError(f"bundle line of {len(data)} bytes exceeds {MAX_RECORD_BYTES}")
    return data


def head_record(proof: HeadProof) -> dict[str, Any]:
    """A head line: one entry of the newest checkpoint's head map with its inclusion path."""
    entry = proof.entry
    record: dict[str, Any] = {
        "type": "head", "index": proof.index, "map_size": proof.map_size, "asset": entry.asset,
        "site": entry.site, "seq": entry.seq, "head": entry.head.hex(),
        "path": [p.hex() for p in proof.path]}
    if entry.subject is not None:
        record["subject"] = entry.subject
    if entry.case is not None:
        record["case"] = entry.case
    return record


def _header(scope: Scope, created: str, log_public_key: bytes, log_id: str,
            chain: ChainInfo | None, counts: Mapping[str, int]) -> dict[str, Any]:
    return {"type": "audit-bundle", "format": BUNDLE_FORMAT, "v": BUNDLE_VERSION,
            "created": created, "scope": scope.to_record(),
            "log": {"id": log_id, "public_key": log_public_key.hex()},
            "chain": chain.to_record() if chain else None, "counts": dict(counts)}


def build_bundle(
    *,
    scope: Scope,
    created: str,
    log_public_key: bytes,
    log_id: str,
    chain: ChainInfo | None,
    devices: Sequence[DeviceRegistration],
    checkpoints: Sequence[BundleCheckpoint],
    consistency: Sequence[ConsistencyStep],
    observations: Sequence[Envelope],
    events: Iterable[BundleEvent],
    heads: Sequence[HeadProof] = (),
    registry: Iterable[BundleEvent] = (),
) -> bytes:
    """The bundle's bytes from plain values. Events and registry records go in leaf order,
    one inclusion line each;
    checkpoints in increasing tree size with one consistency step per consecutive pair; head
    proofs (at the newest checkpoint) in entry order, each once."""
    if scope.kind not in SCOPE_KINDS:
        raise BundleError(f"scope kind {scope.kind!r} not in {sorted(SCOPE_KINDS)}")
    event_list = sorted(events, key=lambda e: e.leaf_index)
    registry_list = sorted(registry, key=lambda e: e.leaf_index)
    counts = {"devices": len(devices), "checkpoints": len(checkpoints),
              "consistency": len(consistency), "observations": len(observations),
              "events": len(event_list), "registry": len(registry_list), "heads": len(heads)}
    lines = [_line(_header(scope, created, log_public_key, log_id, chain, counts))]
    lines += [_line(d.to_record()) for d in devices]
    for cp in checkpoints:
        if len(cp.cosignatures) > MAX_COSIGNATURES:
            raise BundleError(f"{len(cp.cosignatures)} cosignatures on one checkpoint, "
                              f"at most {MAX_COSIGNATURES}")
        lines.append(_line(cp.to_record()))
    lines += [_line({"type": "consistency", "size1": c.size1, "size2": c.size2,
                     "path": [p.hex() for p in c.path]}) for c in consistency]
    lines += [_line(env.to_record()) for env in observations]  # == env.to_bytes()
    for event in [*event_list, *registry_list]:
        lines.append(event.record)
        lines.append(_line({"type": "inclusion", "leaf": event.leaf_index,
                            "size": event.tree_size, "path": [p.hex() for p in event.path]}))
    lines += [_line(head_record(h)) for h in sorted(heads, key=lambda h: h.index)]
    hasher = FingerprintHasher()
    for line in lines:
        hasher.add(line)
    end = _line({"type": "bundle-end", "lines": len(lines), "fingerprint": hasher.digest().hex()})
    body = b"\n".join([*lines, end]) + b"\n"
    if len(body) > MAX_BUNDLE_BYTES:
        raise BundleError(f"bundle of {len(body)} bytes exceeds {MAX_BUNDLE_BYTES}")
    return body
