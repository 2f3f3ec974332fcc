"""Verifier check of the registry the events rest on, from the log itself.

Reader registrations and revocations, class policies, asset tags and shares are log records
(`ledger.core.records.RegistryRecord`), each chained to its subject's previous record, and the
newest checkpoint's head map holds each subject's latest record. A version 3 bundle carries the
whole chain of every subject it needs, each record with its inclusion proof, and the head-map
proofs of those subjects (present, or proven absent). So the bundle cannot add a reader key, drop
a revocation or swap a class policy without a proof failing: the verdict rests on what the log
holds, not on the device list the operator hands over.

"Before" is log order: a record counts for an event only if its leaf precedes the event's. The
one exception is history older than the registry in the log: `registry-opened` counts the records
a backfill wrote right after it (the registry rows that existed when the registry started to be
logged), and for events before it those count, as of their claimed times; the report says so.

When the registry cannot be proven (a bundle of format version 1 or 2, or a log whose newest
checkpoint holds no registry) the reader keys are only the bundle's device list: the verdict is
UNPINNED at best. When the newest checkpoint commits to no head map at all, nothing about
omissions can be proven (see `completeness`), and the registry is "not checked" likewise.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ledger.core.bundle import REGISTRY_VERSION, AuditBundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.encoding import parse_record
from ledger.core.envelope import key_id, public_key_from_raw
from ledger.core.errors import LedgerError
from ledger.core.heads import registry_key
from ledger.core.merkle import leaf_hash, verify_inclusion
from ledger.core.record_scan import read_event
from ledger.core.records import (
    ASSET_DISPOSED,
    ASSET_REGISTERED,
    ASSET_RETIRED,
    BACK_IN_SERVICE,
    CLASS_POLICY,
    EVENT_CORRECTED,
    EVIDENCE_REFERENCED,
    GENESIS_PREV,
    INVENTORY_TAKEN,
    MAINTENANCE_DONE,
    OUT_OF_SERVICE,
    PERSON_RETIRED,
    READER_REGISTERED,
    READER_REVOKED,
    REGISTRY_OPENED,
    SHARE_ENDED,
    SHARE_GRANTED,
    SITE_CUSTODIAN,
    RegistryRecord,
    registry_hash,
)
from ledger.verify.completeness import ProvenEntries, entries_in_run, prove_entries
from ledger.verify.report import CheckResult, VerificationReport

NAME = "registry"


class RegistryFailure(LedgerError):
    """What the bundle's registry records or their proofs fail to show."""


@dataclass(frozen=True, slots=True)
class Logged:
    """A registry record and its leaf in the log."""

    record: RegistryRecord
    leaf: int


@dataclass(frozen=True, slots=True)
class ReaderEntry:
    """A reader as the log registered it, and revoked it if it did."""

    reader: str
    site: str
    role: str
    kid: str
    public_key: bytes
    registered: str
    leaf: int
    revoked: str | None
    revoked_leaf: int | None


@dataclass
class Registry:
    """The registry as the log proves it: by subject, each subject's records in leaf order."""

    agency: str
    opened_leaf: int
    backfill_end: int
    """Leaves opened_leaf+1..backfill_end hold the backfill (rows older than the registry)."""
    readers: dict[str, ReaderEntry] = field(default_factory=dict)
    """By key id."""
    by_reader: dict[str, ReaderEntry] = field(default_factory=dict)
    assets: dict[str, list[Logged]] = field(default_factory=dict)
    classes: dict[str, list[Logged]] = field(default_factory=dict)
    predating: int = 0
    """Events older than the registry in the log (leaf below `opened_leaf`)."""
    foreign: set[str] = field(default_factory=set)
    """Readers of other agencies, known only from the bundle's device lines."""
    corrections: list[Logged] = field(default_factory=list)
    """`event-corrected` records, in leaf order (`ledger.verify.corrections` checks them)."""
    retired: dict[str, Logged] = field(default_factory=dict)
    """asset -> its `asset-retired` record: no custody event of it may follow."""
    disposals: list[Logged] = field(default_factory=list)
    """`asset-disposed` records, in leaf order: each names the asset's `dispose` event
    (`ledger.verify.corrections` checks them as it checks corrections)."""
    inventories: list[Logged] = field(default_factory=list)
    """`inventory-taken` records, in leaf order (`ledger.verify.inventories` checks them)."""
    custodians: list[Logged] = field(default_factory=list)
    """`site-custodian` records, in leaf order."""

    def known(self, leaf: int, event_leaf: int) -> bool:
        """Whether the record at `leaf` was in the log for the event at `event_leaf`."""
        if leaf < event_leaf:
            return True
        return event_leaf < self.opened_leaf < leaf <= self.backfill_end

    def _latest(self, records: list[Logged], event_leaf: int, kinds: frozenset[str]
                ) -> list[Logged]:
        if event_leaf > self.opened_leaf:  # the common case: records before the event
            end = bisect.bisect_left([r.leaf for r in records], event_leaf)
            return [r for r in records[:end] if r.record.kind in kinds]
        return [r for r in records if r.record.kind in kinds and self.known(r.leaf, event_leaf)]

    def tag(self, asset: str, event_leaf: int) -> RegistryRecord | None:
        """The asset's tag record in force for the event at `event_leaf`."""
        found = self._latest(self.assets.get(asset, []), event_leaf, _TAGS)
        return found[-1].record if found else None

    def policy(self, class_id: str, event_leaf: int) -> Logged | None:
        """The class's policy record in force for the event at `event_leaf`."""
        found = self._latest(self.classes.get(class_id, []), event_leaf, _POLICIES)
        return found[-1] if found else None

    def shared(self, asset: str, agency: str, event_leaf: int) -> bool:
        """Whether the asset was shared with `agency` for the event at `event_leaf`."""
        shared = False
        for item in self._latest(self.assets.get(asset, []), event_leaf, _SHARES):
            if item.record.get("with") == agency:
                shared = item.record.kind == SHARE_GRANTED
        return shared


