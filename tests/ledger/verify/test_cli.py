"""`kitledger verify` end to end: exit codes, text and JSON output, a real anvil node, and a
malicious server (a real HTTP server on loopback) serving doctored bundles."""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.chain.provider import connect
from ledger.cli import main
from ledger.core.bundle import BundleCheckpoint
from ledger.core.checkpoint import Checkpoint, sign_checkpoint
from ledger.core.envelope import key_id
from ledger.core.records import Holder
from tests.ledger.chain.anvil_node import AnvilNode
from tests.ledger.verify.audit_support import (
    VERSION_1_UNPINNED,
    ChainSetup,
    Story,
    deploy,
    edit_json_line,
    make_story,
    relines,
    write_trust,
)
from tests.ledger.verify.audit_support import section_start as start_of


def _anvil_story(anvil: AnvilNode, *, heads: bool) -> Story:
    key = Ed25519PrivateKey.generate()
    setup = deploy(connect(anvil.url, expected_chain_id=anvil.chain_id), key)
    return make_story(setup, key, heads=heads)


@pytest.fixture(scope="module")
def anvil_story(anvil: AnvilNode) -> Story:
    """The log as the API keeps it: each checkpoint commits to the head map."""
    return _anvil_story(anvil, heads=True)


@pytest.fixture(scope="module")
def version_1_story(anvil: AnvilNode) -> Story:
    """A log of record version 1 (no head map): simpler to fork and roll back by hand, and
    every check but completeness holds (so UNPINNED, exit 4)."""
    return _anvil_story(anvil, heads=False)


class BundleServer:
    """The operator's API as an attacker runs it: serves whatever bytes it is given."""

    def __init__(self) -> None:
        self.body = b""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/audit/bundle"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[BundleServer]:
    serving = BundleServer()
    yield serving
    serving.close()


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["verify", *args])
    return code, capsys.readouterr().out


