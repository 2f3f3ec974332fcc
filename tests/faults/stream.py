"""The known stream of reads the fault suite plays: one scenario file per demo desk reader.

The issue desk holds PC Adams's badge in its field for the whole run (a badge session is open
after every agent start) and sees each cycling asset in turn: a check-out; the return desk sees
the same assets half a cycle later: a check-in. So custody events, hash chains and the log grow
all through a run, and anchoring has work. Around them, waves of tags that are neither assets
nor badges come and go (sightings): each visit is an arrival and a departure, the bulk of the
observations. Each EPC of the noise makes one visit, so nothing depends on timing between
readers; the custody events do (a check-in seen before its check-out is "already in store"),
which is why the end checks compare the log with the events actually stored, not with a count
fixed in advance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from demo.seed import DEMO_READERS, DemoReader
from hardware.simulator.scenario import MAX_READS_PER_SECOND, MAX_TAGS

BADGE: Final = "E28011900000000000000A01"
"""PC Adams's badge (demo registry): may take radios and body cameras."""
CYCLING_ASSETS: Final = ("341800000000000000000101", "341800000000000000000102",
                         "341800000000000000000103", "341800000000000000000104",
                         "341800000000000000000401")
"""radio-1..4 and bodycam-1 of the demo registry: no qualification, no dual sign-off."""
ASSET_DWELL_S: Final = 1.5
START_S: Final = 3.0
"""The first tags arrive this long after the simulator starts (the agent needs ~2 s)."""
READS_PER_VISIBLE_TAG: Final = 5.0
"""Reads per second each visible tag gets: twice what `min_reads = 2` within 1 s needs."""

DESKS: Final = tuple(r for r in DEMO_READERS if r.reader_id in ("issue-desk", "return-desk"))
"""The readers the suite runs (the demo's portal is registered but has no agent here)."""


@dataclass(frozen=True, slots=True)
class StreamShape:
    """How much the readers see: `duration_s` of waves of `wave` noise tags every `every_s`,
    each present `dwell_s`; the assets cycle every `cycle_s`."""

    duration_s: float = 20.0
    wave: int = 8
    every_s: float = 0.5
    dwell_s: float = 1.5
    cycle_s: float = 8.0

    @property
    def end_s(self) -> float:
        return START_S + self.duration_s + max(self.dwell_s, ASSET_DWELL_S)

    @property
    def noise_visits(self) -> int:
        return int(self.duration_s / self.every_s) * self.wave


QUICK: Final = StreamShape()
"""About 1,300 observations over 20 s: enough for every fault to land mid-stream."""
HEAVY: Final = StreamShape(duration_s=55.0, wave=40, every_s=0.25, dwell_s=1.5)
"""About 17,600 observations per reader over 55 s (8,800 noise tags each, within the
simulator's 10,000): a 45 s partition buffers about 28,000 across the two readers."""


def _tag(epc: str, arrive: float, depart: float | None, rssi: int = -50) -> dict[str, Any]:
    tag: dict[str, Any] = {"epc": epc, "rssi": {"1": rssi}, "arrive": round(arrive, 3)}
    if depart is not None:
        tag["depart"] = round(depart, 3)
    return tag


def scenario(reader: DemoReader, number: int, shape: StreamShape) -> dict[str, Any]:
    """The scenario (simulator JSON) of desk `reader`, the `number`th of `DESKS`."""
    tags: list[dict[str, Any]] = []
    issuing = reader.reader_id == "issue-desk"
    if issuing:
        tags.append(_tag(BADGE, 0.0, None, rssi=-45))
    offset = 0.0 if issuing else shape.cycle_s / 2
    gap = shape.cycle_s / len(CYCLING_ASSETS)
    cycles = int(shape.duration_s / shape.cycle_s) + 1
    for cycle in range(cycles):
        for i, epc in enumerate(CYCLING_ASSETS):
            at = START_S + offset + cycle * shape.cycle_s + i * gap
            if at < START_S + shape.duration_s:
                tags.append(_tag(epc, at, at + ASSET_DWELL_S))
    waves = int(shape.duration_s / shape.every_s)
    for w in range(waves):
        at = START_S + w * shape.every_s
        for k in range(shape.wave):
            epc = f"3018{number:04x}{w * shape.wave + k:016x}"
            tags.append(_tag(epc, at, at + shape.dwell_s))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"stream of {len(tags)} tags exceeds the simulator's {MAX_TAGS}")
    visible = shape.wave * (shape.dwell_s / shape.every_s + 1) + len(CYCLING_ASSETS) + 1
    rate = min(MAX_READS_PER_SECOND, max(100.0, visible * READS_PER_VISIBLE_TAG))
    return {"protocol": reader.protocol, "reads_per_second": rate, "seed": number + 1,
            "tags": tags}


def write_scenario(path: Path, reader: DemoReader, number: int, shape: StreamShape) -> Path:
    path.write_text(json.dumps(scenario(reader, number, shape)))
    return path
