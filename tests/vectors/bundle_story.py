"""The custody history behind the committed bundle corpus (tests/vectors/bundles/).

One small store over a fortnight: the agency's registry opened in the log (four readers, three
asset classes, the taser's asking for dual sign-off), three assets registered with their tags,
a camera checked out and back, a taser checked out under dual sign-off, transferred between
officers and returned, a radio shared with and lent to a neighbouring agency and given back;
every event justified by signed reader observations and logged with the registry records it
rests on, four signed checkpoints, each anchored by the CustodyAnchor contract on a throwaway
embedded chain. Everything is fixed except the keys, which are fresh on every run (so are the
chain's accounts, hence its transaction and block hashes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from hexbytes import HexBytes
from web3.types import Wei

from ledger.bundle_export import LoggedEvent, export_bundle
from ledger.chain.client import CustodyAnchorClient
from ledger.chain.provider import EMBEDDED_URL, connect
from ledger.core.bundle import AnchorProof, BundleCheckpoint, ChainInfo, DeviceRegistration, Scope
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, sign_checkpoint
from ledger.core.commitments import PERSON, commit
from ledger.core.encoding import parse_record
from ledger.core.envelope import Envelope, envelope_hash, key_id, raw_public_key, sign_envelope
from ledger.core.head_log import head_map_of
from ledger.core.heads import HeadMap
from ledger.core.records import (
    ASSET_REGISTERED,
    ASSET_RETIRED,
    CLASS_POLICY,
    EVENT_CORRECTED,
    EVIDENCE_REFERENCED,
    GENESIS_PREV,
    INVENTORY_TAKEN,
    MAINTENANCE_DONE,
    MAINTENANCE_SCHEDULE,
    READER_REGISTERED,
    READER_REVOKED,
    REGISTRY_OPENED,
    SHARE_ENDED,
    SHARE_GRANTED,
    CustodyEvent,
    Holder,
    Observation,
    RegistryChains,
    RegistryRecord,
    event_hash,
)
from ledger.core.sampling import list_hash, reconciliation_hash, share_interval
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

AGENCY = "met-police"
CAMERA, TASER, RADIO = ("urn:epc:id:giai:0614141.1001", "urn:epc:id:giai:0614141.1002",
                        "urn:epc:id:grai:0614141.12345.7")
TAGS = {CAMERA: "30340242201D8C4000000001", TASER: "30340242201D8C4000000002",
        RADIO: "33340242201D8C4000000007"}
BADGES = {"officer-17": "E2801160600002084A1B0017", "officer-22": "E2801160600002084A1B0022",
          "sergeant-5": "E2801160600002084A1B0005"}
SALT = bytes(range(16))
"""The commitment salt: fixed so people's references are the same in every run."""

CLASSES = {CAMERA: "camera", TASER: "taser", RADIO: "radio"}
DUAL_SIGNOFF = {"camera": False, "taser": True, "radio": False}
READERS = {"issue-desk-1": ("issue_desk", "store-central"),
           "return-desk-1": ("return_desk", "store-central"),
           "portal-1": ("portal", "store-central"),
           "return-desk-north": ("return_desk", "store-north")}
"""The readers the registry holds: (role, site)."""
LATE_READER = "issue-desk-2"
"""An issue desk whose registration an operator logs after the fact (`Forgery.late_desk`)."""
ROLES_AND_SITES = {**READERS, LATE_READER: ("issue_desk", "store-central")}
LEAF = (9, 11, 13, 14, 15, 17, 18, 19, 20, 21)
"""The log leaf of each of the story's ten custody events (the registry records take the
others: see tests/vectors/bundles/README.md)."""
SIZES = (14, 18, 20, 23)
"""The tree sizes of the story's four checkpoints."""

STORE = Holder("location", "store-central")
NEIGHBOUR = Holder("agency", "kent-police")
REGISTERED = "2025-12-01T00:00:00.000Z"
CREATED = "2026-02-01T00:00:00.000Z"


def person(name: str) -> Holder:
    return Holder("person", commit(PERSON, name, SALT))


