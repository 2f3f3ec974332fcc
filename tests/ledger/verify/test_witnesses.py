"""Split views caught by witnesses: an operator that holds the log key shows two auditors two
forks of one log, each internally consistent and signed; three `kitledger witness serve`
processes each cosign only one fork; under a 2-of-3 policy (given as `--witness` flags, or as the
trust file's `[log.witnesses]`) the fork that cannot reach quorum fails the installed `kitledger
verify` and `kitledger report`, and the other passes the cosignature check. The checkpoints
commit to head maps, so the notes the witnesses cosign carry the `heads` extension line and the
bundles carry both head proofs and cosignatures (format version 2)."""

from __future__ import annotations

import copy
import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.core import note
from ledger.core.bundle import BundleCheckpoint, fast_canonical
from ledger.core.bundle_parse import parse_bundle
from ledger.core.checkpoint import Checkpoint
from ledger.core.envelope import raw_public_key
from ledger.core.records import Holder
from ledger.verify import OfflineChainReader, verify_bundle
from ledger.verify.trust import WitnessKey, WitnessPolicy
from ledger.witness.client import WitnessRefused, request_cosignature
from tests.fixtures.witnesses import KITLEDGER, WitnessProcess, witnesses
from tests.ledger.verify.audit_support import (
    ASSETS,
    ChainSetup,
    Story,
    make_story,
    person_ref,
    relines,
    trust_toml,
)

NAMES = ["witness.north-fire.example", "witness.inspectorate.example", "witness.south.example"]


def _fork(story: Story) -> Story:
    """The same log, the same key, the same history so far: to be extended differently."""
    twin = Story(log_key=story.log_key, reader_keys=dict(story.reader_keys),
                 devices=list(story.devices), observations=list(story.observations),
                 events=list(story.events), checkpoints=list(story.checkpoints),
                 setup=story.setup, seq=story.seq, heads=story.heads,
                 head_maps=list(story.head_maps), leaves=list(story.leaves),
                 event_leaves=list(story.event_leaves), registry=list(story.registry),
                 chains=copy.deepcopy(story.chains))
    twin.log.append_many(story.log_leaves())
    return twin


class SplitViewOperator:
    """A test double of a dishonest operator built from real logs: it signs checkpoints of
    whichever fork it likes, asks witnesses to cosign them, and serves each auditor a bundle of
    the fork meant for them."""

    def __init__(self, story: Story) -> None:
        self.origin = note.log_origin(Checkpoint.from_record(
            story.checkpoints[0].envelope.payload).log_id)
        self.held: dict[str, int] = {}  # witness name -> the size it last cosigned
        self.bundles: dict[str, bytes] = {}

    def checkpoint_note(self, story: Story, item: BundleCheckpoint) -> bytes:
        text = Checkpoint.from_record(item.envelope.payload).note_text()
        return note.Note(text, (note.sign_note(text, self.origin, story.log_key),)).to_bytes()

    def cosign(self, story: Story, witness: WitnessProcess) -> list[str]:
        """Ask `witness` about each of the story's checkpoints not yet cosigned; attach the
        cosignatures; the refusals' reasons, in order."""
        refusals = []
        for position, item in enumerate(story.checkpoints):
            if any(line.split(" ")[1] == witness.name for line in item.cosignatures):
                continue
            size = Checkpoint.from_record(item.envelope.payload).tree_size
            try:
                cosigned = request_cosignature(
                    witness.url, witness.verifier, self.checkpoint_note(story, item),
                    self.held.get(witness.name, 0),
                    lambda old, size=size: story.log.consistency_proof(old, size)
                    if 0 < old < size else [])
            except WitnessRefused as refused:
                refusals.append(f"{refused.status} {refused.reason}")
                continue
            self.held[witness.name] = cosigned.size
            story.checkpoints[position] = replace(
                item, cosignatures=(*item.cosignatures, cosigned.line))
        return refusals

    def serve(self) -> Iterator[str]:
        bundles = self.bundles

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = bundles.get(self.path.rsplit("/", 1)[-1], b"")
                self.send_response(200 if data else 404)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/bundle"
        finally:
            server.shutdown()
            server.server_close()


def verify(source: str, vkeys: list[str], quorum: int) -> tuple[int, dict[str, object]]:
    command = [str(KITLEDGER), "verify", source, "--offline", "--json",
               "--witness-quorum", str(quorum)]
    for vkey in vkeys:
        command += ["--witness", vkey]
    done = subprocess.run(command, capture_output=True, timeout=120, check=False)
    return done.returncode, json.loads(done.stdout)


def cosignature_check(report: dict[str, object]) -> dict[str, object]:
    checks = report["checks"]
    assert isinstance(checks, list)
    return next(c for c in checks if c["name"] == "witness-cosignatures")


