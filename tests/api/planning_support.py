"""A hand-worked pool history for the planning tests, made through the real functions: manual
desk entries (check-outs, check-ins), "none in store" refusals, a booking, a repair.

North runs `north-store` (radios R-1, R-2) and `north-annex` (R-3); south runs `south-store`
with S-1 shared with north and S-2 not. Times are hours after `START` (a Monday 00:00 UTC,
two weeks back); `EXPECTED_*` are what `load_history` must find, worked out by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session

from api.auth import create_api_client
from api.custody import maintenance, reservations
from api.models import Agency, Asset, Person, ReaderRole, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate
from api.models.maintenance import Reservation
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate
from api.planning.unmet import record_none_in_store
from api.registry import create_asset, create_class, create_person, register_reader
from api.scoping import own_row
from demo.history import DeskHands, check_in, check_out
from ledger.core.envelope import raw_public_key

SECRET: Final = "planning-test-secret-0123456789abcdef"
_TODAY = datetime.combine(datetime.now(UTC).date(), time(), UTC)
START: Final = _TODAY - timedelta(days=_TODAY.weekday() + 14)
"""The Monday two weeks before this week's: the period is [START, START + 7 days)."""
END: Final = START + timedelta(days=7)
NORTH = DeskHands("north", "n-issue", "n-return", "n-sgt")
SOUTH = DeskHands("south", "s-issue", "s-return", "s-sgt")


def h(hours: float) -> datetime:
    """`hours` after START."""
    return START + timedelta(hours=hours)


Seen = tuple[float, str, bool, float | None, bool]
"""A request as the tests compare it: hours after START, source, met, held hours, no-show."""

EXPECTED_STORE: Final[list[Seen]] = [
    # (hours after START, source, met, held hours or None, no-show)
    (8, "check_out", True, 2.0, False),
    (9, "check_out", True, 3.0, False),
    (11, "none_in_store", False, None, False),
    (11, "none_in_store", False, None, False),
    (20, "check_out", True, None, False),
    (60, "booking", True, 6.0, True),
    (61, "booking", True, 4.0, False),
]
"""North-store alone: R-2's check-out before START is not in it, nor anything of south's."""
EXPECTED_ANNEX: Final[list[Seen]] = [(9, "check_out", True, 0.5, False),
                                     (11, "none_in_store", False, None, False),
                                     (101, "booking", True, 2.0, False)]
"""North-annex: R-3 out and back, a refusal, and R-3 booked by name and collected."""
EXPECTED_SHARED: Final[list[Seen]] = [(13, "check_out", True, 2.0, False)]
"""S-1, shared with north; S-2 (unshared) and south's refusal never appear."""


def _desks(session: Session, hands: DeskHands, site_id: str) -> None:
    for reader_id, role in ((hands.issue_desk, ReaderRole.ISSUE_DESK),
                            (hands.return_desk, ReaderRole.RETURN_DESK)):
        key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
        register_reader(session, agency_id=hands.agency_id, now=START, data=ReaderCreate(
            id=reader_id, site_id=site_id, role=role, zones={"1": "desk"}, public_key=key))


def _registry(session: Session) -> None:
    before = START - timedelta(days=2)
    for agency, sites in (("north", ("north-store", "north-annex")), ("south", ("south-store",))):
        session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        for site in sites:
            session.add(Site(id=site, agency_id=agency, name=site))
        session.flush()
    create_class(session, agency_id="north", now=before,
                 data=AssetClassCreate(id="radio", name="Radio"))
    create_class(session, agency_id="south", now=before,
                 data=AssetClassCreate(id="s-radio", name="Radio"))
    create_class(session, agency_id="south", now=before,
                 data=AssetClassCreate(id="s-tool", name="Tool"))
    session.flush()
    _desks(session, NORTH, "north-store")
    _desks(session, SOUTH, "south-store")
    for agency, people in (("north", ("n-sgt", "p-1", "p-2", "p-3")), ("south", ("s-sgt", "s-1"))):
        for person in people:
            create_person(session, agency_id=agency, now=before, data=PersonCreate(id=person))
    for n, (agency, asset, class_id, site, shared) in enumerate((
            ("north", "R-1", "radio", "north-store", []),
            ("north", "R-2", "radio", "north-store", []),
            ("north", "R-3", "radio", "north-annex", []),
            ("south", "S-1", "s-radio", "south-store", ["north"]),
            ("south", "S-2", "s-radio", "south-store", []),
            ("south", "T-1", "s-tool", "south-store", []))):
        create_asset(session, agency_id=agency, now=before, data=AssetCreate(
            id=asset, class_id=class_id, epc_hex=f"E2801160600002050000{n:04X}",
            home_site_id=site, shared_with=shared))


