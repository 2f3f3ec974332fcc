"""The head map: one log's every asset and its latest custody event, as a sorted Merkle tree.

At a checkpoint of tree size N the map holds, for each asset with an event among the log's
first N leaves, one entry keyed by the asset (its chain length `seq + 1` as `seq` of the last
event, and that event's hash), and, when that event leaves the asset at a location (a site),
a second entry keyed by (site, asset) with the same head. Entries are sorted by key bytes and
hashed as the leaves of an RFC 9162 tree (`ledger.core.merkle`); each leaf's data starts with
its own domain (`kitledger/v1/heads-leaf` NUL), so it can never be mistaken for a log leaf. The
checkpoint commits to `heads_root(map size, tree root)`, binding the size so no proof can claim
another shape of tree.

The log's registry records (`ledger.core.records.RegistryRecord`) are chained per subject (the
agency's registry, a reader, a class, an asset); each subject has one more entry, keyed by
(subject kind, subject id) under its own tag, holding its latest registry record's `seq` and
hash, so a bundle proves it left none of a reader's or a class's records out.

An asset whose latest `evidence-referenced` record names a case has one more entry, keyed by
(case, asset) under its own tag, holding that record's `seq` in the asset's registry chain and
its hash: the case index, which proves every exhibit of a case as the site index proves every
asset at a site.

Because keys are sorted, two adjacent leaves prove a key absent, and a contiguous run of leaves
bracketed by its neighbours proves every entry in a key range: all assets of a site. Anyone
holding the log can recompute the map and check the operator built it faithfully. Pure.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import Final

from ledger.core import hashing
from ledger.core.bounds import MAX_SEQ
from ledger.core.errors import ProofError, SchemaError
from ledger.core.merkle import (
    EMPTY_ROOT,
    LEAF_PREFIX,
    NODE_PREFIX,
    leaf_hash,
    root_from_inclusion,
)
from ledger.core.records import MAX_ID_CHARS, CustodyEvent, check_reason

HEADS_LEAF: Final = "heads-leaf"
HEADS_ROOT: Final = "heads-root"

MAX_MAP_ENTRIES: Final = 1 << 40
"""Two entries per asset at most; far beyond any agency, and small enough for 8-byte sizes."""

_ASSET_TAG: Final = b"a\x00"
_SITE_TAG: Final = b"s\x00"
_REGISTRY_TAG: Final = b"r\x00"
_CASE_TAG: Final = b"c\x00"
REGISTRY_SUBJECTS: Final = frozenset({"agency", "reader", "class", "asset", "person"})
"""The kinds of registry subject (`ledger.core.records.REGISTRY_KINDS`)."""
_LEAF_PREFIX: Final = hashing.DOMAIN_PREFIX + HEADS_LEAF.encode("ascii") + b"\x00"
_ID: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_CHARS}}}")


class HeadsError(ProofError):
    """A head-map entry or proof that is malformed or does not prove what it claims."""


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise HeadsError(f"{name} must be 1-{MAX_ID_CHARS} printable ASCII characters")
    return value


def asset_key(asset: str) -> bytes:
    """The key of asset `asset`'s entry."""
    return _ASSET_TAG + _check_id("asset", asset).encode("ascii")


def site_prefix(site: str) -> bytes:
    """Every (site, asset) key of site `site` starts with this, and no other key does: ids are
    printable ASCII, so the NUL separator ends the site id."""
    return _SITE_TAG + _check_id("site", site).encode("ascii") + b"\x00"


def case_prefix(case: str) -> bytes:
    """Every (case, asset) key of case `case` starts with this, and no other key does: a case
    reference is printable ASCII (`ledger.core.records.check_reason`), so NUL ends it."""
    try:
        check_reason("case", case)
    except SchemaError as exc:
        raise HeadsError(str(exc)) from None
    return _CASE_TAG + case.encode("ascii") + b"\x00"


