"""Merkle log benchmark: kitledger's log beside pymerkle 7 (in memory), from the same run.

    .venv/bin/python bench/merkle.py            # ours at 1,000,000 and 200,000; pymerkle at 200,000
    .venv/bin/python bench/merkle.py --quick    # smoke run, a few seconds

Each measurement runs in a fresh child process (so peak memory is that implementation's own,
read from ru_maxrss), repeated; the table prints medians and ratios at equal size against the
issue's bar: >= 2x pymerkle's append rate, >= 4x its inclusion-proof rate, >= 1x verification.
pymerkle at 1,000,000 leaves is slow and large (node objects); pass --pymerkle-leaves 1000000
to measure it there anyway.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

Metrics = dict[str, float]
# (label, key, unit; higher is better?, bar as ours/pymerkle at equal size or None)
ROWS: list[tuple[str, str, bool, float | None]] = [
    ("append, one at a time (leaves/s)", "append", True, 2.0),
    ("append_many (leaves/s)", "append_many", True, None),
    ("inclusion proofs generated (/s)", "prove", True, 4.0),
    ("inclusion proofs verified (/s)", "verify", True, 1.0),
    ("consistency proof (us each)", "consistency_us", False, None),
    ("peak memory of the build (MB)", "memory_mb", False, None),
]


def _entries(leaves: int) -> list[bytes]:
    return [b"custody event %d" % i for i in range(leaves)]


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_ours(leaves: int, proofs: int) -> Metrics:
    from ledger.core.merkle import verify_consistency, verify_inclusion
    from ledger.merkle_log import MerkleLog
    from ledger.merkle_nodes import MemoryNodeStore

    entries, rng = _entries(leaves), random.Random(leaves)
    baseline = _maxrss_mb()
    log = MerkleLog(MemoryNodeStore())
    start = time.perf_counter()
    for entry in entries:
        log.append(entry)
    append = _rate(leaves, time.perf_counter() - start)
    memory = _maxrss_mb() - baseline
    bulk = MerkleLog(MemoryNodeStore())
    start = time.perf_counter()
    bulk.append_many(entries)
    append_many = _rate(leaves, time.perf_counter() - start)
    del bulk
    root, indices = log.root(), [rng.randrange(leaves) for _ in range(proofs)]
    start = time.perf_counter()
    paths = [log.inclusion_proof(i) for i in indices]
    prove = _rate(proofs, time.perf_counter() - start)
    hashes = [log.leaf_hash(i) for i in indices]
    start = time.perf_counter()
    for index, leaf, path in zip(indices, hashes, paths, strict=True):
        verify_inclusion(leaf, index, leaves, path, root)
    verify = _rate(proofs, time.perf_counter() - start)
    olds = [rng.randrange(1, leaves) for _ in range(200)]
    start = time.perf_counter()
    cons = [log.consistency_proof(old) for old in olds]
    consistency_us = (time.perf_counter() - start) / len(olds) * 1e6
    verify_consistency(olds[0], leaves, log.root(olds[0]), root, cons[0])
    return {"append": append, "append_many": append_many, "prove": prove, "verify": verify,
            "consistency_us": consistency_us, "memory_mb": memory}


def measure_pymerkle(leaves: int, proofs: int) -> Metrics:
    import pymerkle  # type: ignore[import-untyped]

    entries, rng = _entries(leaves), random.Random(leaves)
    baseline = _maxrss_mb()
    tree = pymerkle.InmemoryTree()
    start = time.perf_counter()
    for entry in entries:
        tree.append_entry(entry)
    append = _rate(leaves, time.perf_counter() - start)
    memory = _maxrss_mb() - baseline
    root, indices = tree.get_root(), [rng.randrange(1, leaves + 1) for _ in range(proofs)]
    start = time.perf_counter()
    paths = [tree.prove_inclusion(i) for i in indices]
    prove = _rate(proofs, time.perf_counter() - start)
    hashes = [tree.get_leaf(i) for i in indices]
    start = time.perf_counter()
    for leaf, path in zip(hashes, paths, strict=True):
        pymerkle.verify_inclusion(leaf, root, path)
    verify = _rate(proofs, time.perf_counter() - start)
    olds = [rng.randrange(1, leaves) for _ in range(200)]
    start = time.perf_counter()
    for old in olds:
        tree.prove_consistency(old)
    consistency_us = (time.perf_counter() - start) / len(olds) * 1e6
    return {"append": append, "append_many": float("nan"), "prove": prove, "verify": verify,
            "consistency_us": consistency_us, "memory_mb": memory}


MEASURES: dict[str, Callable[[int, int], Metrics]] = {
    "ours": measure_ours, "pymerkle": measure_pymerkle,
}


def run_child(impl: str, leaves: int, proofs: int) -> Metrics:
    done = subprocess.run(
        [sys.executable, __file__, "--child", impl, str(leaves), str(proofs)],
        capture_output=True, text=True, check=True,
    )
    metrics: Metrics = json.loads(done.stdout)
    return metrics


def medians(impl: str, leaves: int, proofs: int, repeats: int) -> Metrics:
    runs = [run_child(impl, leaves, proofs) for _ in range(repeats)]
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _fmt(value: float) -> str:
    if value != value:  # NaN: not offered by that implementation
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def table(columns: list[tuple[str, Metrics]], ours: Metrics, theirs: Metrics) -> list[str]:
    header = ["metric", *[name for name, _ in columns], "ratio (equal size)", "bar"]
    lines = [header]
    passed = True
    for label, key, higher, bar in ROWS:
        ratio = ours[key] / theirs[key] if higher else theirs[key] / ours[key]
        verdict = ""
        if bar is not None:
            ok = ratio >= bar
            passed = passed and ok
            verdict = f">= {bar:g}x {'PASS' if ok else 'FAIL'}"
        cells = [_fmt(metrics[key]) for _, metrics in columns]
        lines.append([label, *cells, "-" if ratio != ratio else f"{ratio:.2f}x", verdict])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in lines]
    out.append(f"bar {'met' if passed else 'NOT met'}; ratios > 1 mean kitledger is better "
               "(rates: ours/theirs; time and memory: theirs/ours)")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--pymerkle-leaves", type=int, default=200_000)
    parser.add_argument("--proofs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one run: a smoke test")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        impl, leaves, proofs = args.child
        print(json.dumps(MEASURES[impl](int(leaves), int(proofs))))
        return 0
    if args.quick:
        args.leaves, args.pymerkle_leaves, args.proofs, args.repeats = 20_000, 10_000, 500, 1
    import pymerkle

    small = args.pymerkle_leaves
    theirs = medians("pymerkle", small, max(1, args.proofs // 4), args.repeats)
    ours_small = medians("ours", small, args.proofs, args.repeats)
    columns: list[tuple[str, Metrics]] = []
    if args.leaves != small:
        columns.append((f"ours @{args.leaves:,}", medians("ours", args.leaves, args.proofs,
                                                          args.repeats)))
    columns += [(f"ours @{small:,}", ours_small), (f"pymerkle @{small:,}", theirs)]
    print(f"Merkle log: kitledger vs pymerkle {pymerkle.__version__} (InmemoryTree), "
          f"median of {args.repeats} run(s), each in a fresh process")
    if args.leaves != small:
        print(f"pymerkle measured at {small:,} leaves only (pass --pymerkle-leaves to change); "
              f"ratios compare both at {small:,}")
    print("\n".join(table(columns, ours_small, theirs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