@dataclass
class Anchoring:
    """The CustodyAnchor contract on a fresh embedded chain, with the log registered."""

    admin: CustodyAnchorClient
    anchorer: CustodyAnchorClient
    chain_id: int
    deployment_block: int

    @classmethod
    def deploy(cls, log_key: Ed25519PrivateKey) -> Anchoring:
        w3 = connect(EMBEDDED_URL)
        accounts = [Account.create(), Account.create()]
        for account in accounts:
            tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address,
                                          "value": Wei(10**18)})
            w3.eth.wait_for_transaction_receipt(tx, timeout=30)
        admin = CustodyAnchorClient.deploy(w3, accounts[0])
        deployed = int(w3.eth.block_number)
        admin.register_log(chain_log_id(key_id(log_key.public_key())), chain_agency_id(AGENCY))
        admin.grant_anchorer(chain_agency_id(AGENCY), accounts[1].address)
        return cls(admin, CustodyAnchorClient(w3, admin.address, accounts[1]),
                   int(w3.eth.chain_id), deployed)

    def anchor(self, envelope: Envelope) -> AnchorProof:
        """Anchor a signed checkpoint; the proof is the contract's own receipt log."""
        point = Checkpoint.from_record(envelope.payload)
        pending = self.anchorer.prepare_anchor(chain_log_id(point.log_id), point.tree_size,
                                               point.root, envelope.to_bytes(), 0.0)
        self.anchorer.send(pending)
        self.anchorer.wait_for_receipt(pending.tx_hash, timeout_s=60)
        receipt = self.admin.w3.eth.get_transaction_receipt(HexBytes(pending.tx_hash))
        entry = receipt["logs"][0]
        return AnchorProof(pending.tx_hash, int(receipt["blockNumber"]),
                           bytes(receipt["blockHash"]), self.anchorer.account.address.lower(),
                           str(entry["address"]), tuple(bytes(t) for t in entry["topics"]),
                           bytes(entry["data"]))