def registry_key(subject: str, ident: str) -> bytes:
    """The key of registry subject (`subject` kind, `ident`)'s entry."""
    if subject not in REGISTRY_SUBJECTS:
        raise HeadsError(f"registry subject {subject!r:.40} not in {sorted(REGISTRY_SUBJECTS)}")
    return _REGISTRY_TAG + subject.encode("ascii") + b"\x00" + _check_id(
        "subject", ident).encode("ascii")


@dataclass(frozen=True, slots=True)
class HeadEntry:
    """Asset `asset`'s latest event is number `seq` of its chain with hash `head`; keyed by
    the asset alone (`site` None) or, in the site index, by (`site`, asset). With `subject`
    (a registry subject kind) the entry is registry subject (`subject`, `asset`)'s latest
    registry record instead, and `site` is None. With `case` the entry is in the case index:
    the asset's latest `evidence-referenced` record (its registry `seq` and hash) names `case`."""

    asset: str
    site: str | None
    seq: int
    head: bytes
    subject: str | None = None
    case: str | None = None

    def __post_init__(self) -> None:
        _check_id("asset", self.asset)
        if self.site is not None:
            _check_id("site", self.site)
        if self.subject is not None and (self.site is not None
                                         or self.subject not in REGISTRY_SUBJECTS):
            raise HeadsError("a registry entry names a subject kind and no site")
        if self.case is not None:
            case_prefix(self.case)
            if self.site is not None or self.subject is not None:
                raise HeadsError("a case entry names no site and no subject kind")
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or not (
                0 <= self.seq <= MAX_SEQ):
            raise HeadsError(f"seq must be an integer in 0..{MAX_SEQ}")
        if not isinstance(self.head, bytes) or len(self.head) != hashing.HASH_SIZE:
            raise HeadsError(f"head must be {hashing.HASH_SIZE} bytes")

    @property
    def key(self) -> bytes:
        if self.case is not None:
            return case_prefix(self.case) + self.asset.encode("ascii")
        if self.subject is not None:
            return registry_key(self.subject, self.asset)
        if self.site is None:
            return asset_key(self.asset)
        return site_prefix(self.site) + self.asset.encode("ascii")

    def leaf_data(self) -> bytes:
        key = self.key
        return (_LEAF_PREFIX + len(key).to_bytes(2, "big") + key + self.seq.to_bytes(8, "big")
                + self.head)

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf_data())


def heads_root(map_size: int, tree_root: bytes) -> bytes:
    """What a checkpoint commits to: the map's size and its RFC 9162 tree root."""
    if not 0 <= map_size <= MAX_MAP_ENTRIES:
        raise HeadsError(f"map size {map_size} outside 0..{MAX_MAP_ENTRIES}")
    return hashing.domain_hash(HEADS_ROOT, map_size.to_bytes(8, "big") + tree_root)


def entries_for(asset: str, seq: int, head: bytes, site: str | None) -> list[HeadEntry]:
    """The map's entries for one asset whose latest event leaves it at `site` (None: not at a
    location)."""
    entries = [HeadEntry(asset, None, seq, head)]
    if site is not None:
        entries.append(HeadEntry(asset, site, seq, head))
    return entries


def located_at(event: CustodyEvent) -> str | None:
    """The site an event leaves its asset at: the location holding it, if any."""
    holder = event.holder_to
    return holder.ref if holder is not None and holder.kind == "location" else None


@dataclass(frozen=True, slots=True)
class HeadProof:
    """Entry `entry` is leaf `index` of a map of `map_size` entries; `path` its RFC 9162 path."""

    entry: HeadEntry
    index: int
    map_size: int
    path: tuple[bytes, ...]


Head = tuple[str, int, bytes, str | None]
"""(asset, seq, head, site or None): one asset's latest event, as `HeadMap.from_heads` takes it."""

RegistryHead = tuple[str, str, int, bytes]
"""(subject kind, subject id, seq, hash): one registry subject's latest record."""

CaseHead = tuple[str, str, int, bytes]
"""(case, asset, seq, hash): an asset's latest `evidence-referenced` record, naming `case`."""

_Row = tuple[bytes, str, str | None, int, bytes, str | None, str | None]