_TAGS = frozenset({ASSET_REGISTERED})
_POLICIES = frozenset({CLASS_POLICY})
_SHARES = frozenset({SHARE_GRANTED, SHARE_ENDED})


def _agency(bundle: AuditBundle) -> str | None:
    if bundle.chain is not None:
        return bundle.chain.agency
    for item in bundle.events:
        try:
            return read_event(item.record, "event").agency
        except LedgerError:
            continue
    return None


def check_registry(bundle: AuditBundle, points: list[Checkpoint | None],
                   report: VerificationReport, used: set[int]) -> Registry | None:
    """The registry the bundle's records show, for the observation and event checks, while
    this check says whether the log proves it (every failure here fails the verdict); None
    when the bundle carries none (the report then says why, and the device list stands in).
    Adds to `used` the head proofs it used (`completeness` needs the others)."""
    result = CheckResult(NAME)
    report.checks.append(result)
    newest = points[-1] if points else None
    if newest is not None and newest.heads is None:
        result.passed = None
        result.detail = "the newest checkpoint commits to no head map: nothing proves the registry"
        report.not_checked.append("that the reader keys are the ones the log registered (the "
                                  "newest checkpoint commits to no head map)")
        if bundle.registry:
            result.fail("expected no registry records: the newest checkpoint commits to no "
                        "head map that could prove them")
        return None
    if bundle.version < REGISTRY_VERSION:
        result.passed = None
        result.detail = f"format version {bundle.version} carries no registry records"
        report.unpinned.append(f"the bundle (format version {bundle.version}) carries no "
                               "registry records: its reader keys are the operator's list, not "
                               "proven by the log")
        return None
    agency = _agency(bundle)
    if agency is None:
        result.fail("expected the bundle to name its agency (a chain or an event), found none")
        return None
    parsed = _parse(bundle, points, agency, result)
    result.items = len(parsed)
    chains = _chains(parsed, bundle, result)
    if newest is None or newest.heads is None:
        result.fail("expected a signed newest checkpoint to prove the registry complete")
    else:
        _prove_complete(bundle, newest.heads, agency, chains, result, used)
    registry = _registry(agency, chains, result)
    if registry is None and result.passed is not False:
        result.passed = None
        result.detail = "the log holds no registry at its newest checkpoint"
        report.unpinned.append("the log holds no registry records at the newest checkpoint: "
                               "the reader keys are the operator's list, not proven by the log")
    return registry


