"""Regenerate the audit bundle corpus in tests/vectors/bundles/ (run by hand, review the diff).

    .venv/bin/python tests/vectors/generate_bundles.py [--out DIR]

Writes `valid.jsonl`, one file per variant of `bundle_variants.VARIANTS`, `manifest.json`,
the expected verdict of each file, and `witnesses.txt`, the verifier keys of the three witnesses
that cosigned the story's checkpoints (`bundle_witnesses`). Keys are fresh on every run and
only their public halves land in the files, so the bytes change from run to run but the
verdicts do not.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from bundle_story import History, fortnight
from bundle_variants import VARIANTS, Variant
from bundle_witnesses import QUORUM, cosign_history, write_keys

CORPUS = Path(__file__).parent / "bundles"


def manifest_entry(variant: Variant) -> dict[str, Any]:
    verdict = {0: "valid", 1: "invalid", 2: "unusable"}[variant.exit]
    entry: dict[str, Any] = {"what": variant.what, "exit": variant.exit, "verdict": verdict}
    if variant.exit == 1:
        entry["failing_checks"] = variant.failing
        entry["failed_events"] = list(variant.failed_events)
    if variant.unusable:
        entry["reason"] = variant.unusable
    return entry


OFFLINE = ("The anchors are receipts of a throwaway embedded chain that no node serves any more: "
           "verify offline, which checks them against the bundle's own checkpoints and says "
           "what only a node could confirm.")


def items_checked(history: History) -> dict[str, int]:
    """How many items each check of the valid bundle covers, from the story itself."""
    events = len(history.events)
    return {"fingerprint": 1, "device-keys": len(history.devices),
            "checkpoint-signatures": len(history.checkpoints),
            "checkpoint-consistency": len(history.checkpoints) - 1,
            "observation-signatures": len(history.observations), "event-records": events,
            "event-observations": events, "hash-chains": events, "inclusion-proofs": events,
            "anchors": len(history.checkpoints),
            "witness-cosignatures": sum(len(c.cosignatures) for c in history.checkpoints)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path, default=CORPUS, help="directory to write into")
    out: Path = parser.parse_args().out
    history = fortnight()
    witness_keys = cosign_history(history)
    valid = history.bundle()
    out.mkdir(exist_ok=True)
    write_keys(out, witness_keys)
    for stale in out.glob("*.jsonl"):
        stale.unlink()
    for variant in VARIANTS:
        data = variant.make(history, valid)
        assert variant.name == "valid" or data != valid, variant.name
        (out / f"{variant.name}.jsonl").write_bytes(data)
    bundles = {f"{v.name}.jsonl": manifest_entry(v) for v in VARIANTS}
    bundles["valid.jsonl"]["passing_checks"] = items_checked(history)
    manifest = {
        "about": "Expected verdicts of `kitledger verify FILE --offline --json`; see README.md.",
        "command": ["kitledger", "verify", "{file}", "--offline", "--json",
                    "--witness-quorum", str(QUORUM), "{witnesses}"],
        "witnesses": "{witnesses}: `--witness VKEY` for each line of witnesses.txt",
        "offline": OFFLINE,
        "bundles": bundles,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