SplitView = tuple[SplitViewOperator, list[WitnessProcess], dict[str, list[str]]]


@pytest.fixture(scope="module")
def split_view(tmp_path_factory: pytest.TempPathFactory, embedded_setup: ChainSetup,
               log_key: Ed25519PrivateKey) -> Iterator[SplitView]:
    """Both views anchored too (the contract only checks that sizes grow: Alice's at 20
    leaves, Bob's at 21, the registry's seven included), so only the witnesses can tell them
    apart."""
    tmp_path = tmp_path_factory.mktemp("witnesses")
    honest = make_story(embedded_setup, log_key, heads=True)
    operator = SplitViewOperator(honest)
    log_vkey = note.NoteVerifier(operator.origin, note.ED25519,
                                 raw_public_key(honest.log_key.public_key())).vkey()
    with witnesses(tmp_path, NAMES, [(operator.origin, log_vkey)]) as started:
        for witness in started:  # the shared history: every witness cosigns it
            assert operator.cosign(honest, witness) == []
        forged = _fork(honest)
        store = Holder("location", "store-central")
        honest.custody(ASSETS[0], "check_out", "2026-01-25T09:00:00.000Z", "desk-1", store,
                       Holder("person", person_ref("officer-17")))
        forged.custody(ASSETS[0], "check_out", "2026-01-25T09:00:00.000Z", "desk-1", store,
                       Holder("person", person_ref("officer-22")))
        forged.custody(ASSETS[1], "check_out", "2026-01-25T10:00:00.000Z", "desk-1", store,
                       Holder("person", person_ref("officer-22")))
        honest.checkpoint("2026-01-26T00:00:00.000Z")
        forged.checkpoint("2026-01-26T00:00:00.000Z")
        # Alice's view goes to the first two witnesses, Bob's to the third; then each view is
        # shown to the witnesses that have seen the other.
        first = [operator.cosign(honest, w) for w in started[:2]]
        first.append(operator.cosign(forged, started[2]))
        assert first == [[], [], []]
        refusals = {"alice": operator.cosign(honest, started[2]),
                    "bob": [r for w in started[:2] for r in operator.cosign(forged, w)]}
        operator.bundles = {"alice": honest.bundle(), "bob": forged.bundle()}
        yield operator, started, refusals


def test_split_view_fails_under_two_of_three(split_view: SplitView) -> None:
    operator, started, refusals = split_view
    # Each view's newest checkpoint reached the witnesses that saw it first; the others refused
    # it, saying why: Bob's 21 does not extend the 20 they cosigned; Alice's 20 is below the 21
    # the third witness cosigned.
    assert [r[:9] for r in refusals["bob"]] == ["422 fork:", "422 fork:"]
    assert refusals["alice"] == ["400 old size 21 is above the checkpoint's size 20"]
    vkeys = [w.vkey for w in started]
    for url in operator.serve():
        code, alice = verify(f"{url}/alice", vkeys, quorum=2)
        assert cosignature_check(alice)["passed"] is True, alice
        assert code != 1, json.dumps(alice)
        assert alice["verdict"] in ("valid", "unpinned")
        code, bob = verify(f"{url}/bob", vkeys, quorum=2)
        assert code == 1 and bob["verdict"] == "invalid"
        detail = cosignature_check(bob)["detail"]
        assert "expected cosignatures from 2 of the 3 trusted witnesses, found 1" in str(detail)


def test_unlisted_witness_is_ignored_and_a_bad_cosignature_fails(split_view: SplitView,
                                                                  tmp_path: Path) -> None:
    operator, started, _ = split_view
    alice = operator.bundles["alice"]
    path = tmp_path / "alice.jsonl"
    path.write_bytes(alice)
    # Only the witness that did not cosign alice's newest checkpoint is trusted: no quorum,
    # the other two (now unlisted) cosignatures count for nothing.
    code, report = verify(str(path), [started[2].vkey], quorum=1)
    assert code == 1 and "found 0" in str(cosignature_check(report)["detail"])
    # A listed witness's cosignature with one flipped byte fails the bundle, quorum or not.
    lines = alice.split(b"\n")
    newest = max(i for i, line in enumerate(lines) if b'"cosignatures"' in line)
    record = json.loads(lines[newest])
    first = note.parse_signature_line(record["cosignatures"][0])
    flipped = bytes([first.signature[-1] ^ 1])
    record["cosignatures"][0] = note.NoteSignature(
        first.name, first.key_id, first.signature[:-1] + flipped).line()[:-1]
    forged = relines(alice, lambda ls: [*ls[:newest], fast_canonical(record), *ls[newest + 1:]])
    path.write_bytes(forged)
    code, report = verify(str(path), [w.vkey for w in started], quorum=1)
    assert code == 1 and "does not verify" in str(cosignature_check(report)["detail"])


