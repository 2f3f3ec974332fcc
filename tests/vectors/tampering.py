"""Edits to an audit bundle's lines, section by section, as a forger would make them.

A bundle is `header | devices | checkpoints | consistency | observations | (event, proof) pairs
| heads | end`, the header announcing each section's length and the end line carrying the count of
lines and the fingerprint over them. `sealed` splits a bundle into those sections, applies an
edit and, unless told not to, re-seals it: fresh counts, line count and fingerprint, so that
only the signatures, chains, proofs and anchors can catch the change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.core.bundle import FingerprintHasher
from ledger.core.encoding import canonical_bytes

SECTIONS = ("devices", "checkpoints", "consistency", "observations")
FLIPPABLE = b"0123456789bcde"
"""Hex digits that stay hex digits when their lowest bit flips (a<->` and f<->g would not)."""


@dataclass
class Sections:
    header: bytes
    devices: list[bytes]
    checkpoints: list[bytes]
    consistency: list[bytes]
    observations: list[bytes]
    events: list[tuple[bytes, bytes]]
    heads: list[bytes]
    end: bytes
    registry: list[tuple[bytes, bytes]] = field(default_factory=list)
    """Registry records with their inclusion lines (format version 3)."""

    @classmethod
    def split(cls, bundle: bytes) -> Sections:
        lines = bundle.split(b"\n")[:-1]
        counts = json.loads(lines[0])["counts"]
        parts: dict[str, list[bytes]] = {}
        at = 1
        for name in SECTIONS:
            parts[name] = lines[at:at + counts[name]]
            at += counts[name]
        pairs = lines[at:at + 2 * counts["events"]]
        at += 2 * counts["events"]
        registry = lines[at:at + 2 * counts.get("registry", 0)]
        at += 2 * counts.get("registry", 0)
        return cls(lines[0], events=list(zip(pairs[::2], pairs[1::2], strict=True)),
                   heads=lines[at:at + counts.get("heads", 0)], end=lines[-1],
                   registry=list(zip(registry[::2], registry[1::2], strict=True)), **parts)

    def body(self) -> list[bytes]:
        lines = [self.header, *self.devices, *self.checkpoints, *self.consistency,
                 *self.observations]
        for record, proof in [*self.events, *self.registry]:
            lines += [record, proof]
        return lines + self.heads

    def reseal(self) -> None:
        header = json.loads(self.header)
        names = (*SECTIONS, "events",
                 *(name for name in ("registry", "heads") if name in header["counts"]))
        header["counts"] = {name: len(getattr(self, name)) for name in names}
        self.header = canonical_bytes(header)
        hasher = FingerprintHasher()
        lines = self.body()
        for line in lines:
            hasher.add(line)
        self.end = canonical_bytes({"type": "bundle-end", "lines": len(lines),
                                    "fingerprint": hasher.digest().hex()})

    def to_bytes(self) -> bytes:
        return b"\n".join([*self.body(), self.end]) + b"\n"


def sealed(bundle: bytes, edit: Callable[[Sections], None], reseal: bool = True) -> bytes:
    """`bundle` with `edit` applied to its sections, re-sealed unless `reseal` is False."""
    sections = Sections.split(bundle)
    edit(sections)
    if reseal:
        sections.reseal()
    return sections.to_bytes()


def edit_json(line: bytes, change: Callable[[dict[str, Any]], object]) -> bytes:
    """Decode a line, apply `change(record)` in place, re-encode it canonically."""
    record = json.loads(line)
    change(record)
    return canonical_bytes(record)


def flip_hex_digit(line: bytes, start: int) -> bytes:
    """`line` with the lowest bit of its first hex digit at or after `start` flipped."""
    at = next(i for i in range(start, len(line)) if line[i] in FLIPPABLE)
    return line[:at] + bytes([line[at] ^ 0x01]) + line[at + 1:]
