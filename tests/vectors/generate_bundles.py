"""Regenerate the audit bundle corpus in tests/vectors/bundles/ (run by hand, review the diff).

    .venv/bin/python tests/vectors/generate_bundles.py [--out DIR]

Writes `valid.jsonl`, one file per variant of `bundle_variants.VARIANTS`, `trust.toml` (the
auditor's trust file: the log's public key, the contract, and the three witnesses that cosigned
the story's checkpoints with the policy of 2 of them, `bundle_witnesses`) and `manifest.json`,
the expected verdict of each file, and the reveals files of `reveals_files()`. Keys are fresh
on every run and only their public halves land in the files, so the bytes change from run to
run but the verdicts do not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bundle_story import SALT, History, fortnight, person
from bundle_variants import VARIANTS, Variant
from bundle_witnesses import QUORUM, cosign_history

from ledger.core.envelope import raw_public_key

CORPUS = Path(__file__).parent / "bundles"


README_MARKS = ("<!-- variants -->\n", "<!-- /variants -->\n")
"""Where in bundles/README.md the generator writes the variants' table."""


PIPE = "\\|"
"""A `|` inside a Markdown table cell."""


def variants_table() -> str:
    """The README's table of the variants, from their definitions."""
    rows = ["| file | tampering | exit | checks that fail (phrase) | failed events |",
            "| --- | --- | --- | --- | --- |"]
    for variant in VARIANTS:
        if variant.unusable:
            failing = f"unusable (`{variant.unusable}`)"
        else:
            failing = "; ".join(f"{name} (`{phrase}`)"
                                for name, phrase in variant.failing.items()) or "none"
        events = ", ".join(str(e) for e in variant.failed_events) or "none"
        trust = "" if variant.pinned else " (without the trust file)"
        failing = failing.replace("|", PIPE)
        rows.append(f"| `{variant.name}.jsonl` | {variant.what}{trust} | {variant.exit} | "
                    f"{failing} | {events} |")
    return "\n".join(rows) + "\n"


def write_readme(readme: Path) -> None:
    text = readme.read_text()
    start = text.index(README_MARKS[0]) + len(README_MARKS[0])
    readme.write_text(text[:start] + variants_table() + text[text.index(README_MARKS[1]):])


def manifest_entry(variant: Variant) -> dict[str, Any]:
    verdict = {0: "valid", 1: "invalid", 2: "unusable", 4: "unpinned"}[variant.exit]
    entry: dict[str, Any] = {"what": variant.what, "exit": variant.exit, "verdict": verdict}
    if not variant.pinned:
        entry["without_trust"] = True
    if variant.exit == 1:
        entry["failing_checks"] = variant.failing
        entry["failed_events"] = list(variant.failed_events)
    if variant.unusable:
        entry["reason"] = variant.unusable
    return entry


OFFLINE = ("The anchors are receipts of a throwaway embedded chain that no node serves any more: "
           "verify offline, which checks them against the bundle's own checkpoints and says "
           "what only a node could confirm. trust.toml pins the log key, the contract (not "
           "required, as no node can confirm it) and the witness policy (2 of the 3 witnesses "
           "that cosigned every checkpoint); entries marked without_trust are verified "
           "without --trust FILE. --no-state judges each file alone.")
COMMAND = ["kitledger", "verify", "{file}", "--trust", "{trust}", "--offline", "--no-state",
           "--json"]


def items_checked(history: History) -> dict[str, int]:
    """How many items each check of the valid bundle covers, from the story itself."""
    events = len(history.events)
    return {"fingerprint": 1, "trust-roots": 1, "registry": len(history.registry),
            "checkpoint-signatures": len(history.checkpoints),
            "checkpoint-consistency": len(history.checkpoints) - 1,
            "observation-signatures": len(history.observations), "event-records": events,
            "event-observations": events, "event-justification": events, "header": 1,
            "hash-chains": events, "inclusion-proofs": events,
            "completeness": 3, "anchors": len(history.checkpoints), "corrections": 0,
            "witness-cosignatures": sum(len(c.cosignatures) for c in history.checkpoints)}


NAMES = {"officer-17": "PC Jane Doe", "officer-22": "PC John Roe", "sergeant-5": "Sgt Ann Poe"}
"""The names the agency knows the story's people by (the log holds only their commitments)."""


def reveals_files() -> dict[str, bytes]:
    """`reveals.json`, opening every person commitment of the story, and
    `reveals-wrong-person.json`, which reveals officer-17's commitment as officer-22 (a name
    file that shows the wrong person): `kitledger report --names` must refuse it (exit 2)."""
    def document(pairs: list[tuple[str, str]]) -> bytes:
        reveals = [{"commitment": person(committed).ref, "person": shown, "salt": SALT.hex(),
                    "name": NAMES[shown]} for committed, shown in pairs]
        return (json.dumps({"format": "kitledger-reveals", "v": 1, "reveals": reveals},
                           indent=1) + "\n").encode()

    return {"reveals.json": document([(p, p) for p in NAMES]),
            "reveals-wrong-person.json": document([("officer-17", "officer-22")])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help="directory to write into")
    out: Path = parser.parse_args().out
    history = fortnight()
    witness_keys = cosign_history(history)
    valid = history.bundle()
    out.mkdir(exist_ok=True)
    for stale in out.glob("*.jsonl"):
        stale.unlink()
    for variant in VARIANTS:
        data = variant.make(history, valid)
        assert variant.name == "valid" or data != valid, variant.name
        (out / f"{variant.name}.jsonl").write_bytes(data)
    for name, data in reveals_files().items():
        (out / name).write_bytes(data)
    (out / "trust.toml").write_text(history.trust_file(
        [(key.name, raw_public_key(key.private_key.public_key())) for key in witness_keys],
        QUORUM))
    bundles = {f"{v.name}.jsonl": manifest_entry(v) for v in VARIANTS}
    for variant in VARIANTS:
        if variant.exit == 0:
            bundles[f"{variant.name}.jsonl"]["passing_checks"] = items_checked(history)
    manifest = {
        "about": "Expected verdicts of `kitledger verify FILE --trust trust.toml --offline "
                 "--no-state --json`; see README.md.",
        "command": COMMAND,
        "trust": "trust.toml",
        "offline": OFFLINE,
        "bundles": bundles,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if out == CORPUS:
        write_readme(CORPUS / "README.md")


if __name__ == "__main__":
    main()
