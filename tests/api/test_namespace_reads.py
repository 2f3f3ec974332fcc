"""Ids and EPCs are each agency's own, at the readers too: north and south both have a site
"store", a class "radio", a person "p-1" with badge B and an asset "R-1" tagged E. Each
agency's desk rules on its own R-1 with its own p-1, and neither's reads move, name or
describe the other's; a third agency's reader reading E is a foreign sighting for both
owners."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.models import Agency, Asset, AssetClass, CustodyEventRow, ForeignSighting, Site
from api.models.assets import AssetCreate, AssetStatus
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_person
from tests.api.api_support import RegisteredReader, register_reader

EPC = "E28011606000020500000501"
BADGE = "E28011606000020500000502"
AGENCIES = ("north", "south")


def _twins(engine: Engine) -> dict[str, RegisteredReader]:
    """The same ids and EPCs registered in north and south; a desk in each, and east's."""
    now = datetime.now(UTC)
    with Session(engine) as session:
        for agency in (*AGENCIES, "east"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        for agency in (*AGENCIES, "east"):
            session.add(Site(id="store", agency_id=agency, name=f"{agency} store"))
        session.flush()
        for agency in AGENCIES:
            session.add(AssetClass(id="radio", agency_id=agency, name="Radio"))
            session.flush()
            create_person(session, agency_id=agency, now=now,
                          data=PersonCreate(id="p-1", badges=[BADGE]))
            create_asset(session, agency_id=agency, now=now, data=AssetCreate(
                id="R-1", class_id="radio", epc_hex=EPC, home_site_id="store"))
        session.commit()
    return {agency: register_reader(engine, agency, "store", f"{agency}-desk", role)
            for agency, role in (("north", ReaderRole.ISSUE_DESK),
                                 ("south", ReaderRole.ISSUE_DESK),
                                 ("east", ReaderRole.VEHICLE_BAY))}


def _asset(engine: Engine, agency: str) -> Asset:
    with Session(engine) as session:
        asset = session.get(Asset, (agency, "R-1"))
        assert asset is not None
        return asset


@pytest.mark.parametrize("desk_agency", AGENCIES)
def test_each_desk_checks_out_its_own_asset_to_its_own_person(
    engine: Engine, desk_agency: str,
) -> None:
    readers = _twins(engine)
    other = next(a for a in AGENCIES if a != desk_agency)
    desk = readers[desk_agency]
    result = IngestPipeline(engine, load_settings()).process([
        desk.message(0, BADGE, kind="badge", session="s1"),
        desk.message(1, EPC, session="s1")])
    answers = [json.loads(d.payload) for d in result.decisions]
    assert [(a["decision"], a.get("action"), a.get("asset")) for a in answers] == [
        ("accept", None, None), ("accept", "check_out", "R-1")]
    mine, theirs = _asset(engine, desk_agency), _asset(engine, other)
    assert (mine.status, mine.holder_ref, mine.holder_agency_id) == (
        AssetStatus.CHECKED_OUT, "p-1", desk_agency)
    assert mine.last_seen_reader_id == desk.reader_id
    assert (theirs.status, theirs.holder_ref, theirs.holder_agency_id) == (
        AssetStatus.IN_STORE, "store", other)
    assert theirs.last_seen_reader_id is None  # not moved, not sighted
    with Session(engine) as session:
        events = session.exec(select(CustodyEventRow.agency_id, CustodyEventRow.action)
                               .where(CustodyEventRow.action == "check_out")).all()
        foreign = session.exec(select(ForeignSighting)).all()
    assert [tuple(e) for e in events] == [(desk_agency, "check_out")]
    assert foreign == []  # its own asset answered for the tag: nothing foreign was read


def test_a_third_agencys_reader_sees_a_foreign_tag_and_learns_nothing(engine: Engine) -> None:
    readers = _twins(engine)
    bay = readers["east"]
    result = IngestPipeline(engine, load_settings()).process([bay.message(0, EPC)])
    assert result.decisions == []  # a vehicle bay only sights; and names nothing
    for agency in AGENCIES:
        assert _asset(engine, agency).last_seen_reader_id is None
    with Session(engine) as session:
        foreign = session.exec(select(ForeignSighting.owner_id, ForeignSighting.asset_id,
                                      ForeignSighting.reporting_agency_id)).all()
    assert len(foreign) == 1 and foreign[0][1:] == ("R-1", "east")
    assert foreign[0][0] in AGENCIES
