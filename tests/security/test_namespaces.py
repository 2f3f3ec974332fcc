"""Ids and EPCs are per agency: registering a site, person, class, asset, badge or EPC that
another agency holds answers exactly as a fresh one does (201, the same body), so a 409 never
confirms what another agency registered. The creator reads back its own row, the other
agency's stays as it was, and a duplicate within the creator's own agency is still 409. An
asset shared with an agency that has one of the same id is named with `?owner=`. Both
databases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlmodel import Session, select

from api.models.people import Badge
from tests.security.conftest import Service

NORTH_TAG = "E28000000000000000000001"
"""N-1's EPC (the fixture's north asset)."""
NORTH_BADGE = "E2800000000000000000BAD6"
"""North's officer's badge."""
VARYING = frozenset({"id", "epc_hex", "epc_uri", "commitment"})
"""Fields that differ between two fresh rows of the same request shape."""


@dataclass(frozen=True)
class Case:
    create: str
    """The create route (POST)."""
    listed: bool
    """Read back through the create route's list (sites and classes have no item route)."""
    clash: dict[str, Any]
    """South's body, naming what north holds."""
    fresh: dict[str, Any]
    """South's body of the same shape, naming nothing anyone holds."""
    north: tuple[str, bool, str]
    """North's row the clash names: (route, listed, id)."""


def _asset(asset_id: str, epc: str) -> dict[str, Any]:
    return {"id": asset_id, "class_id": "south-radio", "epc_hex": epc,
            "home_site_id": "south-store"}


CASES = {
    "site": Case("/v1/sites", True, {"id": "north-store", "name": "South store"},
                 {"id": "s-fresh", "name": "South store"}, ("/v1/sites", True, "north-store")),
    "person": Case("/v1/people", False, {"id": "north-officer", "qualifications": ["first-aid"]},
                   {"id": "s-fresh", "qualifications": ["first-aid"]},
                   ("/v1/people", False, "north-officer")),
    "class": Case("/v1/asset-classes", True,
                  {"id": "radio", "name": "South radio", "loan_days": 3},
                  {"id": "s-fresh", "name": "South radio", "loan_days": 3},
                  ("/v1/asset-classes", True, "radio")),
    "asset-id": Case("/v1/assets", False, _asset("N-1", "E2800000000000000000500A"),
                     _asset("s-fresh", "E2800000000000000000500B"),
                     ("/v1/assets", False, "N-1")),
    "asset-epc": Case("/v1/assets", False, _asset("S-7", NORTH_TAG),
                      _asset("s-fresh", "E2800000000000000000500B"),
                      ("/v1/assets", False, "N-1")),
    "badge-of-a-badge": Case("/v1/people", False, {"id": "s-officer", "badges": [NORTH_BADGE]},
                             {"id": "s-fresh", "badges": ["E2800000000000000000500C"]},
                             ("/v1/people", False, "north-officer")),
    "badge-of-a-tag": Case("/v1/people", False, {"id": "s-desk", "badges": [NORTH_TAG]},
                           {"id": "s-fresh", "badges": ["E2800000000000000000500C"]},
                           ("/v1/assets", False, "N-1")),
}


def _prepare(service: Service) -> None:
    """North's officer with a badge; south's own store and class, for its assets."""
    made = service.call("all", "POST", "/v1/people", json={
        "id": "north-officer", "qualifications": ["taser"], "badges": [NORTH_BADGE]})
    assert made.status_code == 201, made.text
    for path, body in (("/v1/sites", {"id": "south-store", "name": "Store"}),
                       ("/v1/asset-classes", {"id": "south-radio", "name": "Radio"})):
        made = service.call("south", "POST", path, json=body)
        assert made.status_code == 201, made.text


def _read(service: Service, who: str, route: str, listed: bool, row_id: str) -> Any:
    if not listed:
        answer = service.call(who, "GET", f"{route}/{row_id}")
        assert answer.status_code == 200, answer.text
        return answer.json()
    answer = service.call(who, "GET", route, params={"limit": 200})
    assert answer.status_code == 200, answer.text
    rows = [r for r in answer.json()["items"] if r["id"] == row_id]
    assert len(rows) == 1, answer.text
    return rows[0]


def _badges(service: Service, epc: str) -> set[tuple[str, str]]:
    with Session(service.engine) as session:
        return {(b.agency_id, b.person_id)
                for b in session.exec(select(Badge).where(Badge.epc_hex == epc))}


def _two_of_one_id(service: Service) -> Any:
    """North's N-1 shared with south, and south's own N-1: south's creation answer."""
    _prepare(service)
    shared = service.call("all", "PATCH", "/v1/assets/N-1", json={"shared_with": ["south"]})
    assert shared.status_code == 200, shared.text
    made = service.call("south", "POST", "/v1/assets",
                        json=_asset("N-1", "E2800000000000000000500A"))
    assert made.status_code == 201, made.text
    return made