class HeadMap:
    """The sorted entries and every level of their tree, each level one bytes object (32 bytes
    per node), so a million-asset map costs tens of megabytes, not millions of objects."""

    def __init__(self, entries: Iterable[HeadEntry]) -> None:
        self._build([(e.key, e.asset, e.site, e.seq, e.head, e.subject, e.case)
                     for e in entries])

    @classmethod
    def from_heads(cls, heads: Iterable[Head], registry: Iterable[RegistryHead] = (),
                   cases: Iterable[CaseHead] = ()) -> HeadMap:
        """The map of these assets' heads (each asset once), registry subjects' heads (each
        subject once) and case entries (each asset once): the fast path for a whole log,
        checking each value as `HeadEntry` would without making one per entry."""
        rows: list[_Row] = []
        for subject, ident, seq, head in registry:  # few: each checked as an entry
            entry = HeadEntry(ident, None, seq, head, subject)
            rows.append((entry.key, ident, None, seq, head, subject, None))
        for case, asset, seq, head in cases:  # exhibits only: each checked as an entry
            entry = HeadEntry(asset, None, seq, head, case=case)
            rows.append((entry.key, asset, None, seq, head, None, case))
        for asset, seq, head, site in heads:
            if (not _ID.fullmatch(asset) or type(seq) is not int or not 0 <= seq <= MAX_SEQ
                    or len(head) != hashing.HASH_SIZE):
                HeadEntry(asset, site, seq, head)  # raises, saying what is wrong
            rows.append((_ASSET_TAG + asset.encode("ascii"), asset, None, seq, head, None,
                         None))
            if site is not None:
                if not _ID.fullmatch(site):
                    _check_id("site", site)
                rows.append((_SITE_TAG + site.encode("ascii") + b"\x00" + asset.encode("ascii"),
                             asset, site, seq, head, None, None))
        head_map = cls.__new__(cls)
        head_map._build(rows)
        return head_map

    def _build(self, rows: list[_Row]) -> None:
        rows.sort(key=lambda row: row[0])
        if len(rows) > MAX_MAP_ENTRIES:
            raise HeadsError(f"more than {MAX_MAP_ENTRIES} entries")
        self._rows = rows
        self.keys = [row[0] for row in rows]
        for left, right in zip(self.keys, self.keys[1:], strict=False):
            if left == right:
                raise HeadsError(f"key {left!r:.80} appears twice")
        prefix = LEAF_PREFIX + _LEAF_PREFIX
        level = b"".join(
            sha256(prefix + len(key).to_bytes(2, "big") + key + seq.to_bytes(8, "big")
                   + head).digest()
            for key, _asset, _site, seq, head, _subject, _case in rows)
        self._levels = [level]
        while len(level) > hashing.HASH_SIZE:
            level = _parents(level)
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._rows)

    def entry(self, index: int) -> HeadEntry:
        _key, asset, site, seq, head, subject, case = self._rows[index]
        return HeadEntry(asset, site, seq, head, subject, case)

    @property
    def tree_root(self) -> bytes:
        return self._levels[-1] if self._rows else EMPTY_ROOT

    @property
    def root(self) -> bytes:
        return heads_root(self.size, self.tree_root)

    def proof(self, index: int) -> HeadProof:
        if not 0 <= index < self.size:
            raise HeadsError(f"index {index} not in a map of {self.size} entries")
        path = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            if sibling * hashing.HASH_SIZE < len(level):
                path.append(level[sibling * hashing.HASH_SIZE:(sibling + 1) * hashing.HASH_SIZE])
            position >>= 1
        return HeadProof(self.entry(index), index, self.size, tuple(path))

    def proofs_between(self, low: bytes, high: bytes) -> list[HeadProof]:
        """Every entry with low <= key <= high and the neighbour on each side that exists: what
        `entries_between` needs to show these are all of them (or, empty, that there are none)."""
        first = bisect.bisect_left(self.keys, low)
        end = bisect.bisect_right(self.keys, high)
        return [self.proof(i) for i in range(max(first - 1, 0), min(end + 1, self.size))]

    def proofs_for_asset(self, asset: str) -> list[HeadProof]:
        key = asset_key(asset)
        return self.proofs_between(key, key)

    def proofs_for_registry(self, subject: str, ident: str) -> list[HeadProof]:
        key = registry_key(subject, ident)
        return self.proofs_between(key, key)

    def proofs_for_site(self, site: str) -> list[HeadProof]:
        prefix = site_prefix(site)
        return self.proofs_between(prefix, prefix + b"\xff")

    def proofs_for_case(self, case: str) -> list[HeadProof]:
        prefix = case_prefix(case)
        return self.proofs_between(prefix, prefix + b"\xff")

    def assets_at(self, site: str) -> list[str]:
        """The assets whose latest event leaves them at `site`, in key order."""
        return self._assets_under(site_prefix(site))

    def assets_in_case(self, case: str) -> list[str]:
        """The assets whose latest case reference names `case`, in key order."""
        return self._assets_under(case_prefix(case))

    def _assets_under(self, prefix: bytes) -> list[str]:
        first = bisect.bisect_left(self.keys, prefix)
        end = bisect.bisect_right(self.keys, prefix + b"\xff")
        return [self._rows[i][1] for i in range(first, end)]


