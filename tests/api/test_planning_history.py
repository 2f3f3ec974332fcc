"""`load_history` on both databases, on a hand-worked history (`planning_support`): check-outs
paired with their check-ins, refusals for "none in store", a booking collected once and once
not, a repair; and only what the agency may see: south's unshared radio, its refusals and its
bookings never appear in north's pool, and north shares nothing with south."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from api.planning.history import load_history
from api.planning.model import OutOfService, PoolHistory
from tests.api.planning_support import (
    END,
    EXPECTED_ANNEX,
    EXPECTED_SHARED,
    EXPECTED_STORE,
    START,
    build_world,
    h,
)


def _seen(history: PoolHistory) -> list[tuple[float, str, bool, float | None, bool]]:
    return [((r.at - START) / timedelta(hours=1), r.source, r.met,
             None if r.held_s is None else r.held_s / 3600, r.no_show)
            for r in history.requests]


def _load(engine: Engine, agency: str, sites: list[str], class_id: str,
          shared: dict[str, str] | None = None) -> PoolHistory:
    with Session(engine) as session:
        return load_history(session, agency, sites, class_id, START, END,
                            include_shared_from=shared)


def test_one_store_as_worked_by_hand(engine: Engine) -> None:
    build_world(engine)
    history = _load(engine, "north", ["north-store"], "radio")
    assert _seen(history) == EXPECTED_STORE
    assert history.pool_size == 2
    assert history.agency_ids == ("north",) and history.site_ids == ("north-store",)
    assert history.out_of_service == (OutOfService("R-2", h(30), h(54)),)
    assert {r.class_id for r in history.requests} == {"radio"}


def test_two_sites_pool_their_history(engine: Engine) -> None:
    build_world(engine)
    history = _load(engine, "north", ["north-store", "north-annex"], "radio")
    assert _seen(history) == sorted(EXPECTED_STORE + EXPECTED_ANNEX, key=lambda r: r[0])
    assert history.pool_size == 3


def test_another_agency_gives_only_what_it_shares(engine: Engine) -> None:
    build_world(engine)
    history = _load(engine, "north", ["north-store"], "radio", {"south": "s-radio"})
    assert _seen(history) == sorted(EXPECTED_STORE + EXPECTED_SHARED, key=lambda r: r[0])
    assert history.pool_size == 3  # and the shared S-1, not S-2
    assert history.agency_ids == ("north", "south")
    shared = [r for r in history.requests if r.agency_id == "south"]
    assert [(r.site_id, r.class_id) for r in shared] == [("south-store", "radio")]
    # A class south shares nothing of adds nothing.
    assert _seen(_load(engine, "north", ["north-store"], "radio",
                       {"south": "s-tool"})) == EXPECTED_STORE


def test_nothing_of_north_reaches_south(engine: Engine) -> None:
    build_world(engine)
    history = _load(engine, "south", ["south-store"], "s-radio", {"north": "radio"})
    assert {r.agency_id for r in history.requests} == {"south"}
    assert history.pool_size == 2
    # South's own: S-1 and S-2 out at 13 h, the refusal at 13 h, and its booking's no-show.
    assert sorted(_seen(history)) == [(13, "check_out", True, 1.0, False),
                                      (13, "check_out", True, 2.0, False),
                                      (13, "none_in_store", False, None, False),
                                      (60, "booking", True, 6.0, True)]


def test_an_empty_period_is_empty(engine: Engine) -> None:
    build_world(engine)
    with Session(engine) as session:
        history = load_history(session, "north", ["north-store"], "radio", END,
                               END + timedelta(days=1))
    assert history.requests == () and history.pool_size == 2
