"""Tiled log benchmark: writing a log as C2SP tiles, and proofs computed from a tiles directory.

    .venv/bin/python bench/tiles.py                 # 1,000,000 leaves
    .venv/bin/python bench/tiles.py --leaves 50000  # smoke run

Builds an in-memory log, writes every hash tile (as `kitledger tiles export` lays them out,
without the database or entry bundles) to a temporary directory, then computes inclusion and
consistency proofs from that directory with `ledger.tiled_log.TiledLog`, each fetch a file read
(one fresh reader per proof, so no tile is cached between proofs: what an auditor checking
one bundle event pays), and checks them against the log's own.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from ledger.core.tiles import tile_coords, tiles_for_size
from ledger.merkle_log import MerkleLog
from ledger.merkle_nodes import MemoryNodeStore
from ledger.tiled_log import DirectorySource, TiledLog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--proofs", type=int, default=2_000)
    args = parser.parse_args()
    store = MemoryNodeStore()
    log = MerkleLog(store)
    log.append_many(i.to_bytes(8, "big") for i in range(args.leaves))
    size = log.size
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        files = 0
        for ref in tiles_for_size(size):
            target = root / ref.path()
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"".join(store.get_many(tile_coords(ref))))
            files += 1
        written = time.perf_counter() - started
        source = DirectorySource(root)
        rng = random.Random(7)
        started = time.perf_counter()
        for _ in range(args.proofs):
            index = rng.randrange(size)
            assert TiledLog(source, size).inclusion_proof(index, size) == log.inclusion_proof(
                index, size)
        inclusion = time.perf_counter() - started
        started = time.perf_counter()
        for _ in range(args.proofs):
            old = rng.randrange(1, size)
            assert TiledLog(source, size).consistency_proof(old, size) == log.consistency_proof(
                old, size)
        consistency = time.perf_counter() - started
    print(f"{size:,} leaves: {files:,} tile files written in {written:.2f} s")
    print(f"inclusion proofs from tiles: {args.proofs / inclusion:,.0f}/s "
          f"({inclusion / args.proofs * 1e3:.2f} ms each, fresh reader)")
    print(f"consistency proofs from tiles: {args.proofs / consistency:,.0f}/s "
          f"({consistency / args.proofs * 1e3:.2f} ms each, fresh reader)")


if __name__ == "__main__":
    main()
