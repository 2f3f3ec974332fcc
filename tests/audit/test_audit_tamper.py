"""Every way of rewriting a custody history is caught by the verifier, with its reason.

Each tampered bundle is re-sealed (fresh fingerprint and counts), as a forger would do, so the
fingerprint cannot be what catches it: the signatures, chains, proofs and anchors must."""

from __future__ import annotations

import json

import pytest
from audit_support import (
    ChainSetup,
    Story,
    anchor,
    edit_json_line,
    make_story,
    person_ref,
    relines,
    section_start,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.client import CustodyAnchorClient
from ledger.core.bundle import BundleCheckpoint, DeviceRegistration
from ledger.core.bundle_parse import parse_bundle
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.envelope import key_id, raw_public_key, sign_envelope
from ledger.core.records import Holder
from ledger.verify import OfflineChainReader, VerificationReport, verify_bundle
from ledger.verify.rpc import RpcChainReader


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


def test_changed_event_is_caught(bundle: bytes, embedded_setup: ChainSetup) -> None:
    first = section_start(bundle, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first + 2] = edit_json_line(  # the check_out of the first asset: change holder
            lines[first + 2], lambda r: r["to"].update(ref=person_ref("officer-22")))
        return lines

    report = check(relines(bundle, edit), embedded_setup)
    reasons = failed(report)
    assert "inclusion-proofs" in reasons and "expected" in reasons["inclusion-proofs"]
    assert "hash-chains" in reasons  # the transfer after it no longer links
    assert 1 in report.event_failures


def test_deleted_event_is_caught(bundle: bytes, embedded_setup: ChainSetup) -> None:
    first = section_start(bundle, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        del lines[first + 2: first + 4]  # the event and its inclusion line
        return lines

    reasons = failed(check(relines(bundle, edit), embedded_setup))
    assert set(reasons) == {"hash-chains"}
    assert "expected event seq 1, found 2" in reasons["hash-chains"]


def test_inserted_event_is_caught(bundle: bytes, embedded_setup: ChainSetup) -> None:
    first = section_start(bundle, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        forged = edit_json_line(lines[first], lambda r: r.update(action="dispose"))
        proof = edit_json_line(lines[first + 1], lambda r: r.update(leaf=r["leaf"] + 1))
        lines[first + 2:first + 2] = [forged, proof]
        return lines

    reasons = failed(check(relines(bundle, edit), embedded_setup))
    assert "hash-chains" in reasons and "inclusion-proofs" in reasons


def test_reordered_events_are_caught(bundle: bytes, embedded_setup: ChainSetup) -> None:
    first = section_start(bundle, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first:first + 2], lines[first + 2:first + 4] = (lines[first + 2:first + 4],
                                                              lines[first:first + 2])
        return lines

    reasons = failed(check(relines(bundle, edit), embedded_setup))
    assert "expected event seq 0, found 1" in reasons["hash-chains"]
    assert "bundle order" in reasons["inclusion-proofs"]


def test_swapped_device_key_is_caught(story: Story, embedded_setup: ChainSetup) -> None:
    impostor = Ed25519PrivateKey.generate()
    real = story.devices[0]
    fake = DeviceRegistration(real.reader, real.agency, key_id(impostor.public_key()),
                              raw_public_key(impostor.public_key()), real.registered)
    # Without re-signing, the observations name a key the bundle no longer registers.
    unsigned = check(story.bundle(devices=[fake, *story.devices[1:]]), embedded_setup)
    assert "unknown key id" in failed(unsigned)["observation-signatures"]
    # Re-signing them with the impostor key changes their hashes: events no longer match.
    resigned = [sign_envelope(e.payload, impostor) if e.kid == real.kid else e
                for e in story.observations]
    report = check(story.bundle(devices=[fake, *story.devices[1:]], observations=resigned),
                   embedded_setup)
    assert "not found" in failed(report)["event-observations"]


def test_registered_key_with_wrong_kid_is_caught(story: Story, embedded_setup: ChainSetup
                                                 ) -> None:
    real = story.devices[0]
    other = story.devices[1]
    swapped = DeviceRegistration(real.reader, real.agency, real.kid, other.public_key,
                                 real.registered)
    reasons = failed(check(story.bundle(devices=[swapped, other]), embedded_setup))
    assert "expected key id" in reasons["device-keys"]


def test_observation_after_revocation_is_caught(story: Story, embedded_setup: ChainSetup
                                                ) -> None:
    real = story.devices[0]
    revoked = DeviceRegistration(real.reader, real.agency, real.kid, real.public_key,
                                 real.registered, revoked="2026-01-03T00:00:00.000Z")
    reasons = failed(check(story.bundle(devices=[revoked, story.devices[1]]), embedded_setup))
    assert "revoked" in reasons["observation-signatures"]


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


@pytest.mark.parametrize("which", ["checkpoint-signature", "consistency-path"])
def test_forged_checkpoint_material_is_caught(bundle: bytes, embedded_setup: ChainSetup,
                                              which: str) -> None:
    start = section_start(bundle, "checkpoints")

    def edit(lines: list[bytes]) -> list[bytes]:
        if which == "checkpoint-signature":
            lines[start] = edit_json_line(lines[start], lambda r: r["envelope"]["payload"]
                                          .update(time="2026-01-11T00:00:00.000Z"))
        else:
            at = section_start(bundle, "consistency")
            lines[at] = edit_json_line(lines[at], lambda r: r["path"].reverse())
        return lines

    reasons = failed(check(relines(bundle, edit), embedded_setup))
    name = "checkpoint-signatures" if which == "checkpoint-signature" else "checkpoint-consistency"
    assert name in reasons, reasons
    assert json.dumps(reasons)  # reasons are plain text


def test_story_builder_is_deterministic_about_hashes(embedded_setup: ChainSetup) -> None:
    fresh = make_story(None)
    assert fresh.bundle() != b"" and len(fresh.events) == 12


def test_forged_observation_signature_gets_the_reference_verdict(
        bundle: bytes, embedded_setup: ChainSetup) -> None:
    at = section_start(bundle, "observations")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[at] = edit_json_line(lines[at], lambda r: r["payload"].update(rssi=-20))
        return lines

    reasons = failed(check(relines(bundle, edit), embedded_setup))
    assert "does not verify over the payload" in reasons["observation-signatures"]
    assert "not found" in reasons["event-observations"]


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
