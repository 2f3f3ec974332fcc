"""The custody history behind the committed bundle corpus (tests/vectors/bundles/).

One small store over a fortnight: three assets registered, a camera checked out and back, a
taser checked out under dual sign-off, transferred between officers and returned, a radio lent
to a neighbouring agency and given back; every event justified by signed reader observations
and logged, four signed checkpoints, each anchored by the CustodyAnchor contract on a throwaway
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
from ledger.core.envelope import Envelope, envelope_hash, key_id, raw_public_key, sign_envelope
from ledger.core.head_log import head_map_of
from ledger.core.heads import HeadMap
from ledger.core.records import GENESIS_PREV, CustodyEvent, Holder, Observation, event_hash
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

STORE = Holder("location", "store-central")
NEIGHBOUR = Holder("agency", "kent-police")
REGISTERED = "2026-01-01T00:00:00.000Z"
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
    log: MerkleLog = field(default_factory=lambda: MerkleLog(MemoryNodeStore()))
    checkpoints: list[BundleCheckpoint] = field(default_factory=list)
    head_maps: list[HeadMap] = field(default_factory=list)
    """The head map each checkpoint commits to, in checkpoint order."""

    def add_reader(self, reader: str, registered: str = REGISTERED) -> None:
        key = Ed25519PrivateKey.generate()
        self.reader_keys[reader] = key
        self.devices.append(DeviceRegistration(reader, AGENCY, key_id(key.public_key()),
                                               raw_public_key(key.public_key()), registered))

    def observe(self, reader: str, kind: str, epc: str, time: str) -> str:
        payload = Observation(device=reader, seq=len(self.observations) + 1, time=time,
                              kind=kind, epc=epc, antenna=1, rssi=-52, zone="desk").to_record()
        envelope = sign_envelope(payload, self.reader_keys[reader])
        self.observations.append(envelope)
        return envelope_hash(envelope).hex()

    def custody(self, asset: str, action: str, time: str, reader: str, holder_from: Holder | None,
                holder_to: Holder, badged: tuple[str, ...] = (),
                tag_read: str | None = None) -> None:
        """Log one custody event, justified by the badge reads of `badged` and a tag read (by
        default a new one; `tag_read` cites an earlier one instead)."""
        earlier = [e for e in self.events if e.asset == asset]
        reads = [self.observe(reader, "badge", BADGES[name], time) for name in badged]
        reads.append(tag_read or self.observe(reader, "read", TAGS[asset], time))
        event = CustodyEvent(
            agency=AGENCY, asset=asset, seq=len(earlier),
            prev=event_hash(earlier[-1]).hex() if earlier else GENESIS_PREV, action=action,
            time=time, holder_from=holder_from, holder_to=holder_to, observations=tuple(reads),
            authorised_by=tuple(person(name).ref for name in badged), reader=reader)
        self.events.append(event)
        self.log.append(event.to_bytes())

    def checkpoint(self, time: str) -> None:
        heads = head_map_of(e.to_bytes() for e in self.events)
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

    def bundle(self, **overrides: Any) -> bytes:
        """The audit bundle of the three assets; `overrides` replace export arguments."""
        values: dict[str, Any] = dict(
            scope=Scope("assets", (CAMERA, TASER, RADIO)), created=CREATED,
            log_public_key=raw_public_key(self.log_key.public_key()),
            chain=ChainInfo(self.anchoring.chain_id, self.anchoring.admin.address, AGENCY),
            devices=self.devices, checkpoints=self.checkpoints, observations=self.observations,
            events=[LoggedEvent(e.to_bytes(), i) for i, e in enumerate(self.events)],
            head_map=self.head_maps[-1])
        values.update(overrides)
        return export_bundle(self.log, **values)


PORTAL_READ_TIME = "2025-11-05T07:58:10.250Z"
"""Two months before the camera's check_out: when `fortnight(unrelated_read=True)`'s portal read
the taser's tag."""


def fortnight(unrelated_read: bool = False) -> History:
    """Ten custody events over four anchored checkpoints (tree sizes 3, 6, 8 and 10).

    `unrelated_read`: the operator's forgery of attack "unrelated justification", logged and
    signed like any other history: a store portal `portal-1` read the taser's tag two months
    before the camera's check_out at the issue desk (leaf 3), which cites that read as its tag
    read."""
    log_key = Ed25519PrivateKey.generate()
    history = History(log_key, Anchoring.deploy(log_key))
    history.add_reader("issue-desk-1")
    history.add_reader("return-desk-1")
    portal = None
    if unrelated_read:
        history.add_reader("portal-1", "2025-10-01T00:00:00.000Z")
        portal = history.observe("portal-1", "depart", TAGS[TASER], PORTAL_READ_TIME)
    jane, john = person("officer-17"), person("officer-22")
    for asset in (CAMERA, TASER, RADIO):
        history.custody(asset, "register", "2026-01-02T08:00:00.000Z", "issue-desk-1", None,
                        STORE)
    history.checkpoint("2026-01-02T12:00:00.000Z")
    history.custody(CAMERA, "check_out", "2026-01-05T07:58:10.250Z", "issue-desk-1", STORE,
                    jane, ("officer-17",), tag_read=portal)
    history.custody(TASER, "check_out", "2026-01-05T08:01:44.125Z", "issue-desk-1", STORE,
                    jane, ("officer-17", "sergeant-5"))  # dual sign-off
    history.custody(RADIO, "loan_out", "2026-01-06T10:30:00.000Z", "issue-desk-1", STORE,
                    NEIGHBOUR, ("sergeant-5",))
    history.checkpoint("2026-01-06T12:00:00.000Z")
    history.custody(TASER, "transfer", "2026-01-07T19:02:31.500Z", "return-desk-1", jane, john,
                    ("officer-17", "officer-22"))
    history.custody(CAMERA, "check_in", "2026-01-07T19:05:00.000Z", "return-desk-1", jane,
                    STORE, ("officer-17",))
    history.checkpoint("2026-01-07T20:00:00.000Z")
    history.custody(TASER, "check_in", "2026-01-09T06:45:12.750Z", "return-desk-1", john,
                    STORE, ("officer-22",))
    history.custody(RADIO, "loan_return", "2026-01-14T15:20:00.000Z", "return-desk-1",
                    NEIGHBOUR, STORE)
    history.checkpoint("2026-01-14T18:00:00.000Z")
    return history
