"""Property tests of the custody rules: random histories never break the invariants."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from api.custody.rules import (
    NOT_OURS,
    AlertKind,
    AssetView,
    PersonView,
    ReaderView,
    Verdict,
    decide_asset,
    decide_badge,
)
from api.models.assets import AssetStatus, HolderKind
from api.models.registry import ReaderRole

PEOPLE = [
    PersonView("alice", "north", frozenset({"taser"}), True),
    PersonView("bob", "north", frozenset(), True),
    PersonView("eve", "south", frozenset({"taser"}), True),
    PersonView("zed", "north", frozenset({"taser"}), False),
]
READERS = [
    ReaderView(f"{role.value}-{site}", "north", site, role)
    for role in ReaderRole for site in ("store-a", "store-b")
]
readers = st.sampled_from(READERS)
sessions = st.lists(st.sampled_from(PEOPLE), max_size=3)
steps = st.lists(
    st.tuples(readers, sessions, st.sampled_from([None, "in", "out"]), st.booleans()),
    max_size=40,
)


def _asset(qualification: str | None, dual: bool, shared: bool) -> AssetView:
    return AssetView(
        asset_id="A-1", agency_id="north" if not shared else "south",
        shared_with=frozenset({"north"}) if shared else frozenset(),
        status=AssetStatus.IN_STORE, holder_kind=HolderKind.LOCATION, holder_ref="store-a",
        holder_agency_id="north" if not shared else "south",
        required_qualification=qualification, dual_signoff=dual,
    )


@settings(max_examples=150, deadline=None)
@given(steps, st.sampled_from([None, "taser"]), st.booleans(), st.booleans(), st.integers(0, 40))
def test_random_histories_keep_the_invariants(
    history: list[tuple[ReaderView, list[PersonView], str | None, bool]],
    qualification: str | None, dual: bool, shared: bool, dispose_at: int,
) -> None:
    asset = _asset(qualification, dual, shared)
    for step, (reader, people, direction, departing) in enumerate(history):
        if step == dispose_at:
            asset = replace(asset, status=AssetStatus.DISPOSED)
        ruling = decide_asset(reader, asset, people, direction, departing)
        if asset.status == AssetStatus.DISPOSED:
            assert ruling.action is None and ruling.verdict == Verdict.REFUSE
            continue
        if ruling.action is None:
            continue
        assert ruling.verdict == Verdict.ACCEPT and not departing
        if ruling.action == "check_out":
            assert asset.status == AssetStatus.IN_STORE
            holder = next(p for p in people if p.person_id == ruling.holder_ref)
            assert holder.active and holder.agency_id == reader.agency_id
            assert qualification is None or qualification in holder.qualifications
            assert not dual or len(set(ruling.authorisers)) >= 2
            assert reader.role == ReaderRole.ISSUE_DESK
        else:
            assert ruling.action in ("check_in", "loan_return")
            assert ruling.holder_ref == reader.site_id
        assert ruling.new_status is not None and ruling.holder_kind is not None
        asset = replace(asset, status=ruling.new_status, holder_kind=ruling.holder_kind,
                        holder_ref=str(ruling.holder_ref))


@settings(max_examples=60, deadline=None)
@given(readers, st.sampled_from(PEOPLE), st.sampled_from([None, "s1"]))
def test_badges_open_sessions_only_for_active_staff_of_the_agency(
    reader: ReaderView, person: PersonView, session: str | None
) -> None:
    ruling = decide_badge(reader, person, session)
    if ruling.opens_session_for is not None:
        assert person.active and person.agency_id == reader.agency_id and session is not None
        assert reader.role in (ReaderRole.ISSUE_DESK, ReaderRole.RETURN_DESK, ReaderRole.LOCKER)


@settings(max_examples=150, deadline=None)
@given(readers, sessions, st.sampled_from(list(AssetStatus)), st.sampled_from(list(HolderKind)),
       st.sampled_from([None, "in", "out"]), st.booleans(),
       st.sampled_from([frozenset(), frozenset({"east"})]))
def test_another_agencys_unshared_asset_is_never_described_moved_or_alerted_on(
    reader: ReaderView, people: list[PersonView], status: AssetStatus, holder: HolderKind,
    direction: str | None, departing: bool, shared_with: frozenset[str],
) -> None:
    """Whatever its state, wherever it sits (even at the reader's own site) and whoever is
    badged: "not ours" or nothing, no custody change, no alert, a foreign sighting."""
    asset = AssetView(asset_id="S-1", agency_id="south", shared_with=shared_with, status=status,
                      holder_kind=holder, holder_ref=reader.site_id,
                      holder_agency_id=reader.agency_id)
    ruling = decide_asset(reader, asset, people, direction, departing)
    assert ruling.foreign and ruling.reason in (NOT_OURS, "")
    assert (ruling.action, ruling.alert, ruling.new_status, ruling.holder_ref,
            ruling.authorisers) == (None, None, None, None, ())
    assert (ruling.verdict is None) == (departing or reader.role == ReaderRole.VEHICLE_BAY)


def test_portal_exit_of_a_stored_asset_is_an_unauthorised_removal() -> None:
    portal = next(r for r in READERS if r.role == ReaderRole.PORTAL and r.site_id == "store-a")
    ruling = decide_asset(portal, _asset(None, False, False), [], "out", False)
    assert (ruling.verdict, ruling.alert) == (Verdict.REFUSE, AlertKind.UNAUTHORISED_REMOVAL)
    inbound = decide_asset(portal, _asset(None, False, False), [], "in", False)
    assert inbound.alert is None and inbound.action is None