@pytest.mark.parametrize("kind", list(CASES))
def test_another_agencys_id_or_epc_registers_as_a_fresh_one(service: Service,
                                                            kind: str) -> None:
    case = CASES[kind]
    _prepare(service)
    north_route, north_listed, north_id = case.north
    north_before = _read(service, "all", north_route, north_listed, north_id)
    north_badges = _badges(service, NORTH_BADGE)
    assert north_badges == {("north", "north-officer")}

    fresh = service.call("south", "POST", case.create, json=case.fresh)
    assert fresh.status_code == 201, fresh.text
    clash = service.call("south", "POST", case.create, json=case.clash)
    assert clash.status_code == 201, clash.text
    assert clash.headers["content-type"] == fresh.headers["content-type"]
    body = clash.json()
    assert body.keys() == fresh.json().keys()
    assert {k: v for k, v in body.items() if k not in VARYING} == {
        k: v for k, v in fresh.json().items() if k not in VARYING}
    assert body["id"] == case.clash["id"] and body["agency_id"] == "south"
    if "epc_hex" in case.clash:
        assert body["epc_hex"] == case.clash["epc_hex"]

    mine = _read(service, "south", case.create, case.listed, case.clash["id"])
    assert mine == body
    assert _read(service, "all", north_route, north_listed, north_id) == north_before
    assert _badges(service, NORTH_BADGE) == north_badges | (
        {("south", "s-officer")} if kind == "badge-of-a-badge" else set())
    if kind == "badge-of-a-tag":
        assert _badges(service, NORTH_TAG) == {("south", "s-desk")}

    again = service.call("south", "POST", case.create, json=case.clash)
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == "application/problem+json"
    assert _read(service, "south", case.create, case.listed, case.clash["id"]) == mine
    assert _read(service, "all", north_route, north_listed, north_id) == north_before


def test_a_shared_asset_is_named_by_its_owner_where_ids_meet(service: Service) -> None:
    """South holds an N-1 of its own and sees north's N-1, shared with it: its own answers
    by default, north's with `?owner=north`; an owner that has not shared is not found."""
    made = _two_of_one_id(service)

    def get(path: str, **params: str) -> Any:
        return service.call("south", "GET", path, params=params)

    assert get("/v1/assets/N-1").json() == made.json()
    assert get("/v1/assets/N-1", owner="south").json() == made.json()
    north = get("/v1/assets/N-1", owner="north")
    assert north.status_code == 200 and north.json()["agency_id"] == "north"
    assert north.json()["epc_hex"] == NORTH_TAG
    assert north.json() == service.call("all", "GET", "/v1/assets/N-1").json()
    assert get("/v1/assets/N-1/location", owner="north").json()["holder_ref"] == "north-store"
    assert get("/v1/assets/N-1/location").json()["holder_ref"] == "south-store"
    theirs = get("/v1/assets/N-1/history", owner="north")
    ours = get("/v1/assets/N-1/history")
    assert theirs.status_code == 200 and ours.status_code == 200, (theirs.text, ours.text)
    assert [e["record"]["agency"] for e in theirs.json()["events"]] == ["north"]
    assert [e["record"]["agency"] for e in ours.json()["events"]] == ["south"]
    assert theirs.json()["events"][0]["event_hash"] != ours.json()["events"][0]["event_hash"]
    assert get("/v1/assets/N-1/foreign-sightings", owner="north").status_code == 404
    assert get("/v1/assets/N-1/foreign-sightings").status_code == 200
    assert get("/v1/assets/N-1/corrections", owner="north").status_code == 404
    assert get("/v1/assets/N-1/corrections", owner="south").json() == []
    assert get("/v1/assets/N-1", owner="west").status_code == 404
    assert service.call("all", "GET", "/v1/assets/N-1", params={"owner": "south"}
                        ).status_code == 404


def test_a_list_pages_through_two_assets_of_one_id(service: Service) -> None:
    """South's own N-1 and north's N-1 shared with it, one per page: the cursor names the
    owner as well as the id, so the second page has north's, not nothing."""
    _two_of_one_id(service)
    seen, params = [], {"limit": "1"}
    for _ in range(5):
        page = service.call("south", "GET", "/v1/assets", params=params)
        assert page.status_code == 200, page.text
        seen += [(row["id"], row["agency_id"]) for row in page.json()["items"]]
        if page.json()["next_after"] is None:
            break
        params = {"limit": "1", "after": page.json()["next_after"],
                  "after_owner": page.json()["next_after_owner"]}
    assert seen == [("N-1", "north"), ("N-1", "south")]