@dataclass
class History:
    """Readers, their signed observations, the logged custody events and the checkpoints."""

    log_key: Ed25519PrivateKey
    anchoring: Anchoring
    reader_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    devices: list[DeviceRegistration] = field(default_factory=list)
    observations: list[Envelope] = field(default_factory=list)
    events: list[CustodyEvent] = field(default_factory=list)
    event_leaves: list[int] = field(default_factory=list)
    registry: list[LoggedEvent] = field(default_factory=list)
    """The registry records logged, with their leaves."""
    chains: RegistryChains = field(default_factory=lambda: RegistryChains(AGENCY))
    leaves: list[bytes] = field(default_factory=list)
    """Every leaf of the log, in order."""
    log: MerkleLog = field(default_factory=lambda: MerkleLog(MemoryNodeStore()))
    checkpoints: list[BundleCheckpoint] = field(default_factory=list)
    head_maps: list[HeadMap] = field(default_factory=list)
    """The head map each checkpoint commits to, in checkpoint order."""

    def add_reader(self, reader: str, registered: str = REGISTERED, *, logged: bool = True
                   ) -> None:
        """A reader with a fresh key, on the device list and (`logged`) in the log."""
        key = Ed25519PrivateKey.generate()
        self.reader_keys[reader] = key
        self.devices.append(DeviceRegistration(reader, AGENCY, key_id(key.public_key()),
                                               raw_public_key(key.public_key()), registered))
        if logged:
            self.log_reader(reader, registered)

    def log_reader(self, reader: str, registered: str = REGISTERED) -> None:
        role, site = ROLES_AND_SITES[reader]
        key = self.reader_keys[reader].public_key()
        self.log_registry(READER_REGISTERED, registered, reader=reader, site=site, role=role,
                          kid=key_id(key), public_key=raw_public_key(key).hex())

    def log_registry(self, kind: str, time: str, **fields: object) -> RegistryRecord:
        """Append the next registry record of `kind` for the subject `fields` name."""
        record = self.chains.append(kind, time, **fields)
        data = record.to_bytes()
        self.registry.append(LoggedEvent(data, self.log.size))
        self.leaves.append(data)
        self.log.append(data)
        return record

    def revoke(self, reader: str, time: str) -> None:
        self.log_registry(READER_REVOKED, time, reader=reader, reason="stolen from the desk")

    def observe(self, reader: str, kind: str, epc: str, time: str) -> str:
        payload = Observation(device=reader, seq=len(self.observations) + 1, time=time,
                              kind=kind, epc=epc, antenna=1, rssi=-52, zone="desk").to_record()
        envelope = sign_envelope(payload, self.reader_keys[reader])
        self.observations.append(envelope)
        return envelope_hash(envelope).hex()

    def custody(self, asset: str, action: str, time: str, reader: str, holder_from: Holder | None,
                holder_to: Holder, badged: tuple[str, ...] = (),
                tag_read: str | None = None, epc: str | None = None) -> None:
        """Log one custody event, justified by the badge reads of `badged` and a tag read (by
        default a new one; `tag_read` cites an earlier one instead)."""
        earlier = [e for e in self.events if e.asset == asset]
        reads = [self.observe(reader, "badge", BADGES[name], time) for name in badged]
        reads.append(tag_read or self.observe(reader, "read", epc or TAGS[asset], time))
        event = CustodyEvent(
            agency=AGENCY, asset=asset, seq=len(earlier),
            prev=event_hash(earlier[-1]).hex() if earlier else GENESIS_PREV, action=action,
            time=time, holder_from=holder_from, holder_to=holder_to, observations=tuple(reads),
            authorised_by=tuple(person(name).ref for name in badged), reader=reader)
        self._log_event(event)

    def manual(self, asset: str, action: str, time: str, desk: str, holder_from: Holder,
               holder_to: Holder, people: tuple[str, ...], reason: str) -> None:
        """Log a custody event an officer entered by hand at `desk` (no reads): the first of
        `people` entered it, any second co-signed it."""
        earlier = [e for e in self.events if e.asset == asset]
        self._log_event(CustodyEvent(
            agency=AGENCY, asset=asset, seq=len(earlier), prev=event_hash(earlier[-1]).hex(),
            action=action, time=time, holder_from=holder_from, holder_to=holder_to,
            authorised_by=tuple(person(name).ref for name in people), reader=desk,
            manual=reason))

    def _log_event(self, event: CustodyEvent) -> None:
        self.events.append(event)
        self.event_leaves.append(self.log.size)
        self.leaves.append(event.to_bytes())
        self.log.append(event.to_bytes())

    def correct(self, leaf: int, time: str, reason: str) -> None:
        """Log a correction of the event at `leaf` (which must be one of the story's)."""
        event = self.events[self.event_leaves.index(leaf)]
        self.log_registry(EVENT_CORRECTED, time, asset=event.asset,
                          event=event_hash(event).hex(), leaf=leaf, reason=reason)

    def checkpoint(self, time: str) -> None:
        heads = head_map_of(self.leaves)
        self.head_maps.append(heads)
        point = Checkpoint(key_id(self.log_key.public_key()), self.log.size, self.log.root(),
                           time, heads=heads.root)
        envelope = sign_checkpoint(point, self.log_key)
        self.checkpoints.append(BundleCheckpoint(envelope, self.anchoring.anchor(envelope)))

    def trust_file(self, witnesses: Sequence[tuple[str, bytes]] = (), quorum: int = 0) -> str:
        """The auditor's trust file for this history: the log's public key and the contract,
        not required (no node serves the throwaway chain, so the corpus is verified offline),
        and, given `witnesses` (name, Ed25519 public key), the policy of `quorum` of them."""
        chain = self.anchoring
        text = (f'version = 1\n\n[[log]]\nagency = "{AGENCY}"\npublic_keys = '
                f'["{raw_public_key(self.log_key.public_key()).hex()}"]\n\n[log.chain]\n'
                f'chain_id = {chain.chain_id}\ncontract = "{chain.admin.address}"\n'
                f'deployment_block = {chain.deployment_block}\nrequired = false\n')
        if witnesses:
            text += f"\n[log.witnesses]\nquorum = {quorum}\n"
            for name, public_key in witnesses:
                text += (f'\n[[log.witnesses.key]]\nname = "{name}"\n'
                         f'public_key = "{public_key.hex()}"\n')
        return text

    def case_bundle(self, case: str, assets: Sequence[str], **overrides: Any) -> bytes:
        """The bundle of case `case` holding `assets`: their events and registry records (the
        agency's, readers' and classes' too), as the API exports a case."""
        kept = [(e, leaf) for e, leaf in zip(self.events, self.event_leaves, strict=True)
                if e.asset in assets]
        registry = [r for r in self.registry if _of_assets(r.record, assets)]
        values: dict[str, Any] = dict(
            scope=Scope("case", tuple(assets), case=case),
            events=[LoggedEvent(e.to_bytes(), leaf) for e, leaf in kept], registry=registry)
        values.update(overrides)
        return self.bundle(**values)

    def bundle(self, **overrides: Any) -> bytes:
        """The audit bundle of the three assets; `overrides` replace export arguments."""
        values: dict[str, Any] = dict(
            scope=Scope("assets", (CAMERA, TASER, RADIO)), created=CREATED,
            log_public_key=raw_public_key(self.log_key.public_key()),
            chain=ChainInfo(self.anchoring.chain_id, self.anchoring.admin.address, AGENCY),
            devices=[], checkpoints=self.checkpoints, observations=self.observations,
            events=[LoggedEvent(e.to_bytes(), leaf)
                    for e, leaf in zip(self.events, self.event_leaves, strict=True)],
            head_map=self.head_maps[-1], registry=self.registry)
        values.update(overrides)
        return export_bundle(self.log, **values)


