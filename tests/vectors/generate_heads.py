"""Regenerate tests/vectors/heads_known_answers.json from the reference head map (run by hand,
review the diff).

    .venv/bin/python tests/vectors/generate_heads.py

Everything comes from tests/ledger/reference_heads.py, never from ledger.core, so the vectors
are an independent oracle for `ledger.core.heads`: maps of 0, 1, 2, 3 and 7 assets, some at a
site, with the root, every entry's index and inclusion path.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "ledger"))

import reference_heads as ref  # noqa: E402  (lives beside the tests that use it)

SITES = [None, "store-central", None, "store-north", "store-central", None, "store-central"]


def _map(count: int) -> dict[str, tuple[int, bytes, str | None]]:
    return {f"urn:epc:id:giai:0614141.{1000 + 7 * i % 11}": (
        i * 3 % 5, hashlib.sha256(b"head %d" % i).digest(), SITES[i]) for i in range(count)}


def _case(count: int) -> dict[str, Any]:
    heads = _map(count)
    entries = ref.entries(heads)
    return {
        "heads": [{"asset": a, "seq": s, "head": h.hex(), "site": site}
                  for a, (s, h, site) in sorted(heads.items())],
        "root": ref.root(heads).hex(),
        "entries": [{"key": k.hex(), "leaf": data.hex(),
                     "path": [p.hex() for p in ref.path(i, heads)]}
                    for i, (k, data) in enumerate(entries)],
    }


def main() -> None:
    document = {"description": "head maps (ledger.core.heads) from the reference oracle",
                "cases": [_case(n) for n in (0, 1, 2, 3, 7)]}
    text = json.dumps(document, indent=1, sort_keys=True) + "\n"
    (HERE / "heads_known_answers.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
