"""A real custody history for the auditor's tests: signed observations from two readers, custody
events chained per asset in a MerkleLog, signed checkpoints anchored on a real chain (the
embedded py-evm chain or anvil), exported as an audit bundle; with `heads`, each checkpoint also
commits to the log's head map and the bundle carries its proofs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eth_account import Account
from web3 import Web3

from ledger.bundle_export import LoggedEvent, export_bundle
from ledger.chain.client import CustodyAnchorClient
from ledger.core.bundle import (
    AnchorProof,
    BundleCheckpoint,
    ChainInfo,
    DeviceRegistration,
    FingerprintHasher,
    Scope,
)
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, sign_checkpoint
from ledger.core.commitments import PERSON, commit
from ledger.core.envelope import Envelope, envelope_hash, key_id, raw_public_key, sign_envelope
from ledger.core.head_log import head_map_of
from ledger.core.heads import HeadMap
from ledger.core.records import (
    ASSET_REGISTERED,
    CLASS_POLICY,
    GENESIS_PREV,
    READER_REGISTERED,
    REGISTRY_OPENED,
    CustodyEvent,
    Holder,
    Observation,
    RegistryChains,
    RegistryRecord,
    event_hash,
)
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore

AGENCY = "met-police"
ASSETS = ("urn:epc:id:giai:0614141.1001", "urn:epc:id:giai:0614141.1002",
          "urn:epc:id:grai:0614141.12345.7")
PEOPLE = {"officer-17": "PC Jane Doe", "officer-22": "PC John Roe"}
SALT = b"s" * 16


def tag_of(asset: str) -> str:
    """The EPC the story reads for `asset` (fixed within a run)."""
    return "%024X" % (abs(hash(asset)) % (1 << 96))


def person_ref(person: str) -> str:
    return commit(PERSON, person, SALT)


@dataclass
class ChainSetup:
    w3: Web3
    admin: CustodyAnchorClient
    anchorer: CustodyAnchorClient
    chain_id: int
    deployment_block: int = 0


def deploy(w3: Web3, log_key: Ed25519PrivateKey) -> ChainSetup:
    """A fresh CustodyAnchor with the log registered to AGENCY and one anchorer granted."""
    accounts = []
    for _ in range(2):
        account = Account.create()
        tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": account.address,
                                      "value": 10**18})
        w3.eth.wait_for_transaction_receipt(tx, timeout=30)
        accounts.append(account)
    admin = CustodyAnchorClient.deploy(w3, accounts[0])
    deployed = int(w3.eth.block_number)
    admin.register_log(chain_log_id(key_id(log_key.public_key())), chain_agency_id(AGENCY))
    admin.grant_anchorer(chain_agency_id(AGENCY), accounts[1].address)
    return ChainSetup(w3, admin, CustodyAnchorClient(w3, admin.address, accounts[1]),
                      int(w3.eth.chain_id), deployed)


def trust_toml(log_key: Ed25519PrivateKey, setup: ChainSetup | None, required: bool = True,
               agency: str = AGENCY) -> str:
    """The auditor's trust file pinning `log_key` for `agency` and, given `setup`, its chain."""
    text = (f'version = 1\n[[log]]\nagency = "{agency}"\npublic_keys = '
            f'["{raw_public_key(log_key.public_key()).hex()}"]\n')
    if setup is not None:
        text += (f'[log.chain]\nchain_id = {setup.chain_id}\ncontract = '
                 f'"{setup.admin.address}"\ndeployment_block = {setup.deployment_block}\n'
                 f'required = {"true" if required else "false"}\n')
    return text


def write_trust(directory: Path, story: Story, required: bool = True) -> str:
    """A trust file for `story`'s log written into `directory`; its path."""
    path = directory / ("trust.toml" if required else "trust-not-required.toml")
    path.write_text(trust_toml(story.log_key, story.setup, required))
    return str(path)


def anchor(setup: ChainSetup, envelope: Envelope, anchorer: CustodyAnchorClient | None = None
           ) -> AnchorProof:
    """Anchor a signed checkpoint and return the proof a bundle embeds."""
    client = anchorer or setup.anchorer
    point = Checkpoint.from_record(envelope.payload)
    pending = client.prepare_anchor(chain_log_id(point.log_id), point.tree_size, point.root,
                                    envelope.to_bytes(), 0.0)
    client.send(pending)
    client.wait_for_receipt(pending.tx_hash, timeout_s=60)
    receipt = setup.w3.eth.get_transaction_receipt(pending.tx_hash)
    entry = receipt["logs"][0]
    return AnchorProof(pending.tx_hash, int(receipt["blockNumber"]), bytes(receipt["blockHash"]),
                       client.account.address.lower(), str(entry["address"]),
                       tuple(bytes(t) for t in entry["topics"]), bytes(entry["data"]))


