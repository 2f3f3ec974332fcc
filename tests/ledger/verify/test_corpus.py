"""The committed bundle corpus (tests/vectors/bundles/) through the installed `kitledger verify`.

Each file is verified by the real console script, offline, against the corpus's trust file
(trust.toml, written by the generator: the log key, the chain pins and the witness policy)
unless its entry says `without_trust`, and must give the exit code, the failing checks (exactly
those, each with its phrase), the failed events or the unusable reason that manifest.json
records. The generator is run too, into a temporary
directory, so that the corpus can be rebuilt with fresh keys and still earns the same verdicts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.verify.trust import parse_trust
from tests.paths import VECTORS_DIR

VECTORS = VECTORS_DIR
CORPUS = VECTORS / "bundles"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
KITLEDGER = Path(sys.executable).with_name("kitledger")
VERIFY_TIMEOUT_S = 60
KNOWN_DEFECTS: dict[str, str] = {}
"""Files the verifier gets wrong today; each is a strict xfail, so a fix must remove it here."""


def verify(path: Path, pinned: bool = True) -> tuple[int, dict[str, Any]]:
    """Exit code and JSON report of the manifest's command on PATH (with the trust file of
    PATH's directory unless `pinned` is False)."""
    command = [part.replace("{file}", str(path)) for part in MANIFEST["command"]]
    assert command[0] == "kitledger"
    at = command.index("--trust")
    if pinned:
        command[at + 1] = str(path.parent / MANIFEST["trust"])
    else:
        del command[at:at + 2]
    done = subprocess.run([str(KITLEDGER), *command[1:]], capture_output=True, timeout=
                          VERIFY_TIMEOUT_S, check=False)
    return done.returncode, json.loads(done.stdout)


def assert_verdict(path: Path, expected: dict[str, Any]) -> None:
    code, report = verify(path, pinned=not expected.get("without_trust", False))
    assert (code, report["verdict"]) == (expected["exit"], expected["verdict"]), report
    if expected["exit"] == 2:
        assert expected["reason"] in report["reason"], report["reason"]
        return
    failing = {c["name"]: c["detail"] for c in report["checks"] if c["passed"] is False}
    assert set(failing) == set(expected.get("failing_checks", {})), failing
    for name, phrase in expected.get("failing_checks", {}).items():
        assert phrase in failing[name], (name, failing[name])
    assert sorted(int(leaf) for leaf in report["failed_events"]) == expected.get(
        "failed_events", [])
    if expected["exit"] == 0:
        items = {c["name"]: c["items"] for c in report["checks"] if c["passed"]}
        assert items == expected["passing_checks"]
        assert report["not_checked"], "offline verification says what a node would confirm"
    if expected["exit"] == 4:
        assert report["unpinned"] and not failing, report


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(
        reason=KNOWN_DEFECTS[name], raises=json.JSONDecodeError, strict=True))
    if name in KNOWN_DEFECTS else name for name in sorted(MANIFEST["bundles"])])
def test_committed_bundle_gets_its_verdict(name: str) -> None:
    assert_verdict(CORPUS / name, MANIFEST["bundles"][name])


def test_manifest_and_readme_name_every_file() -> None:
    files = {p.name for p in CORPUS.glob("*.jsonl")}
    pins = parse_trust((CORPUS / MANIFEST["trust"]).read_bytes()).for_agency("met-police")
    assert pins is not None and pins.witnesses is not None
    assert (pins.witnesses.quorum, len(pins.witnesses.keys)) == (2, 3)
    assert files == set(MANIFEST["bundles"])
    readme = (CORPUS / "README.md").read_text()
    for name in files:
        assert f"`{name}`" in readme, name
    valid = (CORPUS / "valid.jsonl").read_bytes()
    assert all((CORPUS / name).read_bytes() != valid for name in files - {"valid.jsonl"})


def test_regenerated_corpus_gets_the_same_verdicts(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(VECTORS / "generate_bundles.py"), "--out",
                    str(tmp_path)], check=True, timeout=120, capture_output=True)
    fresh = json.loads((tmp_path / "manifest.json").read_text())
    assert fresh == MANIFEST, "the generator's expectations changed: regenerate the corpus"
    for name, expected in fresh["bundles"].items():
        if name in KNOWN_DEFECTS:
            continue
        data = (tmp_path / name).read_bytes()
        assert data != (CORPUS / name).read_bytes(), f"{name}: keys are fresh on every run"
        assert_verdict(tmp_path / name, expected)