PORTAL_READ_TIME = "2025-11-05T07:58:10.250Z"
"""Two months before the camera's check_out: when `fortnight(unrelated_read=True)`'s portal read
the taser's tag."""


@dataclass(frozen=True)
class Forgery:
    """What an operator holding its own log key logged in a variant of the story (each an
    attack the registry in the log must expose); the default is the honest fortnight."""

    unrelated_read: bool = False
    """The camera's check_out cites a store portal's read of the taser's tag, two months old."""
    revoked_desk: bool = False
    """return-desk-1 is revoked (2026-01-08) before it checks the taser in (2026-01-09)."""
    late_desk: bool = False
    """The camera's check_out is made at issue-desk-2, whose registration is logged after it."""
    desk: str = "issue-desk-1"
    """The reader of the camera's check_out."""
    return_desk: str = "return-desk-1"
    """The reader of the camera's check_in."""
    camera_epc: str | None = None
    """The EPC the camera's tag reads name (by default its registered tag)."""
    stale_read: bool = False
    """The camera's check_in cites a read of its tag made eight days before."""
    single_signoff: bool = False
    """The taser is checked out on one badge, and its class's dual sign-off relaxed after."""
    property_room: bool = False
    """After the fortnight (`property_room`): the taser checked out by hand at the issue desk,
    the camera's check_in corrected, the radio retired, and a fifth checkpoint."""
    manual_alone: bool = False
    """The taser's manual check_out names the officer only, no supervisor's co-signature."""
    manual_desk: str = "issue-desk-1"
    """The desk the taser's manual check_out is entered at."""
    manual_action: str = "check_out"
    """The action of the taser's manual entry."""
    corrected_leaf: int | None = None
    """The leaf the correction names, if not the camera's check_in (its hash stays the
    camera check_in's)."""
    retired_moved: bool = False
    """The radio is checked out at the issue desk after its retirement."""
    unserviced: bool = False
    """Before the taser's manual check_out, its class gets a blocking schedule (an annual
    test) and the taser fails it: the check_out issues an item it could not."""
    evidence: bool = False
    """In the property room, before its checkpoint, the camera and the taser are referenced
    to case `CASE` as exhibits `EXHIBITS` (the radio is in no case)."""
    inventory: str | None = None
    """A full inventory of the central store logged after the radio's retirement: "honest"
    (the camera found, the taser missing), "uncounted" (the same, logged as none missing), or
    "stranger" (the honest figures, credited to a handheld the log never registered)."""


def _open_registry(history: History, forgery: Forgery) -> None:
    history.log_registry(REGISTRY_OPENED, REGISTERED, backfilled=0)
    for reader in READERS:
        history.add_reader(reader, "2025-10-01T00:00:00.000Z" if reader == "portal-1"
                           else REGISTERED)
    if forgery.late_desk:
        history.add_reader(LATE_READER, logged=False)
    for class_id, dual in DUAL_SIGNOFF.items():
        history.log_registry(CLASS_POLICY, REGISTERED, **{
            "class": class_id, "dual_signoff": dual, "required_qualification": None,
            "loan_days": None, "disposal_final": True})