@dataclass
class Story:
    """A custody history and everything needed to rebuild its bundle after tampering."""

    log_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    reader_keys: dict[str, Ed25519PrivateKey] = field(default_factory=dict)
    devices: list[DeviceRegistration] = field(default_factory=list)
    observations: list[Envelope] = field(default_factory=list)
    events: list[CustodyEvent] = field(default_factory=list)
    log: MerkleLog = field(default_factory=lambda: MerkleLog(MemoryNodeStore()))
    checkpoints: list[BundleCheckpoint] = field(default_factory=list)
    setup: ChainSetup | None = None
    seq: int = 0
    heads: bool = False
    """Checkpoints commit to the head map (record version 2); else version 1, no map."""
    head_maps: list[HeadMap] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)
    """Every leaf of the log: custody events and registry records, in order."""
    event_leaves: list[int] = field(default_factory=list)
    registry: list[LoggedEvent] = field(default_factory=list)
    """The registry records logged (`log_registry`), with their leaves."""
    chains: RegistryChains = field(default_factory=lambda: RegistryChains(AGENCY))

    def add_reader(self, reader: str, registered: str = "2026-01-01T00:00:00.000Z",
                   revoked: str | None = None) -> None:
        key = Ed25519PrivateKey.generate()
        self.reader_keys[reader] = key
        self.devices.append(DeviceRegistration(
            reader, AGENCY, key_id(key.public_key()), raw_public_key(key.public_key()),
            registered, revoked))

    def observe(self, reader: str, epc: str, time: str, kind: str = "read") -> str:
        self.seq += 1
        payload = Observation(device=reader, seq=self.seq, time=time, kind=kind, epc=epc,
                              antenna=1, rssi=-50, zone="desk").to_record()
        envelope = sign_envelope(payload, self.reader_keys[reader])
        self.observations.append(envelope)
        return envelope_hash(envelope).hex()

    def custody(self, asset: str, action: str, time: str, reader: str,
                holder_from: Holder | None, holder_to: Holder | None,
                epc: str | None = None, cites: tuple[str, ...] = (),
                authorised_by: tuple[str, ...] = ()) -> CustodyEvent:
        """`epc`: the tag the event's read names (by default one made up from the asset);
        `cites`: further observations (by envelope hash) the event cites, e.g. badge reads;
        `authorised_by`: the commitments of the people who signed the step off."""
        previous = [e for e in self.events if e.asset == asset]
        prev = event_hash(previous[-1]).hex() if previous else GENESIS_PREV
        epc = epc or tag_of(asset)
        obs = self.observe(reader, epc, time)
        event = CustodyEvent(agency=AGENCY, asset=asset, seq=len(previous), prev=prev,
                             action=action, time=time, holder_from=holder_from,
                             holder_to=holder_to, observations=(obs, *cites), reader=reader,
                             authorised_by=authorised_by)
        self.events.append(event)
        self.event_leaves.append(self.log.size)
        self.leaves.append(event.to_bytes())
        self.log.append(event.to_bytes())
        return event

    def log_registry(self, record: RegistryRecord) -> int:
        """Append a registry record to the log; its leaf."""
        data = record.to_bytes()
        self.registry.append(LoggedEvent(data, self.log.size))
        self.leaves.append(data)
        return self.log.append(data)

    def checkpoint(self, time: str = "2026-02-01T00:00:00.000Z") -> Envelope:
        head_map = head_map_of(self._leaves()) if self.heads else None
        if head_map is not None:
            self.head_maps.append(head_map)
        point = Checkpoint(key_id(self.log_key.public_key()), self.log.size, self.log.root(),
                           time, heads=head_map.root if head_map is not None else None)
        envelope = sign_checkpoint(point, self.log_key)
        proof = anchor(self.setup, envelope) if self.setup else None
        self.checkpoints.append(BundleCheckpoint(envelope, proof))
        return envelope

    def open_registry(self, roles: dict[str, str], site: str = "store-central",
                      tags: dict[str, str] | None = None) -> None:
        """Log the registry the story's events rest on: opened, each reader of `roles` (reader
        -> role) at `site`, one class `kit` without dual sign-off, and each asset's tag (`tags`,
        asset -> EPC; else `ASSETS` with the EPC `custody` reads)."""
        registered = "2025-12-01T00:00:00.000Z"
        self.log_registry(self.chains.append(REGISTRY_OPENED, registered, backfilled=0))
        for reader, role in roles.items():
            key = self.reader_keys[reader].public_key()
            self.log_registry(self.chains.append(
                READER_REGISTERED, registered, reader=reader, site=site, role=role,
                kid=key_id(key), public_key=raw_public_key(key).hex()))
        self.log_registry(self.chains.append(CLASS_POLICY, registered, **{
            "class": "kit", "dual_signoff": False, "required_qualification": None,
            "loan_days": None, "disposal_final": True}))
        for asset, epc in (tags or {asset: tag_of(asset) for asset in ASSETS}).items():
            self.log_registry(self.chains.append(ASSET_REGISTERED, registered, asset=asset,
                                                 **{"class": "kit"}, epc=epc))

    def log_leaves(self) -> list[bytes]:
        return self._leaves()

    def _leaves(self) -> list[bytes]:
        """The log's leaves: as tracked once registry records are logged; until then the
        events (which some tests append to `events` and `log` themselves)."""
        return self.leaves if self.registry else [e.to_bytes() for e in self.events]

    def bundle_events(self) -> list[LoggedEvent]:
        if not self.registry:
            return [LoggedEvent(e.to_bytes(), i) for i, e in enumerate(self.events)]
        return [LoggedEvent(e.to_bytes(), leaf)
                for e, leaf in zip(self.events, self.event_leaves, strict=True)]

    def bundle(self, scope: Scope | None = None, **overrides: Any) -> bytes:
        setup = self.setup
        chain = ChainInfo(setup.chain_id, setup.admin.address, AGENCY) if setup else None
        values: dict[str, Any] = dict(
            scope=scope or Scope("assets", ASSETS), created="2026-03-01T00:00:00.000Z",
            log_public_key=raw_public_key(self.log_key.public_key()), chain=chain,
            devices=[] if self.registry else self.devices, checkpoints=self.checkpoints,
            observations=self.observations, events=self.bundle_events(),
            head_map=self.head_maps[-1] if self.heads else None, registry=self.registry)
        values.update(overrides)
        return export_bundle(self.log, **values)


