"""What the read pipeline emits (`PipelineObservation`) and why it drops reads (`DropReason`).

Every read fed in ends in exactly one bucket: it produced at least one observation
(`accepted`), or it was dropped for one named reason. `DropCounters.total() + accepted ==
reads_in` is an invariant the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class DropReason(StrEnum):
    """Why a read produced no observation."""

    UNKNOWN_ANTENNA = "unknown_antenna"
    """The antenna is not in the zone table: a miswired port or a misconfigured reader."""
    BELOW_RSSI_FLOOR = "below_rssi_floor"
    """Weaker than the antenna's floor: a tag in the next room, not at this desk."""
    BAD_EPC = "bad_epc"
    """Empty, odd-length or longer than an EPC bank can hold (496 bits)."""
    DEBOUNCING = "debouncing"
    """Counted towards `min_reads` for an arrival that has not happened (yet)."""
    DUPLICATE = "duplicate"
    """A tag already present: it stays present, nothing new to say."""
    TABLE_FULL = "table_full"
    """MAX_TRACKED_TAGS tags are present or pending; a flood (or an attack) is under way."""


Kind = Literal["arrive", "depart", "badge", "read"]


@dataclass(frozen=True, slots=True)
class PipelineObservation:
    """One thing worth telling the API, before it gets a device, sequence number and time.

    Kinds: `arrive` (debounced first sighting), `depart` (silent for `depart_after_s`), `badge`
    (a staff badge opened or closed `session`: the first badge observation carrying a session
    id opens it, the second closes it), `read` (a present tag newly claimed into an open
    session, or a portal crossing carrying `direction`). `monotonic` is when it happened.
    """

    kind: Kind
    epc: bytes
    antenna: int
    rssi: int | None
    zone: str
    monotonic: float
    session: str | None = None
    direction: Literal["in", "out"] | None = None


class DropCounters:
    """Dropped reads by reason, plus the accepted count, for health messages and tests."""

    __slots__ = ("accepted", "by_reason")

    def __init__(self) -> None:
        self.accepted = 0
        self.by_reason: dict[str, int] = {reason.value: 0 for reason in DropReason}

    def total(self) -> int:
        return sum(self.by_reason.values())

    def snapshot(self) -> dict[str, int]:
        return {"accepted": self.accepted, **self.by_reason}