def fortnight(unrelated_read: bool = False, forgery: Forgery | None = None) -> History:
    """Ten custody events over four anchored checkpoints (tree sizes `SIZES`), each at its
    leaf of `LEAF`, after the registry they rest on.

    `unrelated_read`: the operator's forgery of attack "unrelated justification", logged and
    signed like any other history: a store portal `portal-1` read the taser's tag two months
    before the camera's check_out at the issue desk, which cites that read as its tag read.
    `forgery`: another history the operator logged and signed (`Forgery`)."""
    forgery = forgery or Forgery(unrelated_read=unrelated_read)
    log_key = Ed25519PrivateKey.generate()
    history = History(log_key, Anchoring.deploy(log_key))
    _open_registry(history, forgery)
    portal = None
    if forgery.unrelated_read:
        portal = history.observe("portal-1", "depart", TAGS[TASER], PORTAL_READ_TIME)
    jane, john = person("officer-17"), person("officer-22")
    registered = "2026-01-02T08:00:00.000Z"
    camera_epc = forgery.camera_epc or TAGS[CAMERA]
    for asset in (CAMERA, TASER, RADIO):
        history.log_registry(ASSET_REGISTERED, registered, asset=asset,
                             **{"class": CLASSES[asset]}, epc=TAGS[asset])
        history.custody(asset, "register", registered, "issue-desk-1", None, STORE,
                        epc=camera_epc if asset == CAMERA else None)
    history.checkpoint("2026-01-02T12:00:00.000Z")
    desk = LATE_READER if forgery.late_desk else forgery.desk
    history.custody(CAMERA, "check_out", "2026-01-05T07:58:10.250Z", desk, STORE,
                    jane, ("officer-17",), tag_read=portal, epc=camera_epc)
    taser_badges = ("officer-17",) if forgery.single_signoff else ("officer-17", "sergeant-5")
    history.custody(TASER, "check_out", "2026-01-05T08:01:44.125Z", "issue-desk-1", STORE,
                    jane, taser_badges)  # dual sign-off
    history.log_registry(SHARE_GRANTED, "2026-01-06T10:30:00.000Z", asset=RADIO,
                         **{"with": NEIGHBOUR.ref})
    history.custody(RADIO, "loan_out", "2026-01-06T10:30:00.000Z", "issue-desk-1", STORE,
                    NEIGHBOUR, ("sergeant-5",))
    history.checkpoint("2026-01-06T12:00:00.000Z")
    history.custody(TASER, "transfer", "2026-01-07T19:02:31.500Z", "return-desk-1", jane, john,
                    ("officer-17", "officer-22"))
    stale = (history.observe(forgery.return_desk, "read", camera_epc,
                             "2025-12-30T19:05:00.000Z") if forgery.stale_read else None)
    history.custody(CAMERA, "check_in", "2026-01-07T19:05:00.000Z", forgery.return_desk, jane,
                    STORE, ("officer-17",), tag_read=stale, epc=camera_epc)
    history.checkpoint("2026-01-07T20:00:00.000Z")
    if forgery.revoked_desk:
        history.revoke("return-desk-1", "2026-01-08T00:00:00.000Z")
    history.custody(TASER, "check_in", "2026-01-09T06:45:12.750Z", "return-desk-1", john,
                    STORE, ("officer-22",))
    history.custody(RADIO, "loan_return", "2026-01-14T15:20:00.000Z", "return-desk-1",
                    NEIGHBOUR, STORE)
    history.log_registry(SHARE_ENDED, "2026-01-14T15:20:00.000Z", asset=RADIO,
                         **{"with": NEIGHBOUR.ref})
    if forgery.late_desk:
        history.log_reader(LATE_READER, REGISTERED)
    if forgery.single_signoff:
        history.log_registry(CLASS_POLICY, "2026-01-14T16:00:00.000Z", **{
            "class": "taser", "dual_signoff": False, "required_qualification": None,
            "loan_days": None, "disposal_final": True})
    history.checkpoint("2026-01-14T18:00:00.000Z")
    if forgery.property_room:
        property_room(history, forgery)
    if forgery == Forgery():
        assert tuple(history.event_leaves) == LEAF, history.event_leaves
        assert tuple(c.tree_size for c in _points(history)) == SIZES
    return history


MANUAL_REASON = "tag unreadable: label torn"
CASE = "24-001234"
EXHIBITS = {CAMERA: "JD/1", TASER: "JD/2"}
"""The case of the evidence variants and its exhibits, by asset."""
CORRECTION_REASON = "checked in at the wrong desk: was return-desk-north"


