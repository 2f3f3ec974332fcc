"""An event's reads must justify it, and the header's `created` must fit the log state it
carries: each case is a history the operator logged and signed itself (every signature, chain
and proof holds), verified by the installed `kitledger verify` against a trust file pinning
that log's key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.provider import EMBEDDED_URL, connect
from ledger.core.bundle import Scope
from ledger.core.envelope import envelope_hash, sign_envelope
from ledger.core.records import GENESIS_PREV, CustodyEvent, Holder, Observation, event_hash
from tests.ledger.verify.audit_support import (
    AGENCY,
    ASSETS,
    Story,
    deploy,
    person_ref,
    sound_but_version_1,
    trust_toml,
)

KITLEDGER = Path(sys.executable).with_name("kitledger")
CAMERA, TASER = ASSETS[0], ASSETS[1]
TAGS = {CAMERA: "30340242201D8C4000000001", TASER: "30340242201D8C4000000002"}
STORE = Holder("location", "store-central")
OFFICER = Holder("person", person_ref("officer-17"))


def _log(story: Story, asset: str, action: str, time: str, reader: str | None,
         holder_from: Holder | None, holder_to: Holder, reads: tuple[str, ...],
         authorised_by: tuple[str, ...] = ()) -> None:
    previous = [e for e in story.events if e.asset == asset]
    event = CustodyEvent(
        agency=AGENCY, asset=asset, seq=len(previous),
        prev=event_hash(previous[-1]).hex() if previous else GENESIS_PREV, action=action,
        time=time, holder_from=holder_from, holder_to=holder_to, observations=reads,
        authorised_by=authorised_by, reader=reader)
    story.events.append(event)
    story.log.append(event.to_bytes())


def _story(check_out_reads: Any, reader: str | None = "issue-desk") -> Story:
    """The camera and taser registered at the issue desk; then the camera checked out at
    2026-03-05 09:00, citing `check_out_reads(story)`."""
    key = Ed25519PrivateKey.generate()
    story = Story(log_key=key, setup=deploy(connect(EMBEDDED_URL), key))
    story.add_reader("issue-desk")
    story.add_reader("portal-1")
    for asset in (CAMERA, TASER):
        read = story.observe("issue-desk", TAGS[asset], "2026-01-02T08:00:00.000Z")
        _log(story, asset, "register", "2026-01-02T08:00:01.000Z", "issue-desk", None, STORE,
             (read,))
    _log(story, CAMERA, "check_out", "2026-03-05T09:00:00.000Z", reader, STORE, OFFICER,
         check_out_reads(story))
    story.checkpoint("2026-03-05T10:00:00.000Z")
    return story


def _verify(tmp_path: Path, story: Story, **overrides: Any) -> tuple[int, dict[str, Any]]:
    bundle = tmp_path / "bundle.jsonl"
    bundle.write_bytes(story.bundle(scope=Scope("assets", (CAMERA, TASER)), **{
        "created": "2026-03-06T00:00:00.000Z", **overrides}))
    trust = tmp_path / "trust.toml"  # the anchors' receipts are taken as the bundle gives them
    trust.write_text(trust_toml(story.log_key, story.setup, required=False))
    done = subprocess.run([str(KITLEDGER), "verify", str(bundle), "--trust", str(trust),
                           "--offline", "--no-state", "--json"], capture_output=True,
                          timeout=60, check=False)
    return done.returncode, json.loads(done.stdout)


def _failing(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in report["checks"] if c["passed"] is False}


def _camera_read(time: str, reader: str = "issue-desk", epc: str = TAGS[CAMERA]) -> Any:
    return lambda story: (story.observe(reader, epc, time),)


def test_a_read_by_the_events_reader_of_its_tag_just_before_it_justifies_it(
        tmp_path: Path) -> None:
    code, report = _verify(tmp_path, _story(_camera_read("2026-03-05T08:59:58.000Z")))
    assert sound_but_version_1(code, report), _failing(report)
    assert {c["name"] for c in report["checks"]} >= {"event-justification", "header"}


@pytest.mark.parametrize(("reads", "reader", "phrase"), [
    (_camera_read("2026-03-05T08:59:58.000Z", reader="portal-1"), "issue-desk",
     "expected observation"),
    (_camera_read("2026-01-05T09:00:00.000Z"), "issue-desk", "more than 7 days before"),
    (_camera_read("2026-03-05T09:05:00.000Z"), "issue-desk", "more than 120 s after"),
    (_camera_read("2026-03-05T08:59:58.000Z", epc=TAGS[TASER]), "issue-desk",
     "expected a read of the asset's tag 30340242201D8C4000000001"),
    (_camera_read("2026-03-05T08:59:58.000Z"), None, "names no reader"),
], ids=["other-reader", "two-months-earlier", "after-the-event", "other-tag", "no-reader"])
def test_an_unrelated_read_does_not_justify_the_event(
        tmp_path: Path, reads: Any, reader: str | None, phrase: str) -> None:
    code, report = _verify(tmp_path, _story(reads, reader))
    assert (code, report["verdict"]) == (1, "invalid")
    failing = _failing(report)
    assert set(failing) == {"event-justification"}, failing
    assert "event at leaf 2" in failing["event-justification"]
    assert phrase in failing["event-justification"]


def test_a_badge_read_alone_justifies_nothing(tmp_path: Path) -> None:
    def badge(story: Story) -> tuple[str, ...]:
        story.seq += 1
        payload = Observation(device="issue-desk", seq=story.seq,
                              time="2026-03-05T08:59:00.000Z", kind="badge",
                              epc="E2801160600002084A1B0017", antenna=1).to_record()
        envelope = sign_envelope(payload, story.reader_keys["issue-desk"])
        story.observations.append(envelope)
        return (envelope_hash(envelope).hex(),)

    code, report = _verify(tmp_path, _story(badge))
    assert code == 1
    assert "cites badge read" in _failing(report)["event-justification"]


def test_a_bundle_created_before_the_log_state_it_carries_fails(tmp_path: Path) -> None:
    story = _story(_camera_read("2026-03-05T08:59:58.000Z"))
    code, report = _verify(tmp_path, story, created="2026-03-05T09:30:00.000Z")
    assert (code, _failing(report)) == (1, {"header": (
        "header created 2026-03-05T09:30:00.000Z, before the newest checkpoint (size 3, "
        "2026-03-05T10:00:00.000Z) it carries")})


@pytest.mark.parametrize("created", ["2026-03-06", "2026-03-06T00:00:00Z", "yesterday"])
def test_a_created_time_not_in_the_record_format_is_unusable(
        tmp_path: Path, created: str) -> None:
    code, report = _verify(tmp_path, _story(_camera_read("2026-03-05T08:59:58.000Z")),
                           created=created)
    assert (code, report["verdict"]) == (2, "unusable")
    assert "created" in report["reason"]
