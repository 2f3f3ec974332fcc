"""Test helpers for the API tests: registering readers and signing as the agent does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, text
from sqlmodel import Session, select

from api import registry as api_registry
from api.auth import create_api_client
from api.db import utcnow
from api.ingest.checks import InboundMessage
from api.models import Agency, Alert, ReaderRole, Scope, Site
from api.models.assets import AssetClass, AssetCreate
from api.models.people import PersonCreate
from api.models.registry import ReaderCreate
from api.registry import create_asset
from ledger.core.envelope import raw_public_key, sign_envelope
from ledger.core.records import Observation, format_time

RADIO_EPC = "E2801160600002054BD1A1B1"


@dataclass
class RegisteredReader:
    """A reader registered in the test database, with the private key only the test holds."""

    reader_id: str
    agency_id: str
    site_id: str
    key: Ed25519PrivateKey

    @property
    def topic(self) -> str:
        return f"kitledger/v1/{self.agency_id}/{self.site_id}/{self.reader_id}/events"

    def observation(self, seq: int, epc: str = RADIO_EPC, **fields: Any) -> Observation:
        values: dict[str, Any] = {
            "device": self.reader_id, "seq": seq, "time": format_time(datetime.now(UTC)),
            "kind": "read", "epc": epc, "antenna": 1, "rssi": -50,
        }
        values.update(fields)
        return Observation(**values)

    def signed(self, seq: int, epc: str = RADIO_EPC, **fields: Any) -> bytes:
        """Envelope bytes exactly as the agent publishes them."""
        return sign_envelope(self.observation(seq, epc, **fields).to_record(), self.key).to_bytes()

    def message(self, seq: int, epc: str = RADIO_EPC, **fields: Any) -> InboundMessage:
        return InboundMessage(self.topic, self.signed(seq, epc, **fields), mid=seq)


def register_reader(
    engine: Engine, agency_id: str = "north", site_id: str = "north-store",
    reader_id: str = "rdr-1", role: ReaderRole = ReaderRole.ISSUE_DESK,
) -> RegisteredReader:
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    with Session(engine) as session:
        if session.get(Agency, agency_id) is None:
            session.add(Agency(id=agency_id, name=agency_id.title()))
            session.flush()  # no ORM relationships, so insert parents before children
        if session.get(Site, (agency_id, site_id)) is None:
            session.add(Site(id=site_id, agency_id=agency_id, name=site_id))
            session.flush()
        # As the API registers one: the registration is logged (`api.registry_log`).
        api_registry.register_reader(
            session, agency_id=agency_id, now=utcnow(), data=ReaderCreate(
                id=reader_id, site_id=site_id, role=role, zones={"1": "desk"},
                public_key=raw_public_key(public).hex()))
        session.commit()
    return RegisteredReader(reader_id, agency_id, site_id, key)


def seed_fuzzed_agency(engine: Engine, key_scopes: dict[str, list[Scope]],
                       server_secret: str) -> dict[str, str]:
    """Agency `north` as the schemathesis runs find it: site `north-store`, reader `rdr-1`,
    asset class `radio`, asset `R-1`, person `p-1` and an alert for the operations to reach,
    and a key by name for each scope list."""
    reader = register_reader(engine, agency_id="north", site_id="north-store",
                             reader_id="rdr-1")
    now = datetime.now(UTC)
    keys = {}
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id=reader.agency_id, name="Radio"))
        session.add(Alert(agency_id=reader.agency_id, kind="unexpected_site", asset_id=None,
                          detail="seeded", created_at=now))
        session.flush()
        create_asset(session, agency_id=reader.agency_id, now=now, data=AssetCreate(
            id="R-1", class_id="radio", epc_hex=RADIO_EPC, home_site_id=reader.site_id))
        api_registry.create_person(session, agency_id=reader.agency_id, now=now,
                                   data=PersonCreate(id="p-1", qualifications=["taser"]))
        for name, scopes in key_scopes.items():
            _, keys[name] = create_api_client(session, agency_id=reader.agency_id, name=name,
                                              scopes=scopes, server_secret=server_secret,
                                              now=now)
        session.commit()
    return keys


def register_radio(engine: Engine) -> None:
    """Radio R-1 of agency north, tagged `RADIO_EPC`: reads of it at a desk are ruled on (and
    answered)."""
    with Session(engine) as session:
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=datetime.now(UTC), data=AssetCreate(
            id="R-1", class_id="radio", epc_hex=RADIO_EPC, home_site_id="north-store"))
        session.commit()


def reference_root(entries: list[bytes]) -> bytes:
    """MTH of RFC 9162 section 2.1.1, transcribed: the oracle for the stored log."""
    if not entries:
        return hashlib.sha256(b"").digest()
    if len(entries) == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = 1 << ((len(entries) - 1).bit_length() - 1)
    left, right = reference_root(entries[:k]), reference_root(entries[k:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def stored(engine: Engine, model: type) -> int:
    """How many rows of `model` the database holds."""
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def assert_machine_row(output: str) -> None:
    """The table's row of this machine's speed: a measured verify time, and its ratio to the
    reference machine's (55 µs on 2 cores, this project's CI machine kind) worked out from it."""
    found = re.search(r"^\| machine: PyNaCl Ed25519 verify, ([\d.]+) µs \(reference machine "
                      r"55 µs\) \| ([\d.]+)x the reference's speed \|", output, re.MULTILINE)
    assert found, output
    measured, ratio = float(found[1]), float(found[2])
    assert measured > 0
    assert abs(ratio - 55 / measured) < 0.01


def log_leaves(session: Session, agency_id: str) -> list[bytes]:
    """Every leaf of agency `agency_id`'s log as stored: its custody events and its registry
    records (`api.registry_log`), in leaf order."""
    rows = session.connection().execute(text(
        "SELECT leaf_index, record FROM custody_event WHERE agency_id = :a UNION ALL "
        "SELECT leaf_index, record FROM registry_record WHERE agency_id = :a "
        "ORDER BY leaf_index"), {"a": agency_id}).all()
    assert [leaf for leaf, _record in rows] == list(range(len(rows))), "a leaf is missing"
    return [bytes(record) for _leaf, record in rows]
