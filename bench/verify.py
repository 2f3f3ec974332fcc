"""Benchmark: verify an audit bundle of 100,000 custody events (bar: <= 30 s on this machine).

    .venv/bin/python bench/verify.py            # 100,000 events, 3 runs, median
    .venv/bin/python bench/verify.py --quick    # 2,000 events, for the test suite

The bundle (1,000 assets x 100 events, one signed observation per event, a checkpoint every
10,000 leaves, each committing to the log's head map; before the events, the registry they
rest on: the issue desk's registration, the class policy and each asset's tag) is the site
scope of `store-2`, where every asset ends (1,000 assets, the most the API puts in one
bundle): it carries the head-map
proofs of every asset's entry and of the site's whole run, so the completeness check has the
most to prove. Three witnesses cosign every checkpoint, and the auditor's trust file pins the
log key, the contract and the witness policy (2 of the 3). It is built first and excluded from
the timing. The timed part is what `kitledger verify --offline --trust FILE` does: strict parse,
every signature and cosignature, hash chain and proof, the registry and each event against it
(reader role, registered tag, class policy), completeness, and the anchors decoded
from the embedded receipt logs (chain round trips excluded, per the issue).
"""

from __future__ import annotations

import argparse
import statistics
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.bundle_export import LoggedEvent, export_bundle
from ledger.core import hashing, note
from ledger.core.bundle import (
    AnchorProof,
    BundleCheckpoint,
    ChainInfo,
    Scope,
    fast_canonical,
)
from ledger.core.bundle_parse import parse_bundle
from ledger.core.checkpoint import Checkpoint, chain_log_id, sign_checkpoint
from ledger.core.envelope import SIGNING_PREFIX, Envelope, key_id, raw_public_key
from ledger.core.heads import Head, HeadMap, RegistryHead
from ledger.core.records import (
    ASSET_REGISTERED,
    CLASS_POLICY,
    GENESIS_PREV,
    READER_REGISTERED,
    REGISTRY_OPENED,
    RegistryChains,
    registry_hash,
)
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore
from ledger.verify import OfflineChainReader, verify_bundle
from ledger.verify.anchors import ANCHORED_TOPIC
from ledger.verify.trust import ChainTrust, LogTrust, TrustFile, WitnessKey, WitnessPolicy

CONTRACT = "0x" + "ab" * 20
ANCHORER = "0x" + "cd" * 20
EVENTS_PER_ASSET = 100
WITNESSES = tuple(Ed25519PrivateKey.generate() for _ in range(3))
WITNESS_NAMES = ("witness.one.example", "witness.two.example", "witness.three.example")
CHECKPOINT_EVERY = 10_000


def _anchor(point: Checkpoint, block: int) -> AnchorProof:
    topics = (ANCHORED_TOPIC, chain_log_id(point.log_id), point.tree_size.to_bytes(32, "big"),
              bytes(12) + bytes.fromhex(ANCHORER[2:]))
    return AnchorProof(bytes([block % 256]) * 32, block, bytes(32), ANCHORER, CONTRACT,
                       topics, point.root)


