"""Decisions the API sends back to this reader, and how the desk shows them.

Payload (JSON on `.../decisions`): one decision object, or an array of them when the API
answers several observations of this reader at once (a tray of radios scanned in one pass)::

    {"seq": 41, "decision": "accept" | "refuse", "reason": "..." | null, "asset": "..." | null,
     "action": "check_out" | ... | null}

`seq` is the observation the decision answers. Anything else (oversized, not JSON, wrong
types, unknown fields, an empty or over-long array) is refused with a typed error and counted
by the publisher; it never reaches the indicator. An array is refused whole if any element is
bad: the API builds it as one message, so a bad element means the message is not the API's.

`DecisionIndicator` shows one message's decisions with one light: a green or red LED, and a
buzzer on a refusal, on a Raspberry Pi when `gpiozero` is importable and pins are configured;
elsewhere it only logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.core.bounds import MAX_SEQ
from ledger.core.packing import MAX_OBJECT_CHARS, unpack
from reader_agent.errors import AgentError

MAX_DECISION_BYTES: Final = 65_536
"""A decisions message is one short JSON object or an array of them (the API packs at most
`MAX_DECISIONS_PER_MESSAGE`, each under 1 KiB); anything larger is refused before parsing."""

MAX_DECISIONS_PER_MESSAGE: Final = 256
"""The most decisions one message may carry (`api.ingest.publishing` packs at most this)."""

MAX_REASON_CHARS: Final = 512
"""Long enough for a human-readable refusal reason, short enough for a log line."""

log = logging.getLogger("reader_agent.decisions")


class DecisionError(AgentError):
    """A decisions payload that is not a valid decision."""


@dataclass(frozen=True, slots=True)
class Decision:
    seq: int
    accepted: bool
    reason: str | None
    asset: str | None
    action: str | None = None


def _optional_text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_REASON_CHARS):
        raise DecisionError(f"decision field {name!r} must be text of at most {MAX_REASON_CHARS}")
    return value


def parse_decisions(payload: bytes) -> list[Decision]:
    """Parse and check one decisions message: a decision object or a non-empty array of them."""
    if len(payload) > MAX_DECISION_BYTES:
        raise DecisionError(f"decision is {len(payload)} bytes, limit {MAX_DECISION_BYTES}")
    # Each object is parsed on its own, at most MAX_OBJECT_CHARS long: that bounds how deep
    # json's C parser can recurse, whatever Python's recursion limit is.
    objects = unpack(payload, MAX_DECISIONS_PER_MESSAGE)
    if objects == [payload] and payload.startswith(b"["):
        raise DecisionError(
            f"a decisions array holds 1 to {MAX_DECISIONS_PER_MESSAGE} objects, written as "
            "the API packs them")
    if any(len(data) > MAX_OBJECT_CHARS for data in objects):
        raise DecisionError(f"a decision is longer than {MAX_OBJECT_CHARS} bytes")
    try:
        return [_decision(json.loads(data.decode("utf-8"))) for data in objects]
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise DecisionError("decision is not UTF-8 JSON") from None


def _decision(record: Any) -> Decision:
    if not isinstance(record, dict):
        raise DecisionError("decision must be a JSON object")
    unknown = set(record) - {"seq", "decision", "reason", "asset", "action"}
    if unknown:
        raise DecisionError(f"decision has unknown fields {sorted(unknown)[:5]}")
    seq = record.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= MAX_SEQ:
        raise DecisionError("decision field 'seq' must be a non-negative integer")
    verdict = record.get("decision")
    if verdict not in ("accept", "refuse"):
        raise DecisionError("decision field 'decision' must be 'accept' or 'refuse'")
    return Decision(seq, verdict == "accept", _optional_text(record, "reason"),
                    _optional_text(record, "asset"), _optional_text(record, "action"))


class DecisionIndicator:
    """Shows decisions: always a structured log line; LEDs and a buzzer where gpiozero exists."""

    def __init__(self, green_pin: int | None = None, red_pin: int | None = None,
                 buzzer_pin: int | None = None) -> None:
        self._green = self._red = self._buzzer = None
        try:
            import gpiozero  # type: ignore[import-not-found,unused-ignore]  # only on a Pi
        except ImportError:
            return
        if green_pin is not None:
            self._green = gpiozero.LED(green_pin)
        if red_pin is not None:
            self._red = gpiozero.LED(red_pin)
        if buzzer_pin is not None:
            self._buzzer = gpiozero.Buzzer(buzzer_pin)

    def show(self, decisions: Sequence[Decision]) -> None:
        """One log line per decision; one light for the message (a tray scanned in one pass
        gets one answer): red, and the buzzer, if any of them was refused, else green."""
        for decision in decisions:
            log.info("decision %s", json.dumps({
                "seq": decision.seq, "decision": "accept" if decision.accepted else "refuse",
                "reason": decision.reason, "asset": decision.asset, "action": decision.action}))
        accepted = all(decision.accepted for decision in decisions)
        led = self._green if accepted else self._red
        if led is not None:
            led.blink(on_time=0.2, off_time=0.2, n=3)
        if self._buzzer is not None and not accepted:
            self._buzzer.beep(on_time=0.5, off_time=0.2, n=2)
