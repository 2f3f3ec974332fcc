"""Decisions from the API: valid ones are shown, hostile ones are counted and ignored."""

from __future__ import annotations

import json
import logging

import pytest
from reader_agent.decisions import (
    MAX_DECISION_BYTES,
    MAX_DECISIONS_PER_MESSAGE,
    DecisionError,
    DecisionIndicator,
    parse_decisions,
)

from ledger.core.packing import pack


def test_a_valid_decision_is_parsed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    payload = b'{"seq":41,"decision":"refuse","reason":"not trained","asset":"T-9"}'
    [decision] = parse_decisions(payload)
    assert (decision.seq, decision.accepted, decision.reason) == (41, False, "not trained")
    with caplog.at_level(logging.INFO, logger="reader_agent.decisions"):
        DecisionIndicator().show([decision])
    line = caplog.records[-1].getMessage()
    assert json.loads(line.removeprefix("decision "))["reason"] == "not trained"


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe", b"[]", b"null", b'"accept"', b"{", b"[" * 100_000,
    b'{"seq":1}', b'{"seq":-1,"decision":"accept"}', b'{"seq":true,"decision":"accept"}',
    b'{"seq":1.5,"decision":"accept"}', b'{"seq":1,"decision":"maybe"}',
    b'{"seq":1,"decision":"accept","extra":1}', b'{"seq":1,"decision":"accept","reason":5}',
    b'{"seq":1,"decision":"accept","reason":"' + b"x" * 600 + b'"}',
    b'{"seq":1,"decision":"accept"}' + b" " * MAX_DECISION_BYTES,
    b'[{"seq":1,"decision":"accept"},{"seq":2,"decision":"maybe"}]',
    b'[{"seq":1,"decision":"accept"},[{"seq":2,"decision":"accept"}]]',
    b'[{"seq":1,"decision":"accept"},null]',
    b"[" + b",".join([b'{"seq":1,"decision":"accept"}'] * (MAX_DECISIONS_PER_MESSAGE + 1)) + b"]",
])
def test_garbage_decisions_are_refused(payload: bytes) -> None:
    with pytest.raises(DecisionError):
        parse_decisions(payload)


def test_an_array_answers_several_reads_in_order_with_one_light() -> None:
    payload = (b'[{"seq":7,"decision":"accept","asset":"R-1","action":"check_out"},'
               b'{"seq":8,"decision":"refuse","reason":"not trained","asset":"T-9"}]')
    decisions = parse_decisions(payload)
    assert [(d.seq, d.accepted, d.asset) for d in decisions] == [
        (7, True, "R-1"), (8, False, "T-9")]
    indicator = DecisionIndicator()
    lights: list[str] = []
    indicator._green, indicator._red = _Lamp("green", lights), _Lamp("red", lights)
    indicator.show(decisions)
    indicator.show(decisions[:1])
    assert lights == ["red", "green"]


def test_the_largest_array_the_api_sends_is_accepted() -> None:
    one = {"seq": 2**53 - 1, "decision": "refuse", "reason": "r" * 512, "asset": "a" * 128,
           "action": "check_out"}
    payload = pack([json.dumps(one).encode()] * 64)  # as api.ingest.publishing packs them
    assert len(payload) < MAX_DECISION_BYTES
    assert len(parse_decisions(payload)) == 64


class _Lamp:
    """Stands in for a gpiozero LED, which needs a Raspberry Pi's GPIO pins."""

    def __init__(self, name: str, lights: list[str]) -> None:
        self.name, self.lights = name, lights

    def blink(self, **_: object) -> None:
        self.lights.append(self.name)