def build(events: int) -> bytes:
    """A valid bundle of `events` custody events (fast paths: records built as dicts)."""
    log_key, reader_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    kid = key_id(reader_key.public_key())
    log = MerkleLog(MemoryNodeStore())
    observations: list[Envelope] = []
    logged: list[LoggedEvent] = []
    checkpoints: list[BundleCheckpoint] = []
    prev: dict[int, str] = {}
    latest: dict[str, Head] = {}
    head_map = HeadMap.from_heads(())
    assets = events // EVENTS_PER_ASSET or 1
    chains = RegistryChains("met")
    registered = "2025-01-01T00:00:00.000Z"
    records = [chains.append(REGISTRY_OPENED, registered, backfilled=0),
               chains.append(READER_REGISTERED, registered, reader="desk-1", site="store-1",
                             role="issue_desk", kid=kid,
                             public_key=raw_public_key(reader_key.public_key()).hex()),
               chains.append(CLASS_POLICY, registered, **{
                   "class": "kit", "dual_signoff": False, "required_qualification": None,
                   "loan_days": None, "disposal_final": True})]
    records += [chains.append(ASSET_REGISTERED, registered, asset=f"asset-{asset}",
                              **{"class": "kit"}, epc=f"{asset:024X}")
                for asset in range(assets)]
    registry: list[LoggedEvent] = []
    registry_heads: dict[tuple[str, str], RegistryHead] = {}
    for item in records:
        data = item.to_bytes()
        registry.append(LoggedEvent(data, log.append(data)))
        registry_heads[item.subject] = (*item.subject, item.seq, registry_hash(data))
    for n in range(events):
        asset, seq = n % (events // EVENTS_PER_ASSET or 1), n // (events // EVENTS_PER_ASSET or 1)
        time_text = f"2026-01-01T00:{(n // 60000) % 60:02d}:{(n // 1000) % 60:02d}.{n % 1000:03d}Z"
        payload = {"type": "observation", "v": 1, "device": "desk-1", "seq": n, "time": time_text,
                   "kind": "read", "epc": f"{asset:024X}", "antenna": 1, "rssi": -50,
                   "zone": "desk", "session": None, "uri": None, "direction": None}
        envelope = Envelope(kid, payload, reader_key.sign(SIGNING_PREFIX + fast_canonical(payload)))
        observations.append(envelope)
        obs_hash = hashing.domain_hash(hashing.ENVELOPE, fast_canonical(envelope.to_record()))
        record = {"type": "custody-event", "v": 1, "agency": "met", "asset": f"asset-{asset}",
                  "seq": seq, "prev": prev.get(asset, GENESIS_PREV), "action": "check_out",
                  "time": time_text, "from": {"kind": "location", "ref": "store-1"},
                  "to": {"kind": "location", "ref": "store-2"}, "observations": [obs_hash.hex()],
                  "authorised_by": [], "reader": "desk-1"}
        data = fast_canonical(record)
        digest = hashing.domain_hash(hashing.CUSTODY_EVENT, data)
        prev[asset] = digest.hex()
        latest[f"asset-{asset}"] = (f"asset-{asset}", seq, digest, "store-2")
        logged.append(LoggedEvent(data, log.append(data)))
        if log.size % CHECKPOINT_EVERY == 0 or n == events - 1:
            head_map = HeadMap.from_heads(latest.values(), registry_heads.values())
            point = Checkpoint(key_id(log_key.public_key()), log.size, log.root(),
                               "2026-02-01T00:00:00.000Z", heads=head_map.root)
            cosigned = tuple(note.cosign(point.note_text(), name, key, 1_770_000_000)
                             .line().rstrip("\n") for name, key in zip(WITNESS_NAMES, WITNESSES,
                                                                       strict=True))
            checkpoints.append(BundleCheckpoint(sign_checkpoint(point, log_key),
                                                _anchor(point, len(checkpoints) + 1), cosigned))
    return export_bundle(log, scope=Scope("site", tuple(sorted(latest)), site="store-2"),
                         created="2026-03-01T00:00:00.000Z",
                         log_public_key=raw_public_key(log_key.public_key()),
                         chain=ChainInfo(31337, CONTRACT, "met"), devices=[],
                         checkpoints=checkpoints, observations=observations, events=logged,
                         head_map=head_map, registry=registry)


def trust_for(data: bytes) -> TrustFile:
    """The auditor's pins for the benchmark bundle: its log key, the contract, 2 of 3 witnesses."""
    witnesses = WitnessPolicy(2, tuple(WitnessKey(name, raw_public_key(key.public_key()))
                                       for name, key in zip(WITNESS_NAMES, WITNESSES,
                                                            strict=True)))
    log_key = parse_bundle(data).log_public_key
    return TrustFile((LogTrust("met", (log_key,), ChainTrust(31337, CONTRACT, 0, False),
                               witnesses),))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 events, 1 run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    events = 2_000 if args.quick else 100_000
    runs = 1 if args.quick else args.runs
    started = time.perf_counter()
    data = build(events)
    build_s = time.perf_counter() - started
    trust = trust_for(data)
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        bundle = parse_bundle(data)
        report = verify_bundle(bundle, OfflineChainReader(bundle), trust=trust)
        timings.append(time.perf_counter() - started)
        if report.verdict != "valid" or not all(
                report.check(name).passed
                for name in ("completeness", "witness-cosignatures", "registry")):
            raise SystemExit(f"benchmark bundle failed verification: {report.to_record()}")
    median = statistics.median(timings)
    print(f"| events | bundle MB | build s (untimed) | verify s (median of {runs}) | "
          "events/s | bar 30 s |")
    print("| ---: | ---: | ---: | ---: | ---: | :---: |")
    print(f"| {events:,} | {len(data) / 1e6:.1f} | {build_s:.1f} | {median:.2f} | "
          f"{events / median:,.0f} | {'PASS' if median <= 30 else 'FAIL'} |")


if __name__ == "__main__":
    main()
