"""The registry in the log (`api.registry_log`): every change the custody rules read is a log
record, appended with the change through the REST routes, and the rows older than it are
backfilled once by `kitledger migrate`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.db import utcnow
from api.logstore import open_log
from api.models import Agency, Asset, AssetClass, AssetShare, Reader, Site
from api.models.custody import RegistryRecordRow
from api.registry_log import backfill_registry
from ledger.core.encoding import parse_record
from ledger.core.envelope import key_id, raw_public_key
from ledger.core.records import RegistryRecord
from tests.api.api_support import log_leaves, reference_root
from tests.api.test_rest import World, world  # noqa: F401 (the fixture `rest` builds on)


@pytest.fixture
def rest(world: World) -> World:  # noqa: F811 (the imported fixture, by name)
    """test_rest's world: north and south, classes and assets made through the routes."""
    return world


def _records(engine: Engine, agency: str) -> list[tuple[str, dict[str, object]]]:
    """(kind, fields) of the agency's registry records, in leaf order."""
    with Session(engine) as session:
        rows = session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.agency_id == agency).order_by(col(RegistryRecordRow.leaf_index)))
        parsed = [RegistryRecord.from_record(parse_record(bytes(r.record))) for r in rows]
    return [(r.kind, dict(r.fields)) for r in parsed]


def _kinds(engine: Engine, agency: str) -> list[str]:
    return [kind for kind, _fields in _records(engine, agency)]


def test_registry_changes_through_the_api_are_logged_in_order(rest: World,
                                                              engine: Engine) -> None:
    # The world: classes, then N-1, N-2 (shared with south) through the routes; n-desk too.
    assert _kinds(engine, "north") == [
        "registry-opened", "class-policy", "asset-registered", "asset-registered",
        "share-granted", "reader-registered"]
    with Session(engine) as session:
        leaves = log_leaves(session, "north")
        assert open_log(session, "north").root() == reference_root(leaves)
    # Each asset's tag is logged right before its genesis event, in the same transaction.
    tag = leaves.index(next(leaf for leaf in leaves if b'"asset":"N-1"' in leaf
                            and b'"asset-registered"' in leaf))
    assert leaves[tag + 1].startswith(b'{"action":"register","agency":"north","asset":"N-1"')


def test_revoking_logs_once_and_sharing_logs_each_change(rest: World, engine: Engine) -> None:
    for _ in range(2):
        assert rest.call("north", "POST", "/v1/readers/n-desk/revoke").status_code == 200
    assert _kinds(engine, "north").count("reader-revoked") == 1
    patched = rest.call("north", "PATCH", "/v1/assets/N-2", json={"shared_with": []})
    assert patched.status_code == 200, patched.text
    assert rest.call("north", "PATCH", "/v1/assets/N-1",
                      json={"shared_with": ["south"]}).status_code == 200
    shares = [(kind, fields) for kind, fields in _records(engine, "north")
              if kind.startswith("share-")]
    assert shares == [("share-granted", {"asset": "N-2", "with": "south"}),
                      ("share-ended", {"asset": "N-2", "with": "south"}),
                      ("share-granted", {"asset": "N-1", "with": "south"})]
    # Sharing again what is shared changes nothing, and logs nothing.
    before = len(_records(engine, "north"))
    rest.call("north", "PATCH", "/v1/assets/N-1", json={"shared_with": ["south"]})
    assert len(_records(engine, "north")) == before


def test_a_reader_registration_logs_its_key_role_and_site(rest: World, engine: Engine) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    created = rest.call("north", "POST", "/v1/readers", json={
        "id": "n-locker", "site_id": "north-store", "role": "locker",
        "public_key": raw_public_key(key).hex()})
    assert created.status_code == 201, created.text
    kind, fields = _records(engine, "north")[-1]
    assert (kind, fields) == ("reader-registered", {
        "reader": "n-locker", "site": "north-store", "role": "locker", "kid": key_id(key),
        "public_key": raw_public_key(key).hex()})
    # A refused registration (unknown site) logs nothing.
    refused = rest.call("north", "POST", "/v1/readers", json={
        "id": "n-ghost", "site_id": "nowhere", "role": "locker",
        "public_key": raw_public_key(key).hex()})
    assert refused.status_code == 422
    assert _records(engine, "north")[-1][1]["reader"] == "n-locker"


def _old_rows(engine: Engine) -> None:
    """Registry rows as they stood before the registry was logged (written directly)."""
    now = datetime.now(UTC)
    key = raw_public_key(Ed25519PrivateKey.generate().public_key())
    with Session(engine) as session:
        session.add(Agency(id="west", name="West"))
        session.flush()
        session.add(Site(id="west-store", agency_id="west", name="Store"))
        session.add(AssetClass(id="west-radio", agency_id="west", name="Radio",
                               dual_signoff=True))
        session.flush()
        session.add(Reader(id="w-desk", agency_id="west", site_id="west-store",
                           role="issue_desk", public_key=key.hex(), key_id="ab" * 16,
                           registered_at=now, revoked_at=now, status="revoked"))
        session.add(Asset(id="W-1", agency_id="west", class_id="west-radio",
                          epc_hex="E280000000000000000000F1",
                          home_site_id="west-store", holder_ref="west-store",
                          holder_agency_id="west"))
        session.flush()
        session.add(AssetShare(owner_id="west", asset_id="W-1", agency_id="west"))
        session.commit()


def test_the_backfill_logs_older_rows_once(engine: Engine) -> None:
    _old_rows(engine)
    with Session(engine) as session:
        appended = backfill_registry(session, utcnow())
        session.commit()
    assert _kinds(engine, "west") == [
        "registry-opened", "reader-registered", "reader-revoked", "class-policy",
        "asset-registered", "share-granted"]
    assert _records(engine, "west")[0][1] == {"backfilled": 5}
    assert appended == 6
    with Session(engine) as session:
        assert backfill_registry(session, utcnow()) == 0  # idempotent: nothing left to mirror
        session.commit()
        assert open_log(session, "west").size == 6
