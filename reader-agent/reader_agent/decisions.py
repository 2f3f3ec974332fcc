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
buzzer on a refusal, on the GPIO pins that agent.toml's `[indicator]` names (through gpiozero,
part of the `agent` extra). Without pins it only logs; with pins it cannot drive, the agent
does not start (`IndicatorError`), so a desk never silently loses its light.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from ledger.core.answers import answer_body
from ledger.core.bounds import MAX_SEQ
from ledger.core.packing import MAX_OBJECT_CHARS, unpack
from reader_agent.config import IndicatorSettings
from reader_agent.errors import AgentError, ConfigError

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
    """Parse and check one decisions message: a decision object or a non-empty array of them,
    after the API's signature header if it has one (checked before, by the publisher)."""
    if len(payload) > MAX_DECISION_BYTES:
        raise DecisionError(f"decision is {len(payload)} bytes, limit {MAX_DECISION_BYTES}")
    payload = answer_body(payload)
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


class IndicatorError(ConfigError):
    """Pins are configured in [indicator] but cannot be driven: refused at start, because a desk
    whose light was promised must not answer only in a log."""


BLINK_ON_S: Final = 0.2
BLINK_OFF_S: Final = 0.2
BLINKS: Final = 3
"""The light blinks three times for each decisions message: visible from across a desk, over
before the next item is usually scanned."""

BEEP_ON_S: Final = 0.5
BEEP_OFF_S: Final = 0.2
BEEPS: Final = 2
"""Two half-second beeps on a refusal: heard by someone already walking away."""


class DecisionIndicator:
    """Shows decisions: always a structured log line; the green or red light and the buzzer
    on the GPIO pins of `[indicator]`, through gpiozero.

    `pin_factory` is gpiozero's: None picks the board's (lgpio on a Pi, or whatever
    GPIOZERO_PIN_FACTORY names); tests pass gpiozero's MockFactory."""

    def __init__(self, settings: IndicatorSettings | None = None,
                 pin_factory: Any = None) -> None:
        self._green: Any = None
        self._red: Any = None
        self._buzzer: Any = None
        pins = (settings or IndicatorSettings()).pins()
        if not pins:
            return
        try:
            import gpiozero  # type: ignore[import-untyped]  # no stubs
        except ImportError:
            raise IndicatorError(
                f"[indicator] sets {', '.join(pins)} but gpiozero is not installed: "
                "pip install 'kitledger[agent]'") from None
        kinds = {"green_pin": gpiozero.LED, "red_pin": gpiozero.LED,
                 "buzzer_pin": gpiozero.Buzzer}
        devices: dict[str, Any] = {}
        try:
            for name, pin in pins.items():
                devices[name] = kinds[name](pin, pin_factory=pin_factory)
        except (gpiozero.GPIOZeroError, OSError, RuntimeError) as exc:
            for device in devices.values():
                device.close()
            raise IndicatorError(
                f"[indicator] {name} = {pin}: cannot drive it ({type(exc).__name__}: "
                f"{' '.join(str(exc).split())[:160]}); check the pin backend and the gpio group "
                "(docs/deploy.md), or remove the pin from agent.toml") from None
        self._green = devices.get("green_pin")
        self._red = devices.get("red_pin")
        self._buzzer = devices.get("buzzer_pin")

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
            led.blink(on_time=BLINK_ON_S, off_time=BLINK_OFF_S, n=BLINKS)
        if self._buzzer is not None and not accepted:
            self._buzzer.beep(on_time=BEEP_ON_S, off_time=BEEP_OFF_S, n=BEEPS)

    def close(self) -> None:
        """Turn everything off and release the pins (closing alone leaves a pin as it was,
        possibly mid-blink)."""
        for device in (self._green, self._red, self._buzzer):
            if device is not None:
                device.off()
                device.close()
        self._green = self._red = self._buzzer = None
