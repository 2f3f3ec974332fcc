"""The fault table `make faults` prints: per fault, the runs and what they stored and lost.

Each run adds a `Row` as soon as its end checks are done (before the test asserts), so a
failing or expected-to-fail run is in the table too; the table is the suite's figure, the
tests' verdicts are its pass/fail.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Final

HEADER: Final = ("fault", "runs", "expected", "stored", "lost", "duplicated", "recover s",
                 "broken", "buffered (max)", "anchors lost", "stall s (max per reader)")


@dataclass(frozen=True, slots=True)
class Row:
    fault: str
    expected: int
    stored: int
    lost: int
    duplicated: int
    recoveries: tuple[float | None, ...]
    """Seconds from each restore until every sequence issued by then was stored (None: never)."""
    problems: tuple[str, ...]
    stalls: tuple[tuple[str, float], ...] = ()
    """Per reader, the longest wait of a read for its answer (multi-node runs)."""
    buffered: int = 0
    """Observations waiting in the outboxes when the fault was lifted (where measured)."""
    anchors_lost: int = 0
    """Recorded anchors the service found gone from the chain (moved to its history)."""


ROWS: list[Row] = []


def _recovery(times: list[float | None]) -> str:
    if not times:
        return "-"
    done = [t for t in times if t is not None]
    text = f"{statistics.median(done):.1f}/{max(done):.1f}" if done else ""
    never = len(times) - len(done)
    return f"{text} never {never}".strip() if never else text


def _stalls(runs: list[Row]) -> str:
    worst: dict[str, float] = {}
    for row in runs:
        for reader, wait in row.stalls:
            worst[reader] = max(wait, worst.get(reader, 0.0))
    return ", ".join(f"{reader} {wait:.1f}" for reader, wait in sorted(worst.items())) or "-"


def format_table(rows: list[Row]) -> str:
    """Fault by fault: sums over its runs; recovery as median/max seconds over every restore
    (and how many never recovered); `broken`: runs with any end check failed; `buffered`: the
    largest outbox backlog at a restore, where the fault measures it."""
    by_fault: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_fault[row.fault].append(row)
    lines = [HEADER]
    for fault, runs in by_fault.items():
        lines.append((fault, str(len(runs)), str(sum(r.expected for r in runs)),
                      str(sum(r.stored for r in runs)), str(sum(r.lost for r in runs)),
                      str(sum(r.duplicated for r in runs)),
                      _recovery([t for r in runs for t in r.recoveries]),
                      str(sum(1 for r in runs if r.problems)),
                      str(max(r.buffered for r in runs) or "-"),
                      str(sum(r.anchors_lost for r in runs)), _stalls(runs)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    text = ["  ".join(cell.rjust(w) if i else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(line, widths, strict=True)))
            for line in lines]
    return "\n".join(text)


def format_problems(rows: list[Row]) -> str:
    return "\n".join(f"{row.fault}: {problem}" for row in rows for problem in row.problems)
