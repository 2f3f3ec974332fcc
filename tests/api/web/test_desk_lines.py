"""Badge sessions replayed into words: opener, co-signer, the badge that closes, and who was
in the session at each read (the oracle is the agent's session rules, written out by hand)."""

from __future__ import annotations

import pytest

from api.web.desk_lines import BadgeRead, replay_sessions

PEOPLE = {"A1": "pc-adams", "B2": "pc-baker", "C3": "dc-carter", "D4": "sgt-dane"}


def _badge(seq: int, epc: str, session: str | None) -> BadgeRead:
    return BadgeRead(seq, epc, "badge", session)


CASES = {
    "open, tap out": (
        [_badge(1, "A1", "s-1"), _badge(9, "A1", "s-1")],
        {"s-1": {1: "session opened by pc-adams", 9: "session closed (pc-adams)"}}),
    "co-signed, then closed by the timeout (the opener's badge)": (
        [_badge(3, "C3", "s-3"), _badge(4, "D4", "s-3"), _badge(8, "C3", "s-3")],
        {"s-3": {3: "session opened by dc-carter", 4: "co-signed by sgt-dane",
                 8: "session closed (dc-carter, sgt-dane)"}}),
    "the next officer closes one session and opens another": (
        [_badge(1, "A1", "s-1"), _badge(5, "A1", "s-1"), _badge(6, "B2", "s-2")],
        {"s-1": {1: "session opened by pc-adams", 5: "session closed (pc-adams)"},
         "s-2": {6: "session opened by pc-baker"}}),
    "reads out of order are replayed in sequence order": (
        [_badge(4, "D4", "s-3"), _badge(3, "C3", "s-3")],
        {"s-3": {3: "session opened by dc-carter", 4: "co-signed by sgt-dane"}}),
    "another agency's badge, or none, is never named": (
        [_badge(1, "ZZ", "s-1"), _badge(2, "A1", None), _badge(3, "A1", "s-1")],
        {"s-1": {3: "session opened by pc-adams"}}),
}


@pytest.mark.parametrize("case", CASES)
def test_desk_lines_replay_names_each_badge_read(case: str) -> None:
    reads, expected = CASES[case]
    stories = replay_sessions(reads, PEOPLE)
    assert {s: story.events for s, story in stories.items()} == expected


def test_desk_lines_session_members_at_a_read() -> None:
    story = replay_sessions([_badge(3, "C3", "s-3"), _badge(5, "D4", "s-3")], PEOPLE)["s-3"]
    assert story.at(4) == ["dc-carter"]  # read before the co-signer badged: not co-signed
    assert story.at(6) == ["dc-carter", "sgt-dane"]
    assert story.at(3) == []
