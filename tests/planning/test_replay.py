"""Replay of recorded requests through a changed pool, against sequences worked by hand."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

import pytest

from api.planning.model import PoolPolicy, Request
from api.planning.replay import replay
from tests.planning.demands import HOUR, MONDAY, store_history


def ask(hours: float, held_h: float | None = 1.0, *, met: bool = True,
        no_show: bool = False) -> Request:
    """A check-out (or, unmet, a refusal) `hours` after Monday 00:00, kept `held_h` hours."""
    return Request(at=MONDAY + timedelta(hours=hours), site_id="s", class_id="radio",
                   agency_id="a", source="check_out" if met else "none_in_store", met=met,
                   held_s=None if held_h is None else held_h * HOUR, no_show=no_show)


def test_two_items_nobody_waits() -> None:
    # 0h: item 1 out until 3h. 1h: item 2 out until 2h. 1.5h: none left. 2h: item 2 is back
    # that instant, out until 3h. 2.5h: none left. 3h: both back, one goes out.
    requests = [ask(0, 3), ask(1), ask(1.5), ask(2), ask(2.5), ask(3)]
    outcome = replay(requests, PoolPolicy(items=2))
    assert outcome.met == (True, True, False, True, False, True)
    assert outcome.refused == (requests[2], requests[4])
    assert outcome.waited_s == (0.0,) * 6
    assert replay(requests, PoolPolicy(items=3)).refused == ()
    assert replay(requests, PoolPolicy(items=1)).met == (True, False, False, False, False, True)


def test_waiting_is_first_come_first_served_within_patience() -> None:
    # One item, 30 minutes' patience. 0:00 takes it until 1:00. 0:40 waits 20 min, has it until
    # 2:00. 0:50 waits out its 30 minutes. 1:10 waits behind nobody, gives up at 1:40.
    requests = [ask(0), ask(40 / 60), ask(50 / 60), ask(70 / 60)]
    outcome = replay(requests, PoolPolicy(items=1, patience_s=1800))
    assert outcome.met == (True, True, False, False)
    assert outcome.waited_s == pytest.approx((0.0, 1200.0, 1800.0, 1800.0))


def test_an_item_back_at_the_end_of_patience_is_in_time() -> None:
    outcome = replay([ask(0), ask(0.5)], PoolPolicy(items=1, patience_s=1800))
    assert outcome.met == (True, True)
    assert outcome.waited_s == pytest.approx((0.0, 1800.0))


def test_loan_rules_apply_to_the_recorded_holding_times() -> None:
    requests = [ask(0, 2), ask(1)]
    assert replay(requests, PoolPolicy(items=1)).met == (True, False)
    assert replay(requests, PoolPolicy(items=1, max_loan_s=HOUR)).met == (True, True)
    assert replay(requests, PoolPolicy(items=1, loan_scale=0.5)).met == (True, True)
    assert replay([ask(0), ask(1.5)], PoolPolicy(items=1, loan_scale=2)).met == (True, False)


def test_refused_requests_hold_for_the_default_and_still_out_loans_forever() -> None:
    refused_first = [ask(0, None, met=False), ask(1, 1)]
    assert replay(refused_first, PoolPolicy(items=1), held_default_s=2 * HOUR).met == (True,
                                                                                      False)
    assert replay(refused_first, PoolPolicy(items=1), held_default_s=HOUR).met == (True, True)
    # the median recorded loan (1 hour) is the default
    assert replay(refused_first, PoolPolicy(items=1)).met == (True, True)
    still_out = [ask(0, None), ask(100)]
    assert replay(still_out, PoolPolicy(items=1)).met == (True, False)


def test_no_show_bookings_keep_an_item_aside_only_for_the_hold() -> None:
    booked = Request(at=MONDAY, site_id="s", class_id="radio", agency_id="a", source="booking",
                     met=False, no_show=True)
    requests = [booked, ask(0.5), ask(1.0)]
    assert replay(requests, PoolPolicy(items=1)).met == (True, True, False)
    held = replay(requests, PoolPolicy(items=1, no_show_hold_s=HOUR))
    assert held.met == (True, False, True)
    assert held.refused == (requests[1],)
    # with the shelf empty there is nothing to keep aside, and nobody waits for it
    busy = replay([ask(0, 2), replace(booked, at=MONDAY + timedelta(hours=1))],
                  PoolPolicy(items=1, no_show_hold_s=HOUR, patience_s=HOUR))
    assert busy.met == (True, True)
    assert busy.waited_s == (0.0, 0.0)


def test_out_of_service_share_takes_items_off_the_shelf() -> None:
    requests = [ask(0), ask(0.1), ask(0.2), ask(0.3)]
    assert replay(requests, PoolPolicy(items=4)).refused == ()
    outcome = replay(requests, PoolPolicy(items=4, out_of_service_share=0.5))
    assert outcome.met == (True, True, False, False)


def test_order_given_does_not_matter() -> None:
    requests = [ask(h / 4, 0.3 + (h % 5) / 4) for h in range(24)]
    shuffled = requests[:]
    random.Random(4).shuffle(shuffled)
    base = replay(requests, PoolPolicy(items=2))
    again = replay(shuffled, PoolPolicy(items=2))
    assert again.requests == tuple(requests)
    assert again.met == base.met
    assert 0 < sum(base.met) < len(requests)


def test_requests_at_one_instant_keep_the_order_given() -> None:
    long, short = ask(0, 5), ask(0, 0.5)
    assert replay([long, short], PoolPolicy(items=1)).refused == (short,)
    assert replay([short, long], PoolPolicy(items=1)).refused == (long,)


def test_a_year_s_record_through_its_own_pool_gives_its_own_refusals() -> None:
    history = store_history(9, days=56, pool_size=5)
    recorded = tuple(r.met or r.no_show for r in history.requests)
    assert not all(recorded)
    assert replay(history.requests, PoolPolicy(items=5)).met == recorded
    more = replay(history.requests, PoolPolicy(items=8))
    assert sum(more.met) > sum(recorded)


def test_nothing_to_replay_is_nothing_refused() -> None:
    outcome = replay([], PoolPolicy(items=1))
    assert outcome.requests == () and outcome.met == () and outcome.refused == ()