def make_story(setup: ChainSetup | None, log_key: Ed25519PrivateKey | None = None,
               heads: bool = False) -> Story:
    """Three assets issued, transferred and returned over two anchored checkpoints."""
    story = Story(log_key=log_key or Ed25519PrivateKey.generate(), setup=setup, heads=heads)
    story.add_reader("desk-1")
    story.add_reader("desk-2")
    if heads:  # a log whose checkpoints can prove it holds its registry
        story.open_registry({"desk-1": "issue_desk", "desk-2": "return_desk"})
    store = Holder("location", "store-central")
    jane, john = Holder("person", person_ref("officer-17")), Holder("person", person_ref(
        "officer-22"))
    for n, asset in enumerate(ASSETS):
        story.custody(asset, "register", f"2026-01-0{n + 2}T08:00:00.000Z", "desk-1", None, store)
        story.custody(asset, "check_out", f"2026-01-0{n + 2}T09:00:00.000Z", "desk-1", store,
                      jane)
    story.checkpoint("2026-01-10T00:00:00.000Z")
    for n, asset in enumerate(ASSETS):
        story.custody(asset, "transfer", f"2026-01-1{n}T10:00:00.000Z", "desk-2", jane, john)
        story.custody(asset, "check_in", f"2026-01-1{n}T18:00:00.000Z", "desk-2", john, store)
    story.checkpoint("2026-01-20T00:00:00.000Z")
    return story


def relines(bundle: bytes, edit: Any) -> bytes:
    """Apply `edit(lines) -> lines` to a bundle's body and re-seal it with a fresh fingerprint
    and line count, as a forger would: only the real checks can catch the change."""
    import json

    from ledger.core.bundle import fast_canonical

    lines = bundle.split(b"\n")[:-2]
    header = json.loads(lines[0])
    lines = edit(lines)
    header_after = json.loads(lines[0])
    if header_after == header:
        counts = header["counts"]
        body = len(lines) - 1
        fixed = (counts["devices"] + counts["checkpoints"] + counts["consistency"]
                 + counts["observations"] + 2 * counts.get("registry", 0))
        counts["events"] = max((body - fixed - counts.get("heads", 0)) // 2, 0)
        lines[0] = fast_canonical(header)
    hasher = FingerprintHasher()
    for line in lines:
        hasher.add(line)
    end = fast_canonical({"type": "bundle-end", "lines": len(lines),
                          "fingerprint": hasher.digest().hex()})
    return b"\n".join([*lines, end]) + b"\n"


def random_hex(n: int = 32) -> str:
    return os.urandom(n).hex()


def section_start(bundle: bytes, section: str) -> int:
    """Index (0-based line) of the first line of `section` in a bundle."""
    import json

    counts = json.loads(bundle.split(b"\n", 1)[0])["counts"]
    order = ["devices", "checkpoints", "consistency", "observations", "events"]
    return 1 + sum(counts[name] for name in order[: order.index(section)])


def edit_json_line(line: bytes, change: Any) -> bytes:
    """Decode a line, apply `change(record)`, re-encode canonically."""
    import json

    from ledger.core.bundle import fast_canonical

    record = json.loads(line)
    change(record)
    return fast_canonical(record)


VERSION_1_UNPINNED = ("the newest checkpoint (record version 1) commits to no head map: nothing "
                      "proves that no event of the scope was left out")


def sound_but_version_1(code: int, verdict: dict[str, Any]) -> bool:
    """A story without head maps (`heads=False`) that passes every check: UNPINNED, exit 4, for
    that reason alone (nothing proves it complete)."""
    return (code, verdict["verdict"], verdict["unpinned"]) == (4, "unpinned",
                                                               [VERSION_1_UNPINNED])
