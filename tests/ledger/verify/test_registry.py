"""The registry the verdict rests on, from the log (`ledger.verify.registry`).

The corpus (tests/vectors/bundles/) runs the operator's forgeries through `kitledger verify`;
these tests build small logs in memory for what the corpus does not: a log with no registry, a
bundle of an older format, history older than the registry (the backfill), and the verdict's
wording through the real command.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core.bundle import DeviceRegistration, Scope
from ledger.core.bundle_parse import parse_bundle
from ledger.core.encoding import canonical_bytes
from ledger.core.envelope import key_id, raw_public_key
from ledger.core.records import (
    ASSET_REGISTERED,
    CLASS_POLICY,
    READER_REGISTERED,
    READER_REVOKED,
    REGISTRY_OPENED,
    Holder,
    RegistryChains,
)
from ledger.verify import OfflineChainReader, VerificationReport, verify_bundle
from tests.ledger.verify.audit_support import AGENCY, ASSETS, Story, relines

KITLEDGER = Path(sys.executable).with_name("kitledger")
STORE = Holder("location", "store-central")
JANE = Holder("person", "ab" * 32)
REGISTERED = "2025-12-01T00:00:00.000Z"


def _verify(data: bytes) -> VerificationReport:
    bundle = parse_bundle(data)
    return verify_bundle(bundle, OfflineChainReader(bundle))


def _failed(report: VerificationReport) -> set[str]:
    """The checks that failed, less `anchors`: these stories are not anchored on a chain."""
    return {c.name for c in report.checks if c.passed is False} - {"anchors"}


def _reader(chains: RegistryChains, story: Story, reader: str, role: str,
            site: str = "store-central") -> None:
    key = story.reader_keys[reader].public_key()
    story.log_registry(chains.append(READER_REGISTERED, REGISTERED, reader=reader, site=site,
                                     role=role, kid=key_id(key),
                                     public_key=raw_public_key(key).hex()))


def _policy(chains: RegistryChains, story: Story, dual: bool = False) -> None:
    story.log_registry(chains.append(CLASS_POLICY, REGISTERED, **{
        "class": "kit", "dual_signoff": dual, "required_qualification": None,
        "loan_days": None, "disposal_final": True}))


def _tag(chains: RegistryChains, story: Story, asset: str = ASSETS[0]) -> None:
    story.log_registry(chains.append(ASSET_REGISTERED, REGISTERED, asset=asset,
                                     **{"class": "kit"}, epc=_epc(asset)))


def _registered(story: Story) -> RegistryChains:
    """Open the story's registry in its log: desk-1 an issue desk, class kit, the asset's tag."""
    chains = RegistryChains(AGENCY)
    story.log_registry(chains.append(REGISTRY_OPENED, REGISTERED, backfilled=0))
    _reader(chains, story, "desk-1", "issue_desk")
    _policy(chains, story)
    _tag(chains, story)
    return chains


def _story() -> Story:
    story = Story(heads=True)
    story.add_reader("desk-1")
    return story


def _custody(story: Story) -> None:
    """The asset registered and checked out at desk-1, reading its tag."""
    story.custody(ASSETS[0], "register", "2026-01-02T08:00:00.000Z", "desk-1", None, STORE)
    story.custody(ASSETS[0], "check_out", "2026-01-02T09:00:00.000Z", "desk-1", STORE, JANE)


def _epc(asset: str) -> str:
    """The EPC `Story.custody` reads for `asset` (its registered tag here)."""
    return "%024X" % (abs(hash(asset)) % (1 << 96))


def test_a_log_with_its_registry_verifies_and_its_device_list_is_not_used() -> None:
    story = _story()
    _registered(story)
    _custody(story)
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope()))
    assert _failed(report) == set(), report.render()
    assert report.check("registry").passed is True and report.check("registry").items == 4
    assert report.check("device-keys").passed is None
    assert not report.unpinned[1:], report.unpinned  # only "no trust file"


def test_a_log_without_registry_is_unproven_not_valid() -> None:
    story = _story()
    _custody(story)
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope()))
    assert _failed(report) == set(), report.render()
    assert report.check("registry").passed is None
    assert any("holds no registry records" in u for u in report.unpinned)


def test_an_older_format_carries_no_registry_and_is_unproven() -> None:
    story = _story()
    _custody(story)
    story.checkpoint()
    def downgrade(lines: list[bytes]) -> list[bytes]:
        header = json.loads(lines[0])
        assert header["counts"].pop("registry") == 0
        return [canonical_bytes({**header, "v": 2}), *lines[1:]]

    report = _verify(relines(story.bundle(scope=_scope()), downgrade))
    assert _failed(report) == set(), report.render()
    assert any("format version 2" in u for u in report.unpinned)


def test_history_before_the_registry_is_checked_against_the_backfill() -> None:
    story = _story()
    _custody(story)  # leaves 0 and 1: before the registry was logged
    chains = RegistryChains(AGENCY)
    story.log_registry(chains.append(REGISTRY_OPENED, REGISTERED, backfilled=3))
    _reader(chains, story, "desk-1", "issue_desk")
    _policy(chains, story)
    _tag(chains, story)
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope()))
    assert _failed(report) == set(), report.render()
    assert any("2 event(s) logged before the registry" in n for n in report.not_checked)


def test_a_registration_after_the_backfill_does_not_stand_for_older_history() -> None:
    story = _story()
    _custody(story)
    chains = RegistryChains(AGENCY)
    story.log_registry(chains.append(REGISTRY_OPENED, REGISTERED, backfilled=2))
    _policy(chains, story)
    _tag(chains, story)
    _reader(chains, story, "desk-1", "issue_desk")  # not counted by the backfill
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope()))
    assert report.check("event-justification").passed is False
    assert "registered in the log at leaf 5, after the event" in report.check(
        "event-justification").detail


def test_a_revocation_the_bundle_leaves_out_fails_through_the_command(tmp_path: Path) -> None:
    story = _story()
    chains = _registered(story)
    _custody(story)
    story.log_registry(chains.append(READER_REVOKED, "2026-01-03T00:00:00.000Z",
                                     reader="desk-1", reason="lost"))
    story.checkpoint()
    revocation = story.registry[-1]
    story.registry.remove(revocation)  # the operator's bundle leaves it out
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(story.bundle(scope=_scope()))
    done = subprocess.run([str(KITLEDGER), "verify", str(path), "--offline", "--no-state",
                           "--json", "--log-key",
                           raw_public_key(story.log_key.public_key()).hex()],
                          capture_output=True, timeout=60, check=False)
    report = json.loads(done.stdout)
    assert done.returncode == 1, report
    registry = next(c for c in report["checks"] if c["name"] == "registry")
    assert "reader 'desk-1': the log's latest registry record is seq 1" in registry["detail"]


def test_a_key_no_registration_names_is_unknown_whatever_the_device_list_says() -> None:
    story = _story()
    chains = RegistryChains(AGENCY)
    story.log_registry(chains.append(REGISTRY_OPENED, REGISTERED, backfilled=0))
    impostor = Ed25519PrivateKey.generate()
    story.reader_keys["desk-1"], real = impostor, story.reader_keys["desk-1"]
    _reader(chains, story, "desk-1", "issue_desk")  # the log holds the impostor's key...
    story.reader_keys["desk-1"] = real  # ...the reads are signed by the real one
    _policy(chains, story)
    _tag(chains, story)
    _custody(story)
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope(), devices=story.devices))
    assert "unknown key id" in report.check("observation-signatures").detail
    assert "expected no device line for a reader of agency" in report.check(
        "device-keys").detail


def _scope() -> Scope:
    return Scope("asset", (ASSETS[0],))



def test_another_agencys_reader_rests_on_its_device_line_and_is_unproven() -> None:
    """A borrower's return desk reads a lent asset back in: its registration is in the
    borrower's log, so the owner's bundle carries its device line, and says it is unproven."""
    story = _story()
    _registered(story)
    story.add_reader("kent-desk")
    kent = story.devices[-1]
    story.devices[-1] = DeviceRegistration(kent.reader, "kent-police", kent.kid,
                                           kent.public_key, kent.registered)
    _custody(story)
    story.custody(ASSETS[0], "check_in", "2026-01-03T09:00:00.000Z", "kent-desk", JANE,
                  Holder("location", "kent-store"))
    story.checkpoint()
    report = _verify(story.bundle(scope=_scope(), devices=[story.devices[-1]]))
    assert _failed(report) == set(), report.render()
    assert any("of other agencies" in u and "'kent-desk'" in u for u in report.unpinned)
    # The same line claiming the owner's agency is refused: its readers are the log's.
    own = story.bundle(scope=_scope(), devices=[kent])
    assert "expected no device line" in _verify(own).check("device-keys").detail