def _custody(session: Session) -> None:
    check_out(session, NORTH, "R-2", "p-2", h(-2))  # before the period: not in it
    check_in(session, NORTH, "R-2", h(-1))
    check_out(session, NORTH, "R-1", "p-1", h(8))
    check_out(session, NORTH, "R-2", "p-2", h(9))
    check_out(session, NORTH, "R-3", "p-3", h(9))  # desks are per agency, not per site
    check_in(session, NORTH, "R-3", h(9.5))
    check_in(session, NORTH, "R-1", h(10))
    check_in(session, NORTH, "R-2", h(12))
    check_out(session, SOUTH, "S-1", "s-1", h(13))
    check_out(session, SOUTH, "S-2", "s-1", h(13))
    check_in(session, SOUTH, "S-2", h(14))
    check_in(session, SOUTH, "S-1", h(15))
    check_out(session, NORTH, "R-1", "p-3", h(20))  # still out at the end
    for site in ("north-store", "north-store", "north-annex"):
        record_none_in_store(session, agency_id="north", site_id=site, class_id="radio",
                             at=h(11), now=h(11), client_id="test")
    record_none_in_store(session, agency_id="south", site_id="south-store",
                         class_id="s-radio", at=h(13), now=h(13), client_id="test")


def _upkeep_and_booking(session: Session) -> None:
    sgt = own_row(session, Person, "north", "n-sgt")
    assert sgt is not None
    for in_service, at in ((False, h(30)), (True, h(54))):
        asset = own_row(session, Asset, "north", "R-2")
        assert asset is not None
        maintenance.change_service(session, asset=asset, in_service=in_service,
                                   reason="repair", officer=sgt, now=at)
    for agency, class_id, people in (("north", "radio", ["p-1", "p-2"]),
                                     ("south", "s-radio", ["s-1"])):
        reservations.book(session, Reservation(
            agency_id=agency, operation="op-test", class_id=class_id, quantity=2 if
            agency == "north" else 1, people=people, starts_at=h(60), ends_at=h(66),
            client_id="test"), h(1))
    check_out(session, NORTH, "R-2", "p-1", h(61))  # one of the two booked radios
    check_in(session, NORTH, "R-2", h(65))
    reservations.book(session, Reservation(
        agency_id="north", operation="op-named", asset_ids=["R-3"], people=["p-3"],
        starts_at=h(100), ends_at=h(104), client_id="test"), h(1))
    check_out(session, NORTH, "R-3", "p-3", h(101))  # the named radio, collected
    check_in(session, NORTH, "R-3", h(103))


def build_world(engine: Engine) -> dict[str, str]:
    """Write the history; return an API key per name: `north` and `south` (assets:read and
    custody:write), `north-desk` (custody:write only), `north-reader` (assets:read only)."""
    keys = {}
    with Session(engine) as session:
        _registry(session)
        _custody(session)
        _upkeep_and_booking(session)
        for name, agency, scopes in (
                ("north", "north", [Scope.ASSETS_READ, Scope.CUSTODY_WRITE]),
                ("south", "south", [Scope.ASSETS_READ, Scope.CUSTODY_WRITE]),
                ("north-desk", "north", [Scope.CUSTODY_WRITE]),
                ("north-reader", "north", [Scope.ASSETS_READ])):
            _, keys[name] = create_api_client(session, agency_id=agency, name=name,
                                              scopes=scopes, server_secret=SECRET, now=START)
        session.commit()
    return keys