def test_without_a_policy_cosignatures_are_not_checked(split_view: SplitView,
                                                       tmp_path: Path) -> None:
    operator, _, _ = split_view
    path = tmp_path / "bob.jsonl"
    path.write_bytes(operator.bundles["bob"])
    done = subprocess.run([str(KITLEDGER), "verify", str(path), "--offline", "--json"],
                          capture_output=True, timeout=120, check=False)
    report = json.loads(done.stdout)
    assert cosignature_check(report)["passed"] is None
    assert any("witness" in item for item in report["not_checked"])


def test_the_notes_cosigned_carry_the_heads_line(split_view: SplitView) -> None:
    operator, started, _ = split_view
    for name in ("alice", "bob"):
        bundle = parse_bundle(operator.bundles[name])
        assert bundle.version == 3 and bundle.heads, name
        newest = bundle.checkpoints[-1]
        text = Checkpoint.from_record(newest.envelope.payload).note_text()
        assert text.splitlines()[3].startswith("heads "), text
        signers = []
        for line in newest.cosignatures:  # each verifies over the text with the heads line
            signature = note.parse_signature_line(line)
            witness = next(w for w in started if w.verifier.matches(signature))
            assert note.verify_cosignature(text, signature, witness.verifier) > 0
            signers.append(witness.name)
        assert len(set(signers)) == len(signers) >= 1, (name, signers)


def test_the_trust_files_witness_policy_drives_the_check(split_view: SplitView) -> None:
    operator, started, _ = split_view
    keys = tuple(WitnessKey(w.verifier.name, w.verifier.public_key) for w in started)
    for name, quorum, passed in (("alice", 2, True), ("alice", 3, False), ("bob", 1, True),
                                 ("bob", 2, False)):
        bundle = parse_bundle(operator.bundles[name])
        report = verify_bundle(bundle, OfflineChainReader(bundle),
                               witnesses=WitnessPolicy(quorum, keys))
        assert report.check("witness-cosignatures").passed is passed, (name, quorum)


def _trust_file(path: Path, log_key: Ed25519PrivateKey, started: list[WitnessProcess],
                quorum: int) -> str:
    text = trust_toml(log_key, None) + f"[log.witnesses]\nquorum = {quorum}\n"
    for witness in started:
        text += (f'[[log.witnesses.key]]\nname = "{witness.name}"\n'
                 f'public_key = "{witness.verifier.public_key.hex()}"\n')
    path.write_text(text)
    return str(path)


def test_verify_and_report_take_the_policy_from_the_trust_file(
        split_view: SplitView, log_key: Ed25519PrivateKey, tmp_path: Path) -> None:
    operator, started, _ = split_view
    trust = _trust_file(tmp_path / "trust.toml", log_key, started, quorum=2)
    for name in ("alice", "bob"):
        (tmp_path / f"{name}.jsonl").write_bytes(operator.bundles[name])
    for name, code, verdict in (("alice", 0, "valid"), ("bob", 1, "invalid")):
        path = str(tmp_path / f"{name}.jsonl")
        done = subprocess.run([str(KITLEDGER), "verify", path, "--offline", "--no-state",
                               "--trust", trust, "--json"], capture_output=True, timeout=120,
                              check=False)
        report = json.loads(done.stdout)
        assert (done.returncode, report["verdict"]) == (code, verdict), report
        assert cosignature_check(report)["passed"] is (code == 0), report
        assert next(c for c in report["checks"] if c["name"] == "completeness")["passed"]
        done = subprocess.run([str(KITLEDGER), "report", path, "--asset", ASSETS[0],
                               "--offline", "--no-state", "--trust", trust,
                               "--html", str(tmp_path / f"{name}.html")],
                              capture_output=True, timeout=120, check=False)
        shown = done.stdout.decode()
        assert done.returncode == code, shown + done.stderr.decode()[-2000:]
        assert shown.startswith("VERIFIED" if code == 0 else "NOT VERIFIED"), shown
        # The certificate page: the witness check's result, the quorum and each witness's key.
        page = (tmp_path / f"{name}.html").read_text()
        result = '<span class="ok">passed</span>' if code == 0 else \
            '<span class="fail">FAILED</span>'
        assert f'<td class="check">witness-cosignatures</td><td>witness cosignatures on the ' \
               f'checkpoints</td><td>{result}</td>' in page
        assert f"Witnesses: 2 of {len(started)} must cosign the newest checkpoint." in page
        for witness in started:
            assert (f"<tr><td>{witness.name}</td><td class=\"mono\">"
                    f"{witness.verifier.public_key.hex()}</td></tr>") in page