def _parents(level: bytes) -> bytes:
    """The next level up: pairs hashed, an odd last node carried up as it is (which builds the
    same tree as RFC 9162's split at the largest power of two)."""
    size = hashing.HASH_SIZE
    count = len(level) // size
    out = [sha256(NODE_PREFIX + level[i * size:(i + 2) * size]).digest()
           for i in range(0, count - 1, 2)]
    if count % 2:
        out.append(level[(count - 1) * size:])
    return b"".join(out)


def verify_head_proof(proof: HeadProof, root: bytes) -> None:
    """Raise HeadsError unless `proof.entry` is leaf `proof.index` of the map committed by
    `root` (a checkpoint's heads root)."""
    try:
        tree_root = root_from_inclusion(proof.entry.leaf_hash(), proof.index, proof.map_size,
                                        proof.path)
    except ProofError as exc:
        raise HeadsError(f"entry {proof.index}: {exc}") from None
    if heads_root(proof.map_size, tree_root) != root:
        raise HeadsError(f"entry {proof.index} ({proof.entry.key!r:.80}) is not in the map "
                         f"committed by heads root {root.hex()}")


def entries_between(low: bytes, high: bytes, proofs: Sequence[HeadProof],
                    root: bytes, *, verified: bool = False) -> list[HeadEntry]:
    """The map's entries with low <= key <= high, all of them: `proofs` must be a contiguous
    run of leaves, each proven under `root`, holding those entries, with the neighbour below
    unless the run starts the map and the neighbour above unless it ends it. An empty map is
    proven by no proofs and the root of an empty map. `verified`: each proof has been checked
    against `root` already (`verify_head_proof`), so only the run's shape is left to check."""
    if low > high:
        raise HeadsError("an empty key range")
    if not proofs:
        if root != heads_root(0, EMPTY_ROOT):
            raise HeadsError("expected proofs from a non-empty map, found none")
        return []
    size = proofs[0].map_size
    for position, proof in enumerate(proofs):
        if proof.map_size != size:
            raise HeadsError(f"proofs name map sizes {size} and {proof.map_size}")
        if proof.index != proofs[0].index + position:
            raise HeadsError(f"expected entry {proofs[0].index + position}, found {proof.index}")
        if position and proofs[position - 1].entry.key >= proof.entry.key:
            raise HeadsError(f"entry {proof.index}: keys out of order")
        if not verified:
            verify_head_proof(proof, root)
    first, last = proofs[0], proofs[-1]
    inside = [p.entry for p in proofs if low <= p.entry.key <= high]
    outside_below = first.entry.key < low
    outside_above = last.entry.key > high
    if not outside_below and first.index != 0:
        raise HeadsError(f"expected the entry before {first.index} to bracket the range")
    if not outside_above and last.index != size - 1:
        raise HeadsError(f"expected the entry after {last.index} to bracket the range")
    expected = len(proofs) - outside_below - outside_above
    if len(inside) != expected:
        raise HeadsError("an entry outside the range sits inside the run")
    return inside
