"""Scenario scripts for the reader simulator: a tag population over time, faults and events.

Format (JSON, or TOML when the file name ends in .toml; every key optional except `tags`):

    protocol = "thingmagic"          # thingmagic, r200, r2000, chafon, llrp (command line wins)
    reads_per_second = 200           # tag reads streamed while tags are in the field
    seed = 1                         # makes fault injection reproducible

    [[tags]]
    epc = "urn:epc:id:giai:0614141.5678"   # a pure-identity URI or 8..124 hex digits
    rssi = { "1" = -55, "2" = -70 }        # dBm per antenna that sees the tag
    arrive = 0.0                           # seconds after start
    depart = 30.0                          # omit: stays forever
    locked = false                         # true: its EPC bank is locked (a rewrite fails)

    [faults]
    split_writes = true     # cut every write at random byte boundaries
    garbage_every = 0       # after every Nth frame, 1..16 random bytes (0 = never)
    corrupt_every = 0       # flip one byte of every Nth frame (bad checksum)
    truncate_every = 0      # send only a prefix of every Nth frame

    [[events]]
    at = 5.0
    action = "reset"        # reset | unplug (with duration) | garbage (with count)
    duration = 1.0          #   | temperature (with value, degrees Celsius: overheating)

Payloads containing start and end byte values come from the tags themselves: give a tag an
EPC such as "FFBB7EA0FF7EBB00A0FFFF7E". Unknown keys are refused by name so a typo never
silently changes a demo.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reader_agent.epc import EpcError, encode_pure_uri

from ledger.core.bounds import MAX_EPC_BYTES, MIN_RSSI_DBM

MAX_SCENARIO_BYTES = 1 << 20
"""A scenario of 10,000 tags is about 700 KB of TOML; larger is a mistake, not a demo."""
MAX_TAGS = 10_000
MAX_EVENTS = 1_000
MAX_READS_PER_SECOND = 5_000
"""Five times the fastest real reader (about 1,100 reads/s)."""
ACTIONS = frozenset({"reset", "unplug", "garbage", "temperature"})
PROTOCOLS = ("thingmagic", "r200", "r2000", "chafon", "llrp")
"""The reader families the simulator plays: the serial ones of `hardware.simulator.models.MODELS`
over a pseudo-terminal, and LLRP over TCP (`hardware.simulator.llrp`)."""


class ScenarioError(ValueError):
    """A scenario script that cannot be run as written."""


@dataclass(frozen=True, slots=True)
class TagSpec:
    epc: bytes
    rssi: dict[int, int]
    arrive: float = 0.0
    depart: float | None = None
    locked: bool = False

    def present(self, t: float) -> bool:
        return self.arrive <= t and (self.depart is None or t < self.depart)


@dataclass(frozen=True, slots=True)
class Faults:
    split_writes: bool = False
    garbage_every: int = 0
    corrupt_every: int = 0
    truncate_every: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    action: str
    duration: float = 1.0
    count: int = 64
    value: float = 0.0


@dataclass(frozen=True, slots=True)
class Scenario:
    tags: tuple[TagSpec, ...] = ()
    protocol: str = "thingmagic"
    reads_per_second: float = 200.0
    seed: int = 1
    faults: Faults = field(default_factory=Faults)
    events: tuple[Event, ...] = ()


def _keys(obj: Any, where: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where} must be a table/object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {unknown}; allowed {sorted(allowed)}")
    return obj


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ScenarioError(f"{where} must be a number in {low}..{high}, found {value!r:.40}")
    return float(value)


def parse_epc(text: Any, where: str = "epc") -> bytes:
    if not isinstance(text, str) or len(text) > 128:
        raise ScenarioError(f"{where} must be a string of at most 128 characters")
    if text.startswith("urn:"):
        try:
            return encode_pure_uri(text)
        except EpcError as exc:
            raise ScenarioError(f"{where}: {exc}") from None
    try:
        epc = bytes.fromhex(text)
    except ValueError:
        raise ScenarioError(f"{where}: {text[:40]!r} is neither a URI nor hex") from None
    if not 4 <= len(epc) <= MAX_EPC_BYTES or len(epc) % 2:
        raise ScenarioError(f"{where}: an EPC is 2..31 whole words")
    return epc


def _tag(obj: Any, i: int) -> TagSpec:
    where = f"tags[{i}]"
    item = _keys(obj, where, {"epc", "rssi", "arrive", "depart", "locked"})
    rssi_in = _keys(item.get("rssi", {"1": -60}), f"{where}.rssi", {str(a) for a in range(1, 17)})
    rssi = {int(a): int(_number(v, f"{where}.rssi", MIN_RSSI_DBM, 0)) for a, v in rssi_in.items()}
    depart, locked = item.get("depart"), item.get("locked", False)
    if not isinstance(locked, bool):
        raise ScenarioError(f"{where}.locked must be true or false")
    return TagSpec(parse_epc(item.get("epc"), f"{where}.epc"), rssi,
                   _number(item.get("arrive", 0.0), f"{where}.arrive", 0, 1e6),
                   None if depart is None else _number(depart, f"{where}.depart", 0, 1e6),
                   locked)


def scenario_from_dict(data: Any) -> Scenario:
    top = _keys(data, "scenario",
                {"protocol", "reads_per_second", "seed", "tags", "faults", "events"})
    tags_in, events_in = top.get("tags", []), top.get("events", [])
    if not isinstance(tags_in, list) or len(tags_in) > MAX_TAGS:
        raise ScenarioError(f"tags must be a list of at most {MAX_TAGS}")
    if not isinstance(events_in, list) or len(events_in) > MAX_EVENTS:
        raise ScenarioError(f"events must be a list of at most {MAX_EVENTS}")
    f = _keys(top.get("faults", {}), "faults",
              {"split_writes", "garbage_every", "corrupt_every", "truncate_every"})
    faults = Faults(bool(f.get("split_writes", False)),
                    *(int(_number(f.get(k, 0), f"faults.{k}", 0, 1e6))
                      for k in ("garbage_every", "corrupt_every", "truncate_every")))
    events = []
    for i, obj in enumerate(events_in):
        e = _keys(obj, f"events[{i}]", {"at", "action", "duration", "count", "value"})
        if e.get("action") not in ACTIONS:
            raise ScenarioError(f"events[{i}].action must be one of {sorted(ACTIONS)}")
        events.append(Event(_number(e.get("at", 0), f"events[{i}].at", 0, 1e6), e["action"],
                            _number(e.get("duration", 1.0), f"events[{i}].duration", 0, 3600),
                            int(_number(e.get("count", 64), f"events[{i}].count", 1, 65536)),
                            _number(e.get("value", 0), f"events[{i}].value", -40, 150)))
    protocol = top.get("protocol", "thingmagic")
    if protocol not in PROTOCOLS:
        raise ScenarioError(f"protocol {protocol!r:.40} must be one of {', '.join(PROTOCOLS)}")
    return Scenario(
        tuple(_tag(t, i) for i, t in enumerate(tags_in)), protocol,
        _number(top.get("reads_per_second", 200), "reads_per_second", 0, MAX_READS_PER_SECOND),
        int(_number(top.get("seed", 1), "seed", 0, 2**32)), faults,
        tuple(sorted(events, key=lambda e: e.at)))


def load_scenario(path: str | Path) -> Scenario:
    """Read a .toml or .json scenario file."""
    raw = Path(path).read_bytes()[: MAX_SCENARIO_BYTES + 1]
    if len(raw) > MAX_SCENARIO_BYTES:
        raise ScenarioError(f"scenario file larger than {MAX_SCENARIO_BYTES} bytes")
    try:
        if str(path).endswith(".toml"):
            data = tomllib.loads(raw.decode("utf-8"))
        else:
            data = json.loads(raw)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"cannot parse {path}: {exc}") from None
    return scenario_from_dict(data)
