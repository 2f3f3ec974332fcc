"""`load_history` on both databases, on a hand-worked history (`planning_support`): check-outs
paired with their check-ins, refusals for "none in store", a booking collected once and once
not, a repair; and only what the agency may see: south's unshared radio, its refusals and its
bookings never appear in north's pool, and north shares nothing with south."""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import UTC, datetime, time, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from api.custody import maintenance
from api.models import Asset, Person
from api.models.assets import AssetCreate
from api.planning.history import load_history
from api.planning.model import OutOfService, PoolHistory
from api.registry import create_asset
from api.scoping import own_row
from demo.history import check_in, check_out, fill_history
from demo.seed import DEMO_AGENCY, DEMO_READERS, DEMO_SITE, OTHER_AGENCY, seed_registry
from demo.up import history_weeks
from ledger.core.envelope import raw_public_key
from tests.api.api_support import log_leaves
from tests.api.planning_support import (
    END,
    EXPECTED_ANNEX,
    EXPECTED_SHARED,
    EXPECTED_STORE,
    SOUTH,
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
    assert history.out_of_service == (OutOfService("R-2", h(30), h(54), "north"),)
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


def test_a_shared_item_named_as_one_of_the_agencys_is_another_item(engine: Engine) -> None:
    """Ids are per agency: south's own "R-1", shared with north, is a pool item of its own. Its
    check-in does not end north's R-1 loan, nor its repair north's R-2's."""
    build_world(engine)
    with Session(engine) as session:
        create_asset(session, agency_id="south", now=START, data=AssetCreate(
            id="R-1", class_id="s-radio", epc_hex="E28011606000020500000099",
            home_site_id="south-store", shared_with=["north"]))
        session.commit()
        check_out(session, SOUTH, "R-1", "s-1", h(16))
        check_in(session, SOUTH, "R-1", h(21))  # after north's R-1 went out at 20 h
        officer, asset = own_row(session, Person, "south", "s-sgt"), own_row(
            session, Asset, "south", "R-1")
        assert officer is not None and asset is not None
        for in_service, at in ((False, h(40)), (True, h(50))):
            maintenance.change_service(session, asset=asset, in_service=in_service,
                                       reason="repair", officer=officer, now=at)
        session.commit()
    history = _load(engine, "north", ["north-store"], "radio", {"south": "s-radio"})
    assert history.pool_size == 4  # and south's S-1 and R-1
    assert _seen(history) == sorted(EXPECTED_STORE + EXPECTED_SHARED
                                    + [(16, "check_out", True, 5.0, False)],
                                    key=lambda r: r[0])
    assert history.out_of_service == (OutOfService("R-1", h(40), h(50), "south"),
                                      OutOfService("R-2", h(30), h(54), "north"))
    assert _seen(_load(engine, "north", ["north-store"], "radio")) == EXPECTED_STORE


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


def test_the_demo_history_goes_through_the_log(engine: Engine) -> None:
    """`kitledger up --history-weeks`: weeks of the two demo stores, every change a logged
    custody event, the same every run (seeded), and the fire service's shared radios in the
    police's pooled history."""
    keys = {r.reader_id: raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
            for r in DEMO_READERS}
    now = datetime.now(UTC)
    with Session(engine) as session:
        seed_registry(session, keys)
        fill_history(session, 2, now=now)
        session.commit()
        leaves = log_leaves(session, DEMO_AGENCY)  # contiguous, or it asserts
        start = datetime.combine(now.date(), time(), UTC) - timedelta(weeks=2)
        police = load_history(session, DEMO_AGENCY, [DEMO_SITE], "radio", start, now)
        pooled = load_history(session, DEMO_AGENCY, [DEMO_SITE], "radio", start, now,
                              include_shared_from={OTHER_AGENCY: "fire-radio"})
    sources = Counter(r.source for r in police.requests)
    assert sources["check_out"] > 200 and sources["none_in_store"] > 0
    assert len(leaves) > 2 * sources["check_out"]  # each check-out, and most check-ins
    assert police.out_of_service and police.pool_size == 15
    assert pooled.pool_size == 23 and {r.agency_id for r in pooled.requests} == {
        DEMO_AGENCY, OTHER_AGENCY}


def test_history_weeks_are_bounded() -> None:
    assert history_weeks("8") == 8 and history_weeks("0") == 0
    for bad in ("27", "-1", "eight", "1e3", "8\x00"):
        with pytest.raises(argparse.ArgumentTypeError):
            history_weeks(bad)
