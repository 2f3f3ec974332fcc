"""Trust roots and the auditor's memory, through the installed `kitledger verify` on anvil.

An operator holds the log key and the anchorer role; a forger can hold fresh keys and deploy a
CustodyAnchor of their own. Neither can get a bundle past an auditor who pins the log key, the
chain, the contract and its deployment block (`--trust`), and who keeps the last checkpoint it
verified of each log (`--state`): a rewritten history re-anchored on the real contract, an
invention anchored in the forger's contract, a fork, a rollback. Without pins the verdict is
UNPINNED (exit 4), never VALID.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.provider import connect
from ledger.core.bundle import BundleCheckpoint
from ledger.core.checkpoint import Checkpoint, chain_agency_id, chain_log_id, sign_checkpoint
from ledger.core.envelope import key_id, raw_public_key
from ledger.core.records import Holder
from tests.ledger.chain.anvil_node import AnvilNode
from tests.ledger.verify.audit_support import (
    AGENCY,
    ChainSetup,
    Story,
    anchor,
    deploy,
    make_story,
    person_ref,
    sound_but_version_1,
    trust_toml,
    write_trust,
)

KITLEDGER = Path(sys.executable).with_name("kitledger")


def verify(bundle: bytes, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    """`kitledger verify FILE ARGS --json` as an auditor runs it: exit code and verdict."""
    path = tmp_path / "served.jsonl"
    path.write_bytes(bundle)
    done = subprocess.run([str(KITLEDGER), "verify", str(path), *args, "--json"],
                          capture_output=True, timeout=120, check=False)
    assert b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]
    return done.returncode, json.loads(done.stdout)


def failing(verdict: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in verdict["checks"] if c["passed"] is False}


@pytest.fixture(scope="module")
def setup(anvil: AnvilNode) -> tuple[ChainSetup, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    return deploy(connect(anvil.url, expected_chain_id=anvil.chain_id), key), key


@pytest.fixture
def story(setup: tuple[ChainSetup, Ed25519PrivateKey]) -> Story:
    """A fresh honest history on the module's contract: anchors only grow, so each test's
    story gets a log (key) of its own, registered there."""
    chain, _key = setup
    key = Ed25519PrivateKey.generate()
    chain.admin.register_log(chain_log_id(key_id(key.public_key())), chain_agency_id(AGENCY))
    return make_story(chain, key)


def rewritten(story: Story) -> Story:
    """The operator rebuilds the log with asset 0's check-out going to someone else (same log
    key, same readers), then one more leaf so the new head can be anchored (sizes only grow)."""
    forged = Story(log_key=story.log_key, setup=story.setup, reader_keys=story.reader_keys,
                   devices=story.devices, seq=1000)
    for event in story.events:
        to = event.holder_to
        if event.asset == story.events[1].asset and event.seq == 1:
            to = Holder("person", person_ref("officer-22"))
        forged.custody(event.asset, event.action, event.time, event.reader or "desk-1",
                       event.holder_from, to)
    forged.log.append(b"one more leaf, so the rewritten head has a new size")
    return forged


def test_rewritten_history_reanchored_with_only_its_new_checkpoint_fails_with_pins(
        anvil: AnvilNode, story: Story, tmp_path: Path) -> None:
    forged = rewritten(story)
    assert story.setup is not None
    # The real anchorer anchors the rewritten head on the real contract...
    envelope = sign_checkpoint(Checkpoint(key_id(story.log_key.public_key()), forged.log.size,
                                          forged.log.root(), "2026-02-02T00:00:00.000Z"),
                               story.log_key)
    forged.checkpoints = [BundleCheckpoint(envelope, anchor(story.setup, envelope))]
    bundle = forged.bundle()
    # ...and ships a bundle holding only that checkpoint. Reading the contract from its pinned
    # deployment block finds the earlier anchors the bundle leaves out.
    trust = write_trust(tmp_path, story)
    code, verdict = verify(bundle, tmp_path, "--rpc", anvil.url, "--require-latest", "--trust",
                           trust)
    assert (code, verdict["verdict"]) == (1, "invalid"), verdict
    assert "chain anchored size 6" in failing(verdict)["anchors"]
    # The same pins as flags.
    setup = story.setup
    code, verdict = verify(bundle, tmp_path, "--rpc", anvil.url, "--require-latest",
                           "--log-key", raw_public_key(story.log_key.public_key()).hex(),
                           "--chain-id", str(setup.chain_id), "--contract", setup.admin.address,
                           "--from-block", str(setup.deployment_block), "--no-state")
    assert code == 1 and "chain anchored size 6" in failing(verdict)["anchors"]


def test_invention_in_the_forgers_own_contract_with_fresh_keys_fails_with_pins(
        anvil: AnvilNode, story: Story, tmp_path: Path) -> None:
    honest = story.bundle()
    trust = write_trust(tmp_path, story)
    assert sound_but_version_1(*verify(honest, tmp_path, "--rpc", anvil.url, "--trust", trust))
    # The forger deploys a CustodyAnchor, registers a fresh log key to the agency in it and
    # anchors an invented history there: every check of the bundle itself holds.
    fresh = Ed25519PrivateKey.generate()
    own = deploy(connect(anvil.url, expected_chain_id=anvil.chain_id), fresh)
    invented = make_story(own, fresh).bundle()
    code, verdict = verify(invented, tmp_path, "--rpc", anvil.url, "--require-latest",
                           "--no-state")
    assert (code, verdict["verdict"]) == (4, "unpinned"), verdict  # never VALID without pins
    assert not failing(verdict) and verdict["unpinned"]
    code, verdict = verify(invented, tmp_path, "--rpc", anvil.url, "--require-latest",
                           "--trust", trust)
    assert (code, verdict["verdict"]) == (1, "invalid"), verdict
    assert "pinned log key" in failing(verdict)["trust-roots"]
    assert "log registered to agency none" in failing(verdict)["anchors"]  # pinned contract
    # The operator's own key, anchored in a second contract it deployed.
    second = deploy(connect(anvil.url, expected_chain_id=anvil.chain_id), story.log_key)
    elsewhere = Story(log_key=story.log_key, setup=second, reader_keys=story.reader_keys,
                      devices=story.devices, observations=story.observations,
                      events=story.events, log=story.log)
    for old in story.checkpoints:
        elsewhere.checkpoints.append(BundleCheckpoint(old.envelope,
                                                      anchor(second, old.envelope)))
    code, verdict = verify(elsewhere.bundle(), tmp_path, "--rpc", anvil.url, "--trust", trust)
    assert code == 1 and "expected contract" in failing(verdict)["trust-roots"], verdict


def test_offline_with_a_required_chain_is_not_valid(story: Story, tmp_path: Path) -> None:
    code, verdict = verify(story.bundle(), tmp_path, "--offline", "--trust",
                           write_trust(tmp_path, story))
    assert (code, verdict["verdict"]) == (4, "unpinned"), verdict
    assert any("--rpc" in reason for reason in verdict["unpinned"])


def grown(story: Story) -> Story:
    """The honest log two events and one anchored checkpoint later."""
    store = Holder("location", "store-central")
    jane = Holder("person", person_ref("officer-17"))
    story.custody(story.events[0].asset, "check_out", "2026-01-25T09:00:00.000Z", "desk-1",
                  store, jane)
    story.custody(story.events[0].asset, "check_in", "2026-01-26T09:00:00.000Z", "desk-2",
                  jane, store)
    story.checkpoint("2026-01-27T00:00:00.000Z")
    return story


def test_the_last_verified_checkpoint_catches_forks_and_rollbacks(
        anvil: AnvilNode, story: Story, tmp_path: Path) -> None:
    state = tmp_path / "state"
    relaxed = tmp_path / "relaxed.toml"
    relaxed.write_text(trust_toml(story.log_key, story.setup, required=False))
    offline = ("--offline", "--trust", str(relaxed), "--state", str(state))
    first = story.bundle()
    assert sound_but_version_1(*verify(first, tmp_path, *offline))
    assert len(list(state.glob("log-*.json"))) == 1
    # A fork: the same sizes re-signed over a rewritten log, offline (receipts re-used).
    forked = rewritten(story)
    forked.checkpoints = []
    for old in story.checkpoints:
        size = Checkpoint.from_record(old.envelope.payload).tree_size
        point = Checkpoint(key_id(story.log_key.public_key()), size, forked.log.root(size),
                           "2026-02-03T00:00:00.000Z")
        forked.checkpoints.append(BundleCheckpoint(sign_checkpoint(point, story.log_key),
                                                   old.anchor))
    code, verdict = verify(forked.bundle(), tmp_path, *offline)
    assert code == 1 and "fork" in failing(verdict)["known-checkpoint"], verdict
    # A rollback: a bundle entirely older than what was verified.
    older = story.bundle(checkpoints=story.checkpoints[:1],
                         events=[e for e in story.bundle_events() if e.leaf_index < 6])
    code, verdict = verify(older, tmp_path, *offline)
    assert code == 1 and "older than your last verified" in failing(verdict)["known-checkpoint"]
    assert sound_but_version_1(*verify(older, tmp_path, *offline[:3], "--no-state"))
    # The log grows; a bundle that skips the stored size cannot be tied to it.
    grown(story)
    sizes = [Checkpoint.from_record(c.envelope.payload).tree_size for c in story.checkpoints]
    assert sizes == [6, 12, 14]
    skipping = story.bundle(checkpoints=[story.checkpoints[0], story.checkpoints[2]])
    code, verdict = verify(skipping, tmp_path, *offline)
    assert code == 1 and "since_size=12" in failing(verdict)["known-checkpoint"], verdict
    # What since_size=12 exports: checkpoints from the stored one on, with proofs onward. The
    # node's earlier anchor (size 6) is left out, vouched for by the stored checkpoint.
    since = story.bundle(checkpoints=story.checkpoints[1:])
    trust = write_trust(tmp_path, story)
    online = ("--rpc", anvil.url, "--require-latest", "--trust", trust, "--state", str(state))
    code, verdict = verify(since, tmp_path, *online)
    assert sound_but_version_1(code, verdict), verdict
    stored = json.loads(next(state.glob("log-*.json")).read_text())
    assert stored["size"] == 14
    code, verdict = verify(since, tmp_path, *online[:5], "--no-state")
    assert code == 1 and "chain anchored size 6" in failing(verdict)["anchors"]


def test_an_anchor_naming_another_block_fails_online(anvil: AnvilNode, story: Story,
                                                     tmp_path: Path) -> None:
    """The report prints the block and block hash of each anchor: a node must confirm both."""
    real = story.checkpoints[-1]
    assert real.anchor is not None
    moved = [*story.checkpoints[:-1], BundleCheckpoint(real.envelope, dataclasses.replace(
        real.anchor, block_number=real.anchor.block_number + 1, block_hash=bytes(32)))]
    bundle = story.bundle(checkpoints=moved)
    trust = write_trust(tmp_path, story)
    code, verdict = verify(bundle, tmp_path, "--rpc", anvil.url, "--trust", trust, "--no-state")
    assert code == 1, verdict
    assert f"chain anchored it in block {real.anchor.block_number}" in failing(verdict)["anchors"]
    code, verdict = verify(story.bundle(), tmp_path, "--rpc", anvil.url, "--trust", trust,
                           "--no-state")
    assert sound_but_version_1(code, verdict) and verdict["anchored"][-1] == {
        "size": 12, "block": real.anchor.block_number,
        "block_hash": "0x" + real.anchor.block_hash.hex()}