def _parse(bundle: AuditBundle, points: list[Checkpoint | None], agency: str,
           result: CheckResult) -> list[Logged]:
    """The bundle's registry records that parse, each with its inclusion proof checked."""
    roots = {p.tree_size: p.root for p in points if p is not None}
    events = {item.leaf_index for item in bundle.events}
    parsed: list[Logged] = []
    last = -1
    for item in bundle.registry:
        where = f"registry record at leaf {item.leaf_index}"
        try:
            record = RegistryRecord.from_record(parse_record(item.record))
        except LedgerError as exc:
            result.fail(f"{where}: {exc}")
            continue
        try:
            if record.agency != agency:
                raise RegistryFailure(f"expected agency {agency!r}, found {record.agency!r}")
            if item.leaf_index <= last or item.leaf_index in events:
                raise RegistryFailure(f"expected a leaf index above {last} that no event "
                                      "holds (bundle order)")
            last = item.leaf_index
            root = roots.get(item.tree_size)
            if root is None:
                raise RegistryFailure(f"no signed checkpoint at size {item.tree_size}")
            verify_inclusion(leaf_hash(item.record), item.leaf_index, item.tree_size,
                             item.path, root)
        except LedgerError as exc:  # reported; the record still shows what it claims
            result.fail(f"{where}: {exc}")
        parsed.append(Logged(record, item.leaf_index))
    return parsed


def _chains(parsed: list[Logged], bundle: AuditBundle, result: CheckResult
            ) -> dict[tuple[str, str], tuple[list[Logged], bytes]]:
    """Each subject's records, which must link from seq 0, with the hash of its last."""
    chains: dict[tuple[str, str], tuple[list[Logged], bytes]] = {}
    raw = {item.leaf_index: item.record for item in bundle.registry}
    for item in parsed:
        subject = item.record.subject
        records, head = chains.get(subject, ([], bytes.fromhex(GENESIS_PREV)))
        if (item.record.seq, item.record.prev) != (len(records), head.hex()):
            result.fail(
                f"registry record at leaf {item.leaf}: expected {subject[0]} {subject[1]!r}'s "
                f"record seq {len(records)} after {head.hex()[:16]}..., found seq "
                f"{item.record.seq}: records left out or reordered")
        chains[subject] = ([*records, item], registry_hash(raw[item.leaf]))
    return chains


def _prove_complete(bundle: AuditBundle, root: bytes, agency: str,
                    chains: dict[tuple[str, str], tuple[list[Logged], bytes]],
                    result: CheckResult, used: set[int]) -> None:
    """Every subject the bundle needs is proven complete (or absent) by the head map."""
    try:
        proven = prove_entries(bundle, root)
    except LedgerError as exc:
        result.fail(str(exc))
        return
    scope = set(bundle.scope.assets)
    outside = sorted(ident for kind, ident in chains if kind == "asset" and ident not in scope)
    if outside:  # as completeness refuses events of an asset the scope does not list
        result.fail(f"registry records of asset {outside[0]!r}, which the scope does not list")
    needed = set(chains) | {("agency", agency)} | {("asset", a) for a in scope}
    for records, _head in chains.values():
        needed |= {("class", r.record.get("class")) for r in records
                   if r.record.kind == ASSET_REGISTERED}
    for subject in sorted(needed):
        try:
            _check_complete(subject, chains.get(subject), proven, used)
        except LedgerError as exc:
            result.fail(str(exc))


def _registry(agency: str, chains: dict[tuple[str, str], tuple[list[Logged], bytes]],
              result: CheckResult) -> Registry | None:
    """The registry the chains show; None if the agency's registry is not among them."""
    opened = chains.get(("agency", agency))
    if opened is None:
        return None
    first = opened[0][0]
    if first.record.kind != REGISTRY_OPENED:
        result.fail(f"expected the agency's registry to open with {REGISTRY_OPENED}, found "
                    f"{first.record.kind}")
        return None
    registry = Registry(agency, first.leaf, first.leaf + int(first.record.get("backfilled")))
    for (kind, ident), (records, _head) in chains.items():
        if kind == "agency":
            try:
                _agency_chain(registry, records)
            except LedgerError as exc:
                result.fail(str(exc))
        elif kind == "reader":
            try:
                _reader(registry, ident, records)
            except LedgerError as exc:
                result.fail(str(exc))
        elif kind == "asset":
            registry.assets[ident] = records
            try:
                _asset(registry, ident, records)
            except LedgerError as exc:
                result.fail(str(exc))
        elif kind == "person":
            try:
                _person(ident, records)
            except LedgerError as exc:
                result.fail(str(exc))
        elif kind == "class":
            registry.classes[ident] = records
    return registry


def _check_complete(subject: tuple[str, str], chain: tuple[list[Logged], bytes] | None,
                    proven: ProvenEntries, used: set[int]) -> None:
    """The head map's entry for `subject` is the bundle's last record of it (or, proven
    absent, the bundle has none)."""
    kind, ident = subject
    key = registry_key(kind, ident)
    found = entries_in_run(key, key, proven, used)
    if not found:
        if chain is not None:
            raise RegistryFailure(f"{kind} {ident!r} has registry records here, but the head "
                                  "map proves it has none in the log")
        return
    entry = found[0]
    if chain is None or (len(chain[0]) - 1, chain[1]) != (entry.seq, entry.head):
        shown = "none" if chain is None else f"seq {len(chain[0]) - 1}"
        raise RegistryFailure(f"{kind} {ident!r}: the log's latest registry record is seq "
                              f"{entry.seq} ({entry.head.hex()[:16]}...), the bundle's last is "
                              f"{shown}: registry records left out")


