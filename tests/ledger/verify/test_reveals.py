"""`kitledger report --names FILE` shows a person only where the reveals file opens their
commitment; one reveal that does not open makes the file unusable (exit 2) and nothing is
printed or written. Run through the installed `kitledger`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.reveals import RevealError, read_reveals
from tests.ledger.verify.audit_support import (
    ASSETS,
    PEOPLE,
    SALT,
    VERSION_1_UNPINNED,
    Story,
    person_ref,
    write_trust,
)
from tests.paths import VECTORS_DIR

KITLEDGER = Path(sys.executable).with_name("kitledger")


def _reveal(person: str, name: str, salt: bytes = SALT, commitment: str | None = None
            ) -> dict[str, str]:
    return {"commitment": commitment or person_ref(person), "person": person, "salt": salt.hex(),
            "name": name}


def _file(reveals: list[dict[str, str]]) -> bytes:
    return json.dumps({"format": "kitledger-reveals", "v": 1, "reveals": reveals}).encode()


def _report(tmp_path: Path, story: Story, names: bytes) -> tuple[int, str, Path]:
    bundle, reveals, html = tmp_path / "bundle.jsonl", tmp_path / "reveals.json", \
        tmp_path / "report.html"
    bundle.write_bytes(story.bundle())
    reveals.write_bytes(names)
    done = subprocess.run([str(KITLEDGER), "report", str(bundle), "--asset", ASSETS[1],
                           "--offline", "--no-state", "--trust",
                           write_trust(tmp_path, story, required=False), "--html", str(html),
                           "--names", str(reveals)], capture_output=True, text=True,
                          timeout=60, check=False)
    return done.returncode, done.stdout, html


def test_reveals_that_open_name_people_beside_their_proven_ids(
        tmp_path: Path, story: Story) -> None:
    code, out, html = _report(tmp_path, story, _file(
        [_reveal(person, name) for person, name in PEOPLE.items()]))
    # The story's checkpoints carry no head map: everything holds but its completeness.
    assert (code, out.split(" ")[0]) == (4, "UNPINNED") and VERSION_1_UNPINNED in out, out
    page = html.read_text()
    assert "PC Jane Doe, person id officer-17" in page
    assert "PC John Roe, person id officer-22" in page


@pytest.mark.parametrize(("reveals", "phrase"), [
    # attack 7: the name file maps officer-17's commitment to another person
    ([_reveal("officer-22", "PC John Roe", commitment=person_ref("officer-17"))],
     "reveal 0: person 'officer-22' and its salt do not open commitment"),
    ([_reveal("officer-17", "PC Jane Doe", salt=b"t" * 16)], "do not open commitment"),
    ([_reveal("officer-17", "PC Jane Doe"), _reveal("officer-17", "PC Someone Else")],
     "revealed twice"),
], ids=["another-person", "wrong-salt", "twice"])
def test_a_reveal_that_does_not_open_is_refused_and_no_name_is_shown(
        tmp_path: Path, story: Story, reveals: list[dict[str, str]], phrase: str) -> None:
    code, out, html = _report(tmp_path, story, _file(reveals))
    assert code == 2 and out.startswith("unusable input: ") and phrase in out, out
    assert not html.exists() and "VERIFIED" not in out


def test_a_plain_commitment_to_name_map_is_refused(tmp_path: Path, story: Story) -> None:
    names = json.dumps({person_ref(p): n for p, n in PEOPLE.items()}).encode()
    code, out, html = _report(tmp_path, story, names)
    assert code == 2 and "kitledger-reveals" in out and not html.exists()


@pytest.mark.parametrize("document", [
    b"[]", b"\xff", b'{"format":"kitledger-reveals","v":1,"reveals":{}}',
    _file([{"commitment": "ab", "person": "p", "salt": "00" * 16, "name": "n"}]),
    _file([{**_reveal("officer-17", "x"), "salt": "zz"}]),
    _file([{**_reveal("officer-17", "x"), "salt": "00"}]),
    _file([{**_reveal("officer-17", "x"), "extra": "1"}]),
])
def test_malformed_reveals_are_refused(document: bytes) -> None:
    with pytest.raises(RevealError):
        read_reveals(document)


def test_reveals_show_name_and_id(story: Any) -> None:
    shown = read_reveals(_file([_reveal("officer-17", "PC Jane Doe")]))
    assert shown == {person_ref("officer-17"): "PC Jane Doe, person id officer-17"}


CORPUS = VECTORS_DIR / "bundles"


@pytest.mark.parametrize(("reveals", "code", "shown"), [
    ("reveals.json", 0, "PC Jane Doe, person id officer-17"),
    ("reveals-wrong-person.json", 2, "person 'officer-22' and its salt do not open"),
])
def test_corpus_reveals(tmp_path: Path, reveals: str, code: int, shown: str) -> None:
    html = tmp_path / "report.html"
    done = subprocess.run([str(KITLEDGER), "report", str(CORPUS / "valid.jsonl"), "--asset",
                           "urn:epc:id:giai:0614141.1002", "--trust", str(CORPUS / "trust.toml"),
                           "--offline", "--no-state", "--html", str(html), "--names",
                           str(CORPUS / reveals)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == code, done.stdout
    if code == 0:
        page = html.read_text()
        assert shown in page and "PC John Roe, person id officer-22" in page
    else:
        assert shown in done.stdout and not html.exists()
