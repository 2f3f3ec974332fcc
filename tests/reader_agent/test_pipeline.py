"""The read pipeline: filters, presence, sessions, portal direction, and drop accounting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from reader_agent.config import AntennaZone
from reader_agent.pipeline import DropReason, ReadPipeline
from reader_agent.pipeline import core as pipeline_core
from reader_agent.reads import TagRead

from tests.reader_agent.agent_support import epc, read, settings

BADGE = "E2801190"


def pipe(**overrides: object) -> ReadPipeline:
    return ReadPipeline(settings(**overrides), "desk-1-boot")


def kinds(observations: list) -> list[str]:  # type: ignore[type-arg]
    return [o.kind for o in observations]


def test_arrival_needs_min_reads_within_debounce() -> None:
    p = pipe(min_reads=3, debounce_s=1.0)
    assert p.feed_many([read(1, 0.0), read(1, 0.5)]) == []
    (arrival,) = p.feed_many([read(1, 0.9)])
    assert (arrival.kind, arrival.epc, arrival.zone) == ("arrive", epc(1), "desk")
    assert arrival.monotonic == 0.9
    assert p.counters.by_reason[DropReason.DEBOUNCING] == 2


def test_reads_spread_wider_than_debounce_never_arrive() -> None:
    p = pipe(min_reads=2, debounce_s=1.0)
    assert p.feed_many([read(1, 0.0), read(1, 1.5), read(1, 3.0), read(1, 4.5)]) == []
    assert p.feed_many([read(1, 5.0)]) != []  # 4.5 and 5.0 are within one window


def test_duplicates_then_depart_after_silence() -> None:
    p = pipe(min_reads=1, depart_after_s=5.0)
    assert kinds(p.feed_many([read(1, 0.0)])) == ["arrive"]
    assert p.feed_many([read(1, t) for t in (1.0, 2.0, 3.0)]) == []
    assert p.counters.by_reason[DropReason.DUPLICATE] == 3
    assert p.tick(7.9) == []  # last seen at 3.0: silent for 4.9 s only
    (departure,) = p.tick(8.1)
    assert (departure.kind, departure.epc) == ("depart", epc(1))
    assert kinds(p.feed_many([read(1, 9.0)])) == ["arrive"]  # it came back


def test_rssi_floor_is_per_antenna_and_unknown_antennas_are_dropped() -> None:
    p = pipe(min_reads=1)
    assert p.feed_many([read(1, 0, antenna=2, rssi=-65)]) == []  # shelf floor is -60
    assert p.counters.by_reason[DropReason.BELOW_RSSI_FLOOR] == 1
    assert kinds(p.feed_many([read(1, 0, antenna=1, rssi=-65)])) == ["arrive"]  # desk: -70
    assert p.feed_many([read(2, 0, antenna=9)]) == []
    assert p.counters.by_reason[DropReason.UNKNOWN_ANTENNA] == 1
    assert kinds(p.feed_many([TagRead(epc(3), 1, None, 0.0)])) == ["arrive"]  # no RSSI: kept


@pytest.mark.parametrize("bad", [b"", b"\x30", b"\x30" * 63])
def test_hostile_epcs_are_dropped(bad: bytes) -> None:
    p = pipe(min_reads=1)
    assert p.feed_many([TagRead(bad, 1, -40, 0.0)]) == []
    assert p.counters.by_reason[DropReason.BAD_EPC] == 1


def test_a_flood_of_new_tags_fills_the_table_and_is_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_core, "MAX_TRACKED_TAGS", 10)
    p = pipe(min_reads=1)
    out = p.feed_many([read(n, 0.0) for n in range(15)])
    assert len(out) == 10
    assert p.counters.by_reason[DropReason.TABLE_FULL] == 5


def test_badge_session_claims_kit_and_closes_on_second_badge() -> None:
    p = pipe(min_reads=1, badge_prefixes=(bytes.fromhex(BADGE),), cosign_window_s=0.0)
    (opened,) = p.feed_many([read(1, 0.0, prefix=BADGE)])
    assert opened.kind == "badge" and opened.session == "desk-1-boot-1"
    kit = p.feed_many([read(10, 1.0), read(11, 1.5)])
    assert [(o.kind, o.session) for o in kit] == [("arrive", "desk-1-boot-1")] * 2
    # Another badge closes the first session and opens its own.
    closing, opening = p.feed_many([read(2, 2.0, prefix=BADGE)])
    assert (closing.kind, closing.session, closing.epc) == ("badge", "desk-1-boot-1", epc(1, BADGE))
    assert (opening.session, opening.epc) == ("desk-1-boot-2", epc(2, BADGE))
    # Kit already present is claimed into the new session once, as a "read".
    (claim,) = p.feed_many([read(10, 2.5), read(10, 2.6)])
    assert (claim.kind, claim.session) == ("read", "desk-1-boot-2")


def test_second_badge_soon_after_cosigns_then_later_badge_replaces() -> None:
    """Dual sign-off: two staff badges at the desk within the window share one session."""
    p = pipe(min_reads=1, depart_after_s=1.0, badge_prefixes=(bytes.fromhex(BADGE),),
             cosign_window_s=10.0)
    (opened,) = p.feed_many([read(1, 0.0, prefix=BADGE)])
    (joined,) = p.feed_many([read(2, 4.0, prefix=BADGE)])
    assert (joined.kind, joined.epc, joined.session) == ("badge", epc(2, BADGE), opened.session)
    (bag,) = p.feed_many([read(30, 5.0)])
    assert bag.session == opened.session
    # The co-signer's badge leaves the field and taps again: that closes the shared session.
    p.tick(5.5)
    (closing,) = p.feed_many([read(2, 6.0, prefix=BADGE)])
    assert (closing.epc, closing.session) == (epc(2, BADGE), opened.session)
    assert p.sessions.current is None
    # After the window a different badge does not join: it closes and opens its own.
    p.feed_many([read(3, 20.0, prefix=BADGE)])
    closing, opening = p.feed_many([read(4, 40.0, prefix=BADGE)])
    assert closing.epc == epc(3, BADGE) and opening.epc == epc(4, BADGE)
    assert closing.session != opening.session


def test_same_badge_again_closes_and_timeout_closes() -> None:
    p = pipe(min_reads=1, depart_after_s=1.0, session_timeout_s=10.0,
             badge_prefixes=(bytes.fromhex(BADGE),))
    p.feed_many([read(1, 0.0, prefix=BADGE)])
    assert p.tick(2.0) == []  # the badge left the field: no depart for badges
    (closed,) = p.feed_many([read(1, 3.0, prefix=BADGE)])  # tapped again
    assert closed.session == "desk-1-boot-1" and p.sessions.current is None
    assert p.feed_many([read(1, 3.5, prefix=BADGE)]) == []  # still in the field: duplicate
    p.tick(4.6)
    p.feed_many([read(1, 5.0, prefix=BADGE)])  # a new tap opens boot-2
    (timed_out,) = p.tick(16.0)
    assert (timed_out.kind, timed_out.session) == ("badge", "desk-1-boot-2")
    (late,) = p.feed_many([read(20, 17.0)])
    assert late.session is None


def test_badges_listed_by_epc() -> None:
    p = pipe(min_reads=1, badge_epcs=frozenset({epc(7)}))
    assert kinds(p.feed_many([read(7, 0.0), read(8, 0.1)])) == ["badge", "arrive"]


@pytest.mark.parametrize(("first", "second", "direction"), [(1, 2, "out"), (2, 1, "in")])
def test_portal_direction_from_zone_order(first: int, second: int, direction: str) -> None:
    p = pipe(min_reads=1, antennas={1: AntennaZone("store", -90), 2: AntennaZone("corridor", -90)},
             portal_inside="store", portal_outside="corridor", portal_window_s=2.0)
    assert kinds(p.feed_many([read(1, 0.0, antenna=first)])) == ["arrive"]
    (crossing,) = p.feed_many([read(1, 1.0, antenna=second)])
    assert (crossing.kind, crossing.direction, crossing.antenna) == ("read", direction, second)


def test_portal_zones_seen_too_far_apart_give_no_direction() -> None:
    p = pipe(min_reads=1, antennas={1: AntennaZone("store", -90), 2: AntennaZone("corridor", -90)},
             portal_inside="store", portal_outside="corridor", portal_window_s=2.0)
    p.feed_many([read(1, 0.0, antenna=1)])
    assert p.feed_many([read(1, 3.0, antenna=2)]) == []


@hyp_settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 3), st.integers(-100, -20),
                          st.floats(0, 0.5)), max_size=200))
def test_every_read_is_accounted_for(script: list[tuple[int, int, int, float]]) -> None:
    p = pipe(min_reads=2, badge_prefixes=(epc(0)[:12],), depart_after_s=1.0)
    now = 0.0
    for tag, antenna, rssi, step in script:
        now += step
        p.feed_many([read(tag, now, antenna=antenna, rssi=rssi)])
        p.tick(now)
    assert p.reads_in == len(script)
    assert p.counters.accepted + p.counters.total() == p.reads_in
