"""Rewritten custody histories that need a live chain, and random tampering, are caught.

The fixed tamperings of a bundle (edited, removed, inserted, reordered or duplicated events,
forged proofs, checkpoints, observations and device keys) are the committed corpus in
tests/vectors/bundles/, run through `kitledger verify` by test_corpus.py. This module keeps
what a file cannot hold: an operator who rewrites the log and anchors the new head on a real
chain, stale views, a rogue anchorer; and random single-bit flips of the corpus bundle. Tampered
bundles are re-sealed (fresh fingerprint and counts), as a forger would do, so the fingerprint
cannot be what catches them: the signatures, chains, proofs and anchors must."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain.client import CustodyAnchorClient
from ledger.core.bundle import BundleCheckpoint, BundleError
from ledger.core.bundle_parse import parse_bundle
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.envelope import key_id
from ledger.core.records import Holder
from ledger.verify import OfflineChainReader, VerificationReport, verify_bundle
from ledger.verify.rpc import RpcChainReader
from tests.ledger.verify.audit_support import (
    ChainSetup,
    Story,
    anchor,
    make_story,
    person_ref,
    relines,
    section_start,
)
from tests.paths import VECTORS_DIR


def rpc_reader(setup: ChainSetup) -> RpcChainReader:
    return RpcChainReader(CustodyAnchorClient(setup.w3, setup.admin.address, None))  # type: ignore[arg-type]


def check(data: bytes, setup: ChainSetup, **kwargs: bool) -> VerificationReport:
    bundle = parse_bundle(data)
    return verify_bundle(bundle, rpc_reader(setup), **kwargs)


def failed(report: VerificationReport) -> dict[str, str]:
    return {c.name: c.detail for c in report.checks if c.passed is False}


def test_valid_bundle_passes_online_and_offline(bundle: bytes, embedded_setup: ChainSetup
                                                ) -> None:
    online = check(bundle, embedded_setup)
    assert online.ok, failed(online)
    # Other tests here anchor forged heads later; freshness is checked in the stale-view test.
    assert online.check("freshness").passed is None
    assert online.check("anchors").items == 2
    parsed = parse_bundle(bundle)
    offline = verify_bundle(parsed, OfflineChainReader(parsed))
    assert offline.ok and offline.not_checked
    assert offline.check("inclusion-proofs").items == 12


def rewritten_story(setup: ChainSetup, original: Story) -> Story:
    """The operator rewrites event 1 (a check-out to someone else) and rebuilds the log, signing
    new checkpoints with the real log key."""
    forged = Story(log_key=original.log_key, setup=setup, reader_keys=original.reader_keys,
                   devices=original.devices, seq=1000)
    for event in original.events:
        holder_to = event.holder_to
        if event.asset == original.events[1].asset and event.seq == 1:
            holder_to = Holder("person", person_ref("officer-22"))
        forged.custody(event.asset, event.action, event.time, event.reader or "desk-1",
                       event.holder_from, holder_to)
    return forged


def test_rewritten_history_reanchored_is_caught(story: Story, embedded_setup: ChainSetup
                                                ) -> None:
    forged = rewritten_story(embedded_setup, story)
    forged.log.append(b"padding so the new size can be anchored")
    # The rewritten head really is anchored by the agency's authorised anchorer...
    envelope = sign_checkpoint(Checkpoint(key_id(story.log_key.public_key()), forged.log.size,
                                          forged.log.root(), "2026-02-02T00:00:00.000Z"),
                               story.log_key)
    forged.checkpoints = [BundleCheckpoint(envelope, anchor(embedded_setup, envelope))]
    data = forged.bundle(events=[])
    # ...yet the bundle cannot hide the earlier anchors, and cannot prove consistency with them.
    reasons = failed(check(data, embedded_setup))
    assert "expected it among the bundle's checkpoints" in reasons["anchors"]
    with_old = forged.bundle(checkpoints=[*story.checkpoints, *forged.checkpoints], events=[])
    reasons = failed(check(with_old, embedded_setup))
    assert "checkpoint-consistency" in reasons or "inclusion-proofs" in reasons


def test_forked_log_with_unanchored_checkpoint_is_caught(story: Story,
                                                         embedded_setup: ChainSetup) -> None:
    forged = rewritten_story(embedded_setup, story)
    sizes = [Checkpoint.from_record(c.envelope.payload).tree_size for c in story.checkpoints]
    log_id = key_id(story.log_key.public_key())
    forged.checkpoints = [
        BundleCheckpoint(sign_checkpoint(Checkpoint(log_id, size, forged.log.root(size),
                                                    "2026-02-02T00:00:00.000Z"), story.log_key),
                         old.anchor)
        for size, old in zip(sizes, story.checkpoints, strict=True)]
    reasons = failed(check(forged.bundle(), embedded_setup))
    assert "expected on-chain root" in reasons["anchors"]


def test_stale_view_is_caught_when_latest_is_required(story: Story, embedded_setup: ChainSetup
                                                      ) -> None:
    stale = story.bundle(checkpoints=story.checkpoints[:1],
                         events=[e for e in story.bundle_events() if e.leaf_index < 6])
    assert check(stale, embedded_setup).ok  # an old view is still a true view
    reasons = failed(check(stale, embedded_setup, require_latest=True))
    assert "stale view" in reasons["freshness"]


def test_story_builder_is_deterministic_about_hashes(embedded_setup: ChainSetup) -> None:
    fresh = make_story(None)
    assert fresh.bundle() != b"" and len(fresh.events) == 12


def test_anchored_topic_matches_the_contract_abi(embedded_setup: ChainSetup) -> None:
    from web3 import Web3

    from ledger.verify.anchors import ANCHORED_TOPIC

    event = next(e for e in embedded_setup.admin.contract.abi if e.get("name") == "Anchored")
    signature = "Anchored(" + ",".join(i["type"] for i in event["inputs"]) + ")"
    assert Web3.keccak(text=signature) == ANCHORED_TOPIC


def test_unauthorised_anchorer_cannot_vouch_for_a_root(story: Story, embedded_setup: ChainSetup
                                                       ) -> None:
    from eth_account import Account

    from ledger.chain.errors import ContractRevert
    from ledger.core.bundle import AnchorProof
    from ledger.core.checkpoint import chain_log_id
    from ledger.verify.anchors import ANCHORED_TOPIC

    forged = rewritten_story(embedded_setup, story)
    forged.log.append_many([b"rogue head", b"rogue head 2", b"rogue head 3"])  # unused size
    point = Checkpoint(key_id(story.log_key.public_key()), forged.log.size, forged.log.root(),
                       "2026-02-04T00:00:00.000Z")
    envelope = sign_checkpoint(point, story.log_key)
    rogue = Account.create()
    w3 = embedded_setup.w3
    w3.eth.wait_for_transaction_receipt(w3.eth.send_transaction(
        {"from": w3.eth.accounts[0], "to": rogue.address, "value": 10**18}))
    client = CustodyAnchorClient(embedded_setup.w3, embedded_setup.admin.address, rogue)
    with pytest.raises(ContractRevert, match="NotAnchorer"):
        client.prepare_anchor(chain_log_id(point.log_id), point.tree_size, point.root,
                              envelope.to_bytes(), 0.0)
    # The forger fabricates the receipt the contract refused to produce.
    fake = AnchorProof(b"\x11" * 32, 99, b"\x22" * 32, rogue.address.lower(),
                       embedded_setup.admin.address,
                       (ANCHORED_TOPIC, chain_log_id(point.log_id),
                        point.tree_size.to_bytes(32, "big"),
                        bytes(12) + bytes.fromhex(rogue.address[2:])), point.root)
    data = forged.bundle(checkpoints=[BundleCheckpoint(envelope, fake)], events=[])
    reasons = failed(check(data, embedded_setup))
    assert "expected an anchor on chain, found none" in reasons["anchors"]
    # Offline, a fabricated receipt cannot be told from a real one: the report says so.
    parsed = parse_bundle(data)
    offline = verify_bundle(parsed, OfflineChainReader(parsed))
    assert any("no node was asked" in item for item in offline.not_checked)


VALID = (VECTORS_DIR / "bundles" / "valid.jsonl").read_bytes()
VALID_LINES = VALID.split(b"\n")[:-2]  # without the end line and the final newline


def offline_verdict(data: bytes) -> bool:
    """Does `data` verify offline? An unusable bundle does not."""
    try:
        parsed = parse_bundle(data)
    except BundleError:
        return False
    return verify_bundle(parsed, OfflineChainReader(parsed)).ok


def test_corpus_bundle_verifies_in_process() -> None:
    assert offline_verdict(VALID)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_any_resealed_bit_flip_in_proofs_observations_or_events_is_caught(
        data: st.DataObject) -> None:
    # Every byte from the consistency proofs on is signed, hashed into a leaf or a root, or
    # checked against one. Earlier lines hold claims only a node or the operator's records can
    # confirm (anchor receipts offline; a device's agency and registration time), so a
    # re-sealed edit there can pass offline.
    line = data.draw(st.integers(section_start(VALID, "consistency"), len(VALID_LINES) - 1))
    bit = data.draw(st.integers(0, 8 * len(VALID_LINES[line]) - 1))

    def flip(lines: list[bytes]) -> list[bytes]:
        target = bytearray(lines[line])
        target[bit // 8] ^= 1 << (bit % 8)
        lines[line] = bytes(target)
        return lines

    assert not offline_verdict(relines(VALID, flip)), (line, bit)


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_any_bit_flip_anywhere_without_resealing_is_caught(data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, 8 * len(VALID) - 1))
    flipped = bytearray(VALID)
    flipped[bit // 8] ^= 1 << (bit % 8)
    assert not offline_verdict(bytes(flipped)), bit