def property_room(history: History, forgery: Forgery) -> None:
    """The property room's work no reader decides, after the fortnight: a manual check-out of
    the taser (its class asks for dual sign-off, so a supervisor co-signs), a correction of
    the camera's check_in, the radio retired; then a fifth checkpoint."""
    if forgery.unserviced:
        history.log_registry(MAINTENANCE_SCHEDULE, "2026-01-15T07:00:00.000Z", **{
            "class": "taser", "schedule": "taser-annual-test", "name": "annual test",
            "interval_days": 365, "blocking": True})
        history.log_registry(MAINTENANCE_DONE, "2026-01-15T07:30:00.000Z", asset=TASER,
                             schedule="taser-annual-test", result="fail",
                             by=person("sergeant-5").ref, next_due=None)
    people = ("officer-17",) if forgery.manual_alone else ("officer-17", "sergeant-5")
    history.manual(TASER, forgery.manual_action, "2026-01-15T08:00:00.000Z", forgery.manual_desk,
                   STORE, person("officer-17"), people, MANUAL_REASON)
    history.correct(LEAF[7], "2026-01-15T09:00:00.000Z", CORRECTION_REASON)
    if forgery.corrected_leaf is not None:  # the same correction, pointed elsewhere
        record = history.chains.append(
            EVENT_CORRECTED, "2026-01-15T09:00:01.000Z", asset=CAMERA,
            event=event_hash(history.events[LEAF.index(LEAF[7])]).hex(),
            leaf=forgery.corrected_leaf, reason=CORRECTION_REASON)
        data = record.to_bytes()
        history.registry.append(LoggedEvent(data, history.log.size))
        history.leaves.append(data)
        history.log.append(data)
    history.log_registry(ASSET_RETIRED, "2026-01-15T10:00:00.000Z", asset=RADIO,
                         reason="written off: water damage")
    if forgery.evidence:
        for asset, exhibit in EXHIBITS.items():
            history.log_registry(EVIDENCE_REFERENCED, "2026-01-15T10:30:00.000Z", asset=asset,
                                 case=CASE, exhibit=exhibit)
    if forgery.retired_moved:
        history.custody(RADIO, "check_out", "2026-01-15T11:00:00.000Z", "issue-desk-1", STORE,
                        person("officer-22"), ("officer-22",))
    if forgery.inventory is not None:
        history.log_registry(INVENTORY_TAKEN, "2026-01-15T11:30:00.000Z",
                             **inventory_fields(forgery.inventory))
    history.checkpoint("2026-01-15T12:00:00.000Z")


def _of_assets(record: bytes, assets: Sequence[str]) -> bool:
    """Whether registry record `record` is the agency's, a reader's or a class's, or one of
    `assets`'."""
    kind, ident = RegistryRecord.from_record(parse_record(record)).subject
    return kind != "asset" or ident in assets


def inventory_fields(kind: str = "honest") -> dict[str, object]:
    """A full inventory of the central store by the return desk: the camera found, the taser
    (out by hand) missing, one stray tag; "uncounted" logs it as none missing, "stranger" by a
    handheld the log never registered."""
    uncounted = kind == "uncounted"
    lists = {"expected": [CAMERA, TASER], "found": [CAMERA], "missing": [TASER],
             "unexpected": [], "unknown": ["E28011606000020500000077"]}
    share = share_interval(1, 2, 2, 0)
    reader = "handheld-9" if kind == "stranger" else "return-desk-1"
    return {"site": STORE.ref, "reader": reader, "by": person("sergeant-5").ref,
            "started": "2026-01-15T11:00:00.000Z", "ended": "2026-01-15T11:20:00.000Z",
            "mode": "full", "population": 2, "population_hash": list_hash(lists["expected"]).hex(),
            "sample": 2, "seed": None, "confidence_bp": 0, "margin_bp": 0, "expected": 2,
            "found": 1, "missing": 0 if uncounted else 1, "unexpected": 0, "unknown": 1,
            "lists": reconciliation_hash(lists).hex(), "share_low_bp": share.low_bp,
            "share_high_bp": share.high_bp}


def _points(history: History) -> list[Checkpoint]:
    return [Checkpoint.from_record(c.envelope.payload) for c in history.checkpoints]