def _reader(registry: Registry, reader: str, records: list[Logged]) -> None:
    first = records[0]
    if first.record.kind != READER_REGISTERED:
        raise RegistryFailure(f"reader {reader!r}: expected its chain to open with "
                              f"{READER_REGISTERED}, found {first.record.kind}")
    record = first.record
    public_key = bytes.fromhex(record.get("public_key"))
    if key_id(public_key_from_raw(public_key)) != record.get("kid"):
        raise RegistryFailure(f"reader {reader!r}: expected key id "
                              f"{key_id(public_key_from_raw(public_key))} for its public key, "
                              f"found {record.get('kid')}")
    revoked: Logged | None = None
    for item in records[1:]:
        if item.record.kind != READER_REVOKED or revoked is not None:
            raise RegistryFailure(f"reader {reader!r}: a {item.record.kind} record after its "
                                  "registration" + (" and revocation" if revoked else ""))
        revoked = item
    if record.get("kid") in registry.readers:
        raise RegistryFailure(f"reader {reader!r}: key id {record.get('kid')} registered twice")
    entry = ReaderEntry(reader, record.get("site"), record.get("role"), record.get("kid"),
                        public_key, record.time, first.leaf,
                        revoked.record.time if revoked else None,
                        revoked.leaf if revoked else None)
    registry.readers[entry.kid] = entry
    registry.by_reader[reader] = entry


def _asset(registry: Registry, asset: str, records: list[Logged]) -> None:
    """A correction or retirement names a registered asset, and a retired asset's chain holds
    nothing after its retirement but corrections of its past."""
    registered = False
    for item in records:
        kind = item.record.kind
        if kind == ASSET_REGISTERED:
            registered = True
        elif kind in _NAMES_REGISTERED and not registered:
            raise RegistryFailure(f"asset {asset!r}: a {kind} record at leaf {item.leaf} "
                                  f"before any {ASSET_REGISTERED} record")
        retired = registry.retired.get(asset)
        if retired is not None and kind != EVENT_CORRECTED:
            raise RegistryFailure(f"asset {asset!r}: a {kind} record at leaf {item.leaf} after "
                                  f"its retirement at leaf {retired.leaf}")
        if kind == ASSET_RETIRED:
            registry.retired[asset] = item
        elif kind == EVENT_CORRECTED:
            registry.corrections.append(item)
        elif kind == ASSET_DISPOSED:
            registry.disposals.append(item)


def _agency_chain(registry: Registry, records: list[Logged]) -> None:
    """After its opening, the agency's own chain holds only its stocktakes: custodian changes
    and inventories."""
    for item in records[1:]:
        if item.record.kind == INVENTORY_TAKEN:
            registry.inventories.append(item)
        elif item.record.kind == SITE_CUSTODIAN:
            registry.custodians.append(item)
        else:
            raise RegistryFailure(f"the agency's registry chain holds a {item.record.kind} "
                                  f"record at leaf {item.leaf}")


def _person(person: str, records: list[Logged]) -> None:
    """A person's chain is one retirement (people are otherwise never in the registry)."""
    if len(records) != 1 or records[0].record.kind != PERSON_RETIRED:
        raise RegistryFailure(f"person {person[:16]}...: expected one {PERSON_RETIRED} record, "
                              f"found {[r.record.kind for r in records]}")


_ENDINGS = frozenset({ASSET_RETIRED, EVENT_CORRECTED, MAINTENANCE_DONE, OUT_OF_SERVICE,
                      BACK_IN_SERVICE})
_NAMES_REGISTERED = _ENDINGS | {EVIDENCE_REFERENCED, ASSET_DISPOSED}
"""Asset records that speak of an asset already in the register."""


def registry_notes(registry: Registry | None, report: VerificationReport) -> None:
    """Say in the report what rests on the backfill rather than on log order."""
    if registry is not None and registry.predating:
        report.not_checked.append(
            f"that the readers, tags and class policies of the {registry.predating} event(s) "
            f"logged before the registry (leaf {registry.opened_leaf}) were registered before "
            "them: they are checked against the registry as backfilled then, at its claimed "
            "times")

