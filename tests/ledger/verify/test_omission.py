"""Leaving anything out of the corpus bundle is caught, whatever is left out.

The committed corpus bundle (tests/vectors/bundles/valid.jsonl: three assets, ten events, the
newest checkpoint committing to the head map) with any non-empty set of events, or of head
lines, deleted and the bundle re-sealed as a forger would: the verifier never says VALID, and
when only assets' last events go (no gap in any hash chain) it is the completeness check that
says why. The named attacks run through the `kitledger` command in test_corpus.py.
A version 1 bundle, whose checkpoints commit to no head map, is still read, its completeness
"not checked" and its verdict UNPINNED at best: nothing proves it whole.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.chain.provider import EMBEDDED_URL, connect
from ledger.core.bundle import FingerprintHasher, Scope
from ledger.core.bundle_parse import parse_bundle
from ledger.core.encoding import canonical_bytes
from ledger.core.records import Holder
from ledger.verify import OfflineChainReader, VerificationReport, verify_bundle
from tests.ledger.verify.audit_support import (
    ASSETS,
    VERSION_1_UNPINNED,
    deploy,
    make_story,
    person_ref,
    write_trust,
)
from tests.paths import VECTORS_DIR

VALID = (VECTORS_DIR / "bundles" / "valid.jsonl").read_bytes()
LINES = VALID.split(b"\n")[:-2]
HEADER = json.loads(LINES[0])
COUNTS = HEADER["counts"]
EVENTS_AT = 1 + sum(COUNTS[n] for n in ("devices", "checkpoints", "consistency",
                                         "observations"))
REGISTRY_AT = EVENTS_AT + 2 * COUNTS["events"]
HEADS_AT = REGISTRY_AT + 2 * COUNTS["registry"]
ASSET_OF = [json.loads(LINES[EVENTS_AT + 2 * i])["asset"] for i in range(COUNTS["events"])]
KITLEDGER = Path(sys.executable).with_name("kitledger")
PROPERTY = settings(max_examples=40, deadline=None)


def _resealed(events: list[int], heads: list[int]) -> bytes:
    lines = [*LINES[:EVENTS_AT]]
    for i in events:
        lines += LINES[EVENTS_AT + 2 * i:EVENTS_AT + 2 * i + 2]
    lines += LINES[REGISTRY_AT:HEADS_AT]  # the registry records the events rest on, all kept
    lines += [LINES[HEADS_AT + i] for i in heads]
    header = {**HEADER, "counts": {**COUNTS, "events": len(events), "heads": len(heads)}}
    lines[0] = canonical_bytes(header)
    hasher = FingerprintHasher()
    for line in lines:
        hasher.add(line)
    end = canonical_bytes({"type": "bundle-end", "lines": len(lines),
                           "fingerprint": hasher.digest().hex()})
    return b"\n".join([*lines, end]) + b"\n"


def _verify(data: bytes) -> VerificationReport:
    bundle = parse_bundle(data)
    return verify_bundle(bundle, OfflineChainReader(bundle))


def test_the_untouched_bundle_is_complete() -> None:
    report = _verify(_resealed(list(range(COUNTS["events"])), list(range(COUNTS["heads"]))))
    assert report.ok and report.check("completeness").passed is True


@PROPERTY
@given(st.sets(st.integers(0, COUNTS["events"] - 1), min_size=1))
def test_omitting_any_events_is_caught(omitted: set[int]) -> None:
    kept = [i for i in range(COUNTS["events"]) if i not in omitted]
    report = _verify(_resealed(kept, list(range(COUNTS["heads"]))))
    assert not report.ok
    tails_only = all(all(j in omitted for j in range(i, COUNTS["events"])
                         if ASSET_OF[j] == ASSET_OF[i]) for i in omitted)
    if tails_only:  # no gap in any chain: only the head map shows what is missing
        assert report.check("completeness").passed is False


@PROPERTY
@given(st.sets(st.integers(0, COUNTS["heads"] - 1), min_size=1))
def test_omitting_any_head_lines_is_caught(omitted: set[int]) -> None:
    kept = [i for i in range(COUNTS["heads"]) if i not in omitted]
    report = _verify(_resealed(list(range(COUNTS["events"])), kept))
    # An asset's or a site's entry is the scope's (completeness); a registry subject's is the
    # registry's; a neighbour may serve either.
    assert False in (report.check("completeness").passed, report.check("registry").passed)


def test_a_version_1_bundle_is_read_with_completeness_not_checked(bundle: bytes) -> None:
    lines = bundle.split(b"\n")[:-2]
    header = json.loads(lines[0])
    assert header["counts"].pop("heads") == 0  # the audit story's checkpoints have no map
    assert header["counts"].pop("registry") == 0  # so nothing could prove a registry either
    lines[0] = canonical_bytes({**header, "v": 1})
    hasher = FingerprintHasher()
    for line in lines:
        hasher.add(line)
    end = canonical_bytes({"type": "bundle-end", "lines": len(lines),
                           "fingerprint": hasher.digest().hex()})
    report = _verify(b"\n".join([*lines, end]) + b"\n")
    assert report.ok and report.verdict == "unpinned"
    assert report.check("completeness").passed is None
    assert any("left out" in item for item in report.not_checked)
    assert VERSION_1_UNPINNED in report.unpinned_reasons


def test_an_operator_signing_version_1_checkpoints_over_an_omission_never_gets_valid(
        tmp_path: Path) -> None:
    """The operator, holding the log key, signs every checkpoint as record version 1 (no head
    map) and exports a bundle of one asset without its last event: every check that can run
    passes, so `kitledger verify`, the log key pinned, answers UNPINNED (exit 4), never VALID."""
    key = Ed25519PrivateKey.generate()
    story = make_story(deploy(connect(EMBEDDED_URL), key), key, heads=False)
    asset = ASSETS[0]
    events = [logged for event, logged in zip(story.events, story.bundle_events(), strict=True)
              if event.asset == asset]
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(story.bundle(scope=Scope("asset", (asset,)), events=events[:-1]))
    done = subprocess.run([str(KITLEDGER), "verify", str(path), "--offline", "--no-state",
                           "--json", "--trust", write_trust(tmp_path, story, required=False)],
                          capture_output=True, timeout=120, check=False)
    verdict = json.loads(done.stdout)
    assert (done.returncode, verdict["verdict"]) == (4, "unpinned"), verdict
    assert verdict["unpinned"] == [VERSION_1_UNPINNED]


def test_a_log_that_stops_committing_to_its_head_map_fails() -> None:
    """The operator, holding the log key, signs its next checkpoint as record version 1, with
    no head map, hoping the verifier then reads omissions as "not checked": the earlier
    checkpoint's commitment to a head map says the log has one, so the downgrade fails."""
    story = make_story(None, Ed25519PrivateKey.generate(), heads=True)
    assert _verify(story.bundle()).check("completeness").passed is True
    store = Holder("location", "store-central")
    story.custody(ASSETS[0], "check_out", "2026-01-24T09:00:00.000Z", "desk-1", store,
                  Holder("person", person_ref("officer-17")))
    story.heads = False  # the next checkpoint is signed without a head map
    story.checkpoint("2026-01-25T00:00:00.000Z")
    report = _verify(story.bundle(head_map=None))
    assert report.check("completeness").passed is False and not report.ok
    assert "found version 1" in report.check("completeness").detail
