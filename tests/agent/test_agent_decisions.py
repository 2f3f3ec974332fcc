"""Decisions from the API: valid ones are shown, hostile ones are counted and ignored."""

from __future__ import annotations

import json
import logging

import pytest
from reader_agent.decisions import (
    MAX_DECISION_BYTES,
    DecisionError,
    DecisionIndicator,
    parse_decision,
)


def test_a_valid_decision_is_parsed_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    payload = b'{"seq":41,"decision":"refuse","reason":"not trained","asset":"T-9"}'
    decision = parse_decision(payload)
    assert (decision.seq, decision.accepted, decision.reason) == (41, False, "not trained")
    with caplog.at_level(logging.INFO, logger="reader_agent.decisions"):
        DecisionIndicator().show(decision)
    line = caplog.records[-1].getMessage()
    assert json.loads(line.removeprefix("decision "))["reason"] == "not trained"


@pytest.mark.parametrize("payload", [
    b"", b"\xff\xfe", b"[]", b"null", b'"accept"', b"{", b"[" * 100_000,
    b'{"seq":1}', b'{"seq":-1,"decision":"accept"}', b'{"seq":true,"decision":"accept"}',
    b'{"seq":1.5,"decision":"accept"}', b'{"seq":1,"decision":"maybe"}',
    b'{"seq":1,"decision":"accept","extra":1}', b'{"seq":1,"decision":"accept","reason":5}',
    b'{"seq":1,"decision":"accept","reason":"' + b"x" * 600 + b'"}',
    b'{"seq":1,"decision":"accept"}' + b" " * MAX_DECISION_BYTES,
])
def test_garbage_decisions_are_refused(payload: bytes) -> None:
    with pytest.raises(DecisionError):
        parse_decision(payload)
