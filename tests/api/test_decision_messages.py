"""A batch's answers to each reader go out packed into few messages the agent can read."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reader_agent import decisions as agent
from reader_agent.decisions import parse_decisions

from api.ingest import publishing
from api.ingest.answers import DecisionMessage, decision_payload
from api.ingest.publishing import packed

DESKS = [f"kitledger/v1/north/north-store/desk-{n}/decisions" for n in range(3)]


def _answer(topic: str, seq: int, reason_chars: int, decision_id: int | None) -> DecisionMessage:
    body = {"seq": seq, "decision": "refuse" if reason_chars else "accept",
            "reason": "r" * reason_chars or None, "asset": f"R-{seq}", "action": None}
    return DecisionMessage(topic, decision_payload(body), decision_id)


def test_the_api_packs_within_what_the_agent_accepts() -> None:
    assert publishing.MAX_DECISIONS_PER_MESSAGE <= agent.MAX_DECISIONS_PER_MESSAGE
    assert publishing.MAX_MESSAGE_BYTES <= agent.MAX_DECISION_BYTES


@given(st.lists(st.tuples(st.sampled_from(DESKS), st.integers(0, 512), st.booleans()),
                max_size=700))
def test_every_answer_goes_once_in_order_to_its_reader_within_the_limits(
    plan: list[tuple[str, int, bool]]
) -> None:
    answers = [_answer(topic, seq, chars, seq if stored else None)
               for seq, (topic, chars, stored) in enumerate(plan)]
    messages = list(packed(answers))
    received: dict[str, list[int]] = {}
    ids: list[int] = []
    for topic, payload, decision_ids in messages:
        assert len(payload) <= publishing.MAX_MESSAGE_BYTES
        seqs = [d.seq for d in parse_decisions(payload)]  # the agent's own parser
        received.setdefault(topic, []).extend(seqs)
        assert decision_ids == [s for s in seqs if plan[s][2]]
        ids += decision_ids
    for topic in DESKS:
        assert received.get(topic, []) == [s for s, (t, _, _) in enumerate(plan) if t == topic]
    assert sorted(ids) == [s for s, (_, _, stored) in enumerate(plan) if stored]
    # Few messages: greedy packing closes a message only when it is full, by count or by
    # bytes (the next answer, under 700 bytes, would not fit).
    for topic in DESKS:
        mine = [(p, a) for t, p, a in messages if t == topic]
        size = sum(len(a.payload) for a in answers if a.topic == topic)
        assert len(mine) <= 1 + len(received.get(topic, [])) // 256 + size // (
            publishing.MAX_MESSAGE_BYTES - 700)

def test_a_lone_answer_stays_a_bare_object() -> None:
    [(topic, payload, ids)] = packed([_answer(DESKS[0], 4, 0, 9)])
    assert (topic, ids) == (DESKS[0], [9])
    assert json.loads(payload)["seq"] == 4


@pytest.mark.parametrize(("count", "reason_chars", "messages"), [
    (256, 0, 1), (257, 0, 2), (600, 0, 3),  # the count limit
    (120, 512, 2),  # the byte limit: 120 answers of ~600 bytes
])
def test_a_limit_starts_a_new_message(count: int, reason_chars: int, messages: int) -> None:
    out = list(packed([_answer(DESKS[1], n, reason_chars, n) for n in range(count)]))
    assert len(out) == messages
    assert [d.seq for _, p, _ in out for d in parse_decisions(p)] == list(range(count))
