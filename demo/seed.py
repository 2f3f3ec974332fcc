"""The demo registry `kitledger up` seeds: two agencies, their stores, readers, people and kit.

Agency `metpolice` runs the scripted day (its three readers play `scenarios/*.toml`); agency
`fireservice` owns two radios of its own, so that signing in as one agency and never seeing the
other's kit can be shown on every page. Badge and asset EPCs here match the scenario files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from sqlmodel import Session, col, select

from api.auth import create_api_client
from api.client_admin import revoke
from api.custody.evidence import set_references
from api.db import utcnow
from api.models import Agency, ApiClient, Scope, Site
from api.models.assets import AssetClassCreate, AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate, ReaderRole
from api.registry import create_asset, create_class, create_person, register_reader

DEMO_AGENCY: Final = "metpolice"
OTHER_AGENCY: Final = "fireservice"
DEMO_SITE: Final = "hq-stores"
DEMO_CASE: Final = "24-001234"
"""The demo's case: the evidence bag is its exhibit DC/1, so the auditor's page has a case."""
BADGE_PREFIX: Final = "E2801190"
"""Staff badges the desk agents open sessions with; a second badge soon after the first
co-signs the open session (the agent's `cosign_window_s`), which is how dual sign-off works."""


@dataclass(frozen=True, slots=True)
class DemoReader:
    reader_id: str
    role: ReaderRole
    protocol: str
    scenario: str
    zones: tuple[tuple[int, str], ...]


DEMO_READERS: Final = (
    DemoReader("issue-desk", ReaderRole.ISSUE_DESK, "thingmagic", "issue-desk.toml",
               ((1, "desk"),)),
    DemoReader("return-desk", ReaderRole.RETURN_DESK, "r2000", "return-desk.toml",
               ((1, "desk"),)),
    DemoReader("portal", ReaderRole.PORTAL, "thingmagic", "portal.toml",
               ((1, "store"), (2, "corridor"))),
)

_SITES: Final = ((DEMO_AGENCY, DEMO_SITE, "HQ property store"),
                 (DEMO_AGENCY, "north-station", "North station locker room"),
                 (OTHER_AGENCY, "fire-hq", "Fire HQ equipment store"))
_CLASSES: Final = (
    # agency, id, name, qualification, loan days, dual sign-off
    (DEMO_AGENCY, "radio", "Radio", None, 1, False),
    (DEMO_AGENCY, "taser", "Taser", "taser", 1, False),
    (DEMO_AGENCY, "evidence-bag", "Evidence bag", "evidence", 30, True),
    (DEMO_AGENCY, "bodycam", "Body-worn camera", None, 1, False),
    (OTHER_AGENCY, "fire-radio", "Fireground radio", None, 1, False),
)
_PEOPLE: Final = (
    (DEMO_AGENCY, "pc-adams", ("E28011900000000000000A01",), ()),
    (DEMO_AGENCY, "pc-baker", ("E28011900000000000000B02",), ()),
    (DEMO_AGENCY, "dc-carter", ("E28011900000000000000C03",), ("evidence", "taser")),
    (DEMO_AGENCY, "sgt-dane", ("E28011900000000000000D04",), ("evidence",)),
    (OTHER_AGENCY, "ff-evans", ("E28011900000000000000E05",), ()),
)
_ASSETS: Final = (
    (DEMO_AGENCY, "radio-1", "radio", "341800000000000000000101", DEMO_SITE),
    (DEMO_AGENCY, "radio-2", "radio", "341800000000000000000102", DEMO_SITE),
    (DEMO_AGENCY, "radio-3", "radio", "341800000000000000000103", DEMO_SITE),
    (DEMO_AGENCY, "radio-4", "radio", "341800000000000000000104", "north-station"),
    (DEMO_AGENCY, "taser-1", "taser", "341800000000000000000201", DEMO_SITE),
    (DEMO_AGENCY, "evidence-bag-1", "evidence-bag", "341800000000000000000301", DEMO_SITE),
    (DEMO_AGENCY, "bodycam-1", "bodycam", "341800000000000000000401", DEMO_SITE),
    (OTHER_AGENCY, "fire-radio-1", "fire-radio", "341800000000000000000901", "fire-hq"),
    (OTHER_AGENCY, "fire-radio-2", "fire-radio", "341800000000000000000902", "fire-hq"),
)
DEMO_SCOPES: Final = tuple(Scope)
"""Demo logins may do everything within their own agency: the pages show every role."""


def seed_registry(session: Session, public_keys: dict[str, str]) -> None:
    """Write the demo registry; `public_keys` maps each demo reader id to its key (hex)."""
    now = utcnow()
    for agency_id, name in ((DEMO_AGENCY, "Metropolitan Police (demo)"),
                            (OTHER_AGENCY, "Fire and Rescue Service (demo)")):
        session.add(Agency(id=agency_id, name=name, created_at=now))
    session.flush()
    for agency_id, site_id, name in _SITES:
        session.add(Site(id=site_id, agency_id=agency_id, name=name))
    session.flush()
    for agency_id, class_id, name, qualification, loan_days, dual in _CLASSES:
        create_class(session, agency_id=agency_id, now=now, data=AssetClassCreate(
            id=class_id, name=name, required_qualification=qualification,
            loan_days=loan_days, dual_signoff=dual))  # logged, as through the API
    session.flush()
    for reader in DEMO_READERS:
        register_reader(session, agency_id=DEMO_AGENCY, now=now, data=ReaderCreate(
            id=reader.reader_id, site_id=DEMO_SITE, role=reader.role,
            zones={str(port): zone for port, zone in reader.zones},
            public_key=public_keys[reader.reader_id]))
    for agency_id, person_id, badges, qualifications in _PEOPLE:
        create_person(session, agency_id=agency_id, now=now, data=PersonCreate(
            id=person_id, badges=list(badges), qualifications=list(qualifications)))
    assets = {asset_id: create_asset(session, agency_id=agency_id, now=now, data=AssetCreate(
        id=asset_id, class_id=class_id, epc_hex=epc, home_site_id=site_id))
        for agency_id, asset_id, class_id, epc, site_id in _ASSETS}
    session.flush()
    set_references(session, asset=assets["evidence-bag-1"], case_ref=DEMO_CASE,
                   exhibit_ref="DC/1", now=now)
    session.commit()


DEMO_LOGIN_NAME: Final = "demo login"
"""The name of the clients `demo_logins` makes: each run revokes the previous run's."""


class NotDevelopment(Exception):
    """Demo logins were asked for outside development."""


def demo_logins(session: Session, server_secret: str, environment: str) -> dict[str, str]:
    """One API key per demo agency (agency id -> key), shown once by `kitledger up`.

    Development only: demo keys hold every scope, so a production database never gets them.
    The previous run's demo keys are revoked, so running `up` again leaves one set working.
    """
    if environment != "development":
        raise NotDevelopment(f"no demo logins in {environment}")
    now = utcnow()
    for old in session.exec(select(ApiClient).where(
            ApiClient.name == DEMO_LOGIN_NAME, col(ApiClient.revoked_at).is_(None),
            col(ApiClient.agency_id).in_([DEMO_AGENCY, OTHER_AGENCY]))):
        revoke(session, old, now)
    keys = {}
    for agency_id in (DEMO_AGENCY, OTHER_AGENCY):
        _, keys[agency_id] = create_api_client(
            session, agency_id=agency_id, name=DEMO_LOGIN_NAME, scopes=DEMO_SCOPES,
            server_secret=server_secret, now=utcnow())
    session.commit()
    return keys


def agent_config(reader: DemoReader, *, port: str, mqtt_host: str, mqtt_port: int) -> str:
    """The `kitledger-agent` configuration of one demo reader (paths relative to the file)."""
    antennas = "\n".join(f'[antennas.{p}]\nzone = "{z}"\nrssi_floor = -90\n'
                         for p, z in reader.zones)
    portal = ('[portal]\ninside = "store"\noutside = "corridor"\nwindow_s = 5.0\n'
              if reader.role == ReaderRole.PORTAL else "")
    ports = ", ".join(str(p) for p, _ in reader.zones)
    return f"""\
[reader]
id = "{reader.reader_id}"
agency = "{DEMO_AGENCY}"
site = "{DEMO_SITE}"
role = "{reader.role.value}"
protocol = "{reader.protocol}"
port = "{port}"

[reader.settings]
antennas = [{ports}]

[identity]
key_file = "reader.key"

[outbox]
path = "outbox.db"

[mqtt]
host = "{mqtt_host}"
port = {mqtt_port}
client_id = "agent-{reader.reader_id}"
reconnect_max_s = 2
health_interval_s = 5

[pipeline]
min_reads = 2
debounce_s = 1.0
depart_after_s = 2.0

{antennas}
[badges]
prefixes = ["{BADGE_PREFIX}"]
session_timeout_s = 4

{portal}"""