def test_valid_bundle_on_anvil_exits_0(anvil: AnvilNode, anvil_story: Story, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(anvil_story.bundle())
    trust = write_trust(tmp_path, anvil_story)
    code, out = run_cli(capsys, str(path), "--rpc", anvil.url, "--require-latest", "--trust",
                        trust)
    assert code == 0, out
    assert "verdict: VALID" in out and "pass        anchors (2 items)" in out
    block = anvil_story.checkpoints[-1].anchor
    assert block is not None
    assert f"in block {block.block_number} (0x{block.block_hash.hex()})" in out
    # Offline, the anchors the trust file requires cannot be confirmed: not VALID.
    code, out = run_cli(capsys, str(path), "--offline", "--json", "--trust", trust)
    verdict = json.loads(out)
    assert code == 4 and verdict["verdict"] == "unpinned", verdict
    assert any("only a node can confirm" in item for item in verdict["unpinned"])
    relaxed = write_trust(tmp_path, anvil_story, required=False)
    code, out = run_cli(capsys, str(path), "--offline", "--json", "--trust", relaxed)
    verdict = json.loads(out)
    assert code == 0 and verdict["verdict"] == "valid"
    assert any("no node was asked" in item for item in verdict["not_checked"])


def test_tampered_bundle_exits_1_with_reason(anvil: AnvilNode, anvil_story: Story,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    data = anvil_story.bundle()
    first = start_of(data, "events")

    def edit(lines: list[bytes]) -> list[bytes]:
        lines[first] = edit_json_line(lines[first], lambda r: r.update(time=
                                                                       "2026-01-02T07:00:00.000Z"))
        return lines

    path = tmp_path / "bundle.jsonl"
    path.write_bytes(relines(data, edit))
    code, out = run_cli(capsys, str(path), "--rpc", anvil.url, "--trust",
                        write_trust(tmp_path, anvil_story))
    assert code == 1
    assert "FAIL        inclusion-proofs" in out and "expected" in out
    assert "verdict: INVALID" in out


def test_unusable_and_unreachable_exit_codes(anvil_story: Story, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x00\xff not a bundle")
    assert run_cli(capsys, str(garbage), "--offline")[0] == 2
    assert run_cli(capsys, str(tmp_path / "missing.jsonl"), "--offline")[0] == 2
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(anvil_story.bundle())
    from tests.fixtures.ports import free_port

    code, out = run_cli(capsys, str(path), "--rpc", f"http://127.0.0.1:{free_port()}")
    assert code == 3 and "unreachable" in out
    with pytest.raises(SystemExit) as usage:
        main(["verify", str(path)])  # neither --rpc nor --offline
    assert usage.value.code == 2


def test_progress_bar_goes_to_stderr(anvil_story: Story, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(anvil_story.bundle())
    assert main(["verify", str(path), "--offline", "--progress", "--trust",
                 write_trust(tmp_path, anvil_story, required=False)]) == 0
    captured = capsys.readouterr()
    # rich's bars, one per stage, each complete; nothing of them on stdout.
    assert "events" in captured.err and "━" in captured.err and "12/12" in captured.err
    assert "━" not in captured.out


def _forked(story: Story) -> bytes:
    """The same log sizes, re-signed with the real log key, one event rewritten."""
    forged = Story(log_key=story.log_key, setup=story.setup, reader_keys=story.reader_keys,
                   devices=story.devices, seq=500)
    for event in story.events:
        to = event.holder_to
        if event.seq == 1 and event.asset == story.events[0].asset:
            to = Holder("location", "somewhere-else")
        forged.custody(event.asset, event.action, event.time, event.reader or "desk-1",
                       event.holder_from, to)
    forged.checkpoints = []
    for old in story.checkpoints:
        size = Checkpoint.from_record(old.envelope.payload).tree_size
        point = Checkpoint(key_id(story.log_key.public_key()), size, forged.log.root(size),
                           "2026-02-03T00:00:00.000Z")
        forged.checkpoints.append(BundleCheckpoint(sign_checkpoint(point, story.log_key),
                                                   old.anchor))
    return forged.bundle()


def test_malicious_server_is_rejected(anvil: AnvilNode, version_1_story: Story,
                                      server: BundleServer, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    anvil_story = version_1_story
    honest = anvil_story.bundle()
    server.body = honest
    trust = write_trust(tmp_path, anvil_story)
    code, out = run_cli(capsys, server.url, "--rpc", anvil.url, "--require-latest", "--trust",
                        trust)
    assert code == 4 and f"unpinned: {VERSION_1_UNPINNED}" in out, out
    first = start_of(honest, "events")

    def fabricated_proof(lines: list[bytes]) -> list[bytes]:
        lines[first + 1] = edit_json_line(lines[first + 1], lambda r: r["path"].__setitem__(
            0, "ab" * 32))
        return lines

    stale = anvil_story.bundle(checkpoints=anvil_story.checkpoints[:1],
                               events=[e for e in anvil_story.bundle_events()
                                       if e.leaf_index < 6])
    served = {
        "fabricated proof": (relines(honest, fabricated_proof), "inclusion-proofs"),
        "forked log": (_forked(anvil_story), "anchors"),
        "stale checkpoint": (stale, "freshness"),
        "cut off": (honest[: len(honest) // 2], None),
    }
    for name, (body, check) in served.items():
        server.body = body
        code, out = run_cli(capsys, server.url, "--rpc", anvil.url, "--require-latest",
                            "--json", "--trust", trust)
        verdict = json.loads(out)
        if check is None:
            assert code == 2 and verdict["verdict"] == "unusable", name
            continue
        assert code == 1, (name, verdict)
        failing = {c["name"]: c["detail"] for c in verdict["checks"] if c["passed"] is False}
        assert check in failing, (name, failing)
        assert "expected" in failing[check], (name, failing)


def test_anvil_setup_is_a_real_chain(anvil_story: Story) -> None:
    setup: ChainSetup | None = anvil_story.setup
    assert setup is not None and setup.chain_id == 31337
    assert setup.w3.eth.block_number > 0


def test_report_and_epcis_commands(anvil: AnvilNode, anvil_story: Story, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    from tests.ledger.verify.audit_support import ASSETS, PEOPLE, SALT, person_ref

    path = tmp_path / "bundle.jsonl"
    path.write_bytes(anvil_story.bundle())
    names = tmp_path / "names.json"
    names.write_text(json.dumps({"format": "kitledger-reveals", "v": 1, "reveals": [
        {"commitment": person_ref(k), "person": k, "salt": SALT.hex(), "name": v}
        for k, v in PEOPLE.items()]}))
    html, pdf = tmp_path / "report.html", tmp_path / "report.pdf"
    code = main(["report", str(path), "--asset", ASSETS[1], "--rpc", anvil.url,
                 "--html", str(html), "--pdf", str(pdf), "--names", str(names),
                 "--trust", write_trust(tmp_path, anvil_story)])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("VERIFIED: 4 steps")
    assert "PC Jane Doe" in html.read_text() and pdf.read_bytes().startswith(b"%PDF-")
    # The certificate: the pinned chain and contract, each anchor confirmed by the node.
    setup = anvil_story.setup
    assert setup is not None
    page = html.read_text()
    assert '<th scope="row">chain id</th><td class="mono">31337</td>' in page
    assert f'<th scope="row">contract</th><td class="mono">{setup.admin.address}' in page
    assert page.count("<td>by a chain node</td>") == len(anvil_story.checkpoints) >= 1
    assert "receipt in the bundle only" not in page
    # The PDF carries its own proof: the bundle it was verified from and the trust file.
    embedded = subprocess.run(["pdfdetach", "-list", str(pdf)], check=True,
                              capture_output=True, text=True).stdout
    assert "bundle.jsonl" in embedded and "trust.toml" in embedded, embedded
    assert main(["report", str(path), "--asset", "urn:epc:id:giai:0.0", "--offline"]) == 2
    capsys.readouterr()
    # Without trust roots the report cannot say VERIFIED, and the HTML says why.
    assert main(["report", str(path), "--asset", ASSETS[1], "--offline", "--no-state",
                 "--html", str(html)]) == 4
    assert capsys.readouterr().out.startswith("UNPINNED")
    page = html.read_text()
    assert '<div class="banner" role="alert">UNPINNED' in page
    assert "no trust file pinned the log key" in page
    assert main(["epcis", str(path)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["epcisBody"]["eventList"]) == 12


def test_site_report_with_csv(story: Story, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.core.bundle_parse import parse_bundle
    from ledger.report import site_assets

    path = tmp_path / "bundle.jsonl"
    path.write_bytes(story.bundle())
    html, sheet = tmp_path / "site.html", tmp_path / "site.csv"
    code = main(["report", str(path), "--site", "store-central", "--case", "OP-7", "--offline",
                 "--no-state", "--html", str(html), "--csv", str(sheet)])
    assert code == 4 and capsys.readouterr().out.startswith("UNPINNED")  # nothing pinned
    at_store = site_assets(parse_bundle(path.read_bytes()), "store-central")
    page = html.read_text()
    assert "<h1>Site report: store-central, case OP-7</h1>" in page
    assert all(f"Timeline of {asset}" in page for asset in at_store)
    assert page.count("Certificate of the verification process") == 1
    rows = sheet.read_text().splitlines()
    assert rows[0].startswith("asset,seq,time_utc,action,")
    assert {row.split(",")[0] for row in rows[1:]} == set(at_store)


@pytest.mark.parametrize(("args", "said"), [
    (["--asset", "a", "--site", "store-central"], "not both and not neither"),
    ([], "not both and not neither"),
    (["--asset", "a", "--case", "OP\x1b[2J"], "--case: expected 1..128 printable"),
    (["--asset", "a", "--case", "x" * 129], "--case: expected 1..128 printable"),
    (["--asset", "a", "--case", ""], "--case: expected 1..128 printable"),
    (["--site", "nowhere"], "places no asset at site 'nowhere'"),
    (["--site", "x" * 5000], "places no asset at site"),
    (["--asset", "GHOST", "--asset", "GHOST"], "no events of asset 'GHOST'"),
])
def test_report_refuses_what_it_cannot_report(story: Story, tmp_path: Path, args: list[str],
                                              said: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.jsonl"
    path.write_bytes(story.bundle())
    sheet = tmp_path / "out.csv"
    code = main(["report", str(path), *args, "--offline", "--no-state", "--csv", str(sheet)])
    captured = capsys.readouterr()
    assert code == 2 and said in captured.err and not sheet.exists()
    assert "\x1b" not in captured.err  # a hostile label is never echoed to the terminal
