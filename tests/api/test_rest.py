"""The /v1 REST API: registry, assets, location, history with proofs, problems, auth, and the
agency isolation matrix (agency A never sees agency B's unshared data on any endpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.models import Agency, Alert, Asset, Scope, Site
from ledger.core.encoding import canonical_bytes
from ledger.core.envelope import raw_public_key
from ledger.core.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.api.api_support import log_leaves, register_reader

SECRET = "s" * 40
METRICS_KEY = "m" * 32
ALL = list(Scope)


@dataclass
class World:
    client: TestClient
    keys: dict[str, str]

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))
        return self.client.request(method, url, headers=headers, **kwargs)


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    settings = load_settings(environment="test", secret_key=SECRET, metrics_key=METRICS_KEY)
    now = datetime.now(UTC)
    keys = {}
    with Session(engine) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        for agency in ("north", "south"):
            session.add(Site(id=f"{agency}-store", agency_id=agency, name="Store"))
        for name, agency, scopes in (("north", "north", ALL), ("south", "south", ALL),
                                     ("north-ro", "north", [Scope.ASSETS_READ])):
            _, keys[name] = create_api_client(session, agency_id=agency, name=name,
                                              scopes=scopes, server_secret=SECRET, now=now)
        session.commit()
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False)
    w = World(client, keys)
    for agency in ("north", "south"):
        assert w.call(agency, "POST", "/v1/asset-classes",
                      json={"id": f"{agency}-radio", "name": "Radio"}).status_code == 201
    def asset(agency: str, asset_id: str, epc: str, shared: list[str]) -> None:
        response = w.call(agency, "POST", "/v1/assets", json={
            "id": asset_id, "class_id": f"{agency}-radio", "epc_hex": epc,
            "home_site_id": f"{agency}-store", "shared_with": shared})
        assert response.status_code == 201, response.text
    asset("north", "N-1", "E28000000000000000000001", [])
    asset("north", "N-2", "E28000000000000000000002", ["south"])
    asset("south", "S-1", "E28000000000000000000003", [])
    assert w.call("north", "POST", "/v1/people",
                  json={"id": "alice", "badges": ["E2800000000000000000AAAA"]}).status_code == 201
    with Session(engine) as session:
        session.add(Alert(agency_id="north", kind="unexpected_site", asset_id="N-1",
                          detail="x", created_at=now))
        session.commit()
    register_reader(engine, agency_id="north", site_id="north-store", reader_id="n-desk")
    yield w
    client.close()


def test_registry_and_asset_round_trip(world: World) -> None:
    key = raw_public_key(Ed25519PrivateKey.generate().public_key()).hex()
    created = world.call("north", "POST", "/v1/readers", json={
        "id": "n-door", "site_id": "north-store", "role": "portal", "public_key": key})
    assert created.status_code == 201 and len(created.json()["key_id"]) == 32
    revoked = world.call("north", "POST", "/v1/readers/n-door/revoke")
    assert revoked.json()["status"] == "revoked"
    page = world.call("north", "GET", "/v1/assets", params={"limit": 1})
    assert [a["id"] for a in page.json()["items"]] == ["N-1"]
    rest = world.call("north", "GET", "/v1/assets", params={"after": page.json()["next_after"]})
    assert [a["id"] for a in rest.json()["items"]] == ["N-2"]
    assert rest.json()["next_after"] is None
    patched = world.call("north", "PATCH", "/v1/assets/N-1", json={"epc_uri": "urn:epc:id:giai:1"})
    assert patched.json()["epc_uri"] == "urn:epc:id:giai:1"
    where = world.call("north", "GET", "/v1/assets/N-1/location").json()
    assert (where["holder_kind"], where["holder_ref"], where["status"]) == (
        "location", "north-store", "in_store")


def test_history_carries_proofs_that_verify(world: World, engine: Engine) -> None:
    history = world.call("north", "GET", "/v1/assets/N-2/history").json()
    root, size = bytes.fromhex(history["tree"]["root"]), history["tree"]["size"]
    # North's own log: its two registrations and its registry's records, none of south's
    # (logs are per agency).
    with Session(engine) as session:
        leaves = log_leaves(session, "north")
    assert size == len(leaves) and [e["action"] for e in history["events"]] == ["register"]
    assert sum(leaf.startswith(b'{"action":"register"') for leaf in leaves) == 2
    for event in history["events"]:
        leaf = leaf_hash(canonical_bytes(event["record"]))
        proof = [bytes.fromhex(h) for h in event["inclusion_proof"]]
        verify_inclusion(leaf, event["leaf_index"], size, proof, root)
    consistency = world.call("north", "GET", "/v1/log/consistency", params={"first": 1}).json()
    verify_consistency(1, size, bytes.fromhex(consistency["first"]["root"]), root,
                       [bytes.fromhex(h) for h in consistency["proof"]])
    bad = world.call("north", "GET", "/v1/log/consistency", params={"first": 99})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


def test_errors_are_problem_details(world: World) -> None:
    for response, status in (
        (world.call("", "GET", "/v1/assets"), 401),
        (world.call("north", "GET", "/v1/assets", headers={"Authorization": "Bearer kl_x"}), 401),
        (world.call("north-ro", "POST", "/v1/assets", json={}), 403),
        (world.call("north", "POST", "/v1/assets", content=b"{not json",
                    headers={"Authorization": f"Bearer {world.keys['north']}",
                             "Content-Type": "application/json"}), 422),
        (world.call("north", "POST", "/v1/assets", json={"id": "x" * 500}), 422),
        (world.call("north", "GET", "/v1/assets", params={"limit": 10_000}), 422),
        (world.call("north", "GET", "/v1/assets/nope"), 404),
        (world.call("north", "POST", "/v1/asset-classes", json={"id": "north-radio",
                                                               "name": "dup"}), 409),
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert body["status"] == status and body["type"].startswith("https://")
    secretish = world.call("north", "POST", "/v1/people", json={"id": "p", "badges": ["hunter2"]})
    assert "hunter2" not in secretish.text


def test_an_epc_is_either_an_asset_or_a_badge_never_both(world: World) -> None:
    """At a desk a badge opens a session and an asset tag is kit: one EPC cannot be both
    within an agency, whichever is registered first. Another agency's EPCs are its own."""
    badge, tag = "E2800000000000000000AAAA", "E28000000000000000000001"  # alice's; N-1's
    as_asset = world.call("north", "POST", "/v1/assets", json={
        "id": "north-X", "class_id": "north-radio", "epc_hex": badge,
        "home_site_id": "north-store"})
    assert as_asset.status_code == 409, as_asset.text
    assert world.call("north", "GET", "/v1/assets/north-X").status_code == 404
    south = world.call("south", "POST", "/v1/assets", json={
        "id": "south-X", "class_id": "south-radio", "epc_hex": badge,
        "home_site_id": "south-store"})
    assert south.status_code == 201, south.text
    assert world.call("south", "GET", "/v1/assets/south-X").json()["epc_hex"] == badge
    for badges in ([tag], ["E2800000000000000000BBBB", tag], [badge]):
        as_badge = world.call("north", "POST", "/v1/people", json={"id": "bob", "badges": badges})
        assert as_badge.status_code == 409, as_badge.text
        assert as_badge.headers["content-type"] == "application/problem+json"
        assert world.call("north", "GET", "/v1/people/bob").status_code == 404
    fresh = world.call("north", "POST", "/v1/people",
                       json={"id": "bob", "badges": ["E2800000000000000000BBBB"]})
    assert fresh.status_code == 201, fresh.text


def test_health_ready_and_metrics(world: World) -> None:
    assert world.client.get("/healthz").json() == {"status": "ok"}
    assert world.client.get("/readyz").json()["status"] == "ready"
    assert b"kitledger_ingest_messages_total" in world.client.get(
        "/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"}).content


# Agency isolation: south asks about north's unshared N-1 and north's registry on every route.
SOUTH_MUST_NOT_SEE = [
    ("GET", "/v1/assets/N-1", None),
    ("PATCH", "/v1/assets/N-1", {"epc_uri": "urn:epc:x"}),
    ("PATCH", "/v1/assets/N-2", {"epc_uri": "urn:epc:x"}),  # shared to read, not to change
    ("GET", "/v1/assets/N-1/location", None),
    ("GET", "/v1/assets/N-1/history", None),
    ("GET", "/v1/assets/N-1/foreign-sightings", None),
    ("GET", "/v1/assets/N-2/foreign-sightings", None),  # shared: the owner's record, not south's
    ("GET", "/v1/people/alice", None),
    ("DELETE", "/v1/people/alice", None),
    ("POST", "/v1/readers/n-desk/revoke", None),
    ("GET", "/v1/sites/north-store/stocktake", None),
]


@pytest.mark.parametrize(("method", "url", "body"), SOUTH_MUST_NOT_SEE)
def test_agency_isolation_on_every_item_route(
    world: World, method: str, url: str, body: object
) -> None:
    response = world.call("south", method, url, json=body)
    assert response.status_code == 404, (method, url)
    assert "alice" not in response.text and "N-1" not in response.text


def test_agency_isolation_on_every_list_route(world: World) -> None:
    lists = {
        "/v1/assets": ["S-1", "N-2"],
        "/v1/sites": ["south-store"],
        "/v1/readers": [],
        "/v1/asset-classes": ["south-radio"],
        "/v1/alerts": [],
    }
    for url, expected in lists.items():
        body = world.call("south", "GET", url).json()
        items = body["items"] if isinstance(body, dict) else body
        found = sorted(i.get("id") for i in items)
        assert found == sorted(expected), url
    for filters in ({"holder": "north-store"}, {"site": "north-store"},
                    {"class_id": "north-radio"}):
        found = world.call("south", "GET", "/v1/assets", params=filters).json()["items"]
        assert [a["id"] for a in found] in ([], ["N-2"]), filters
    # Shared assets are readable, including their location.
    assert world.call("south", "GET", "/v1/assets/N-2/location").status_code == 200
    # Creating things that point into another agency is refused.
    assert world.call("south", "POST", "/v1/assets", json={
        "id": "S-9", "class_id": "north-radio", "epc_hex": "E2800000000000000000000F",
        "home_site_id": "south-store"}).status_code == 422
    assert world.call("south", "POST", "/v1/readers", json={
        "id": "s-x", "site_id": "north-store", "role": "portal",
        "public_key": "00" * 32}).status_code == 422


GIAI_HEX = "341800000000000000000101"
GIAI_URI = "urn:epc:id:giai:000000.257"


def test_a_gs1_epc_gets_its_pure_identity_uri(world: World) -> None:
    """Registered without a URI, a GIAI tag's asset answers with the URI its EPC encodes
    (`kitledger-agent epc` gives the same); a URI naming another item is refused, at
    registration and when patched; a chip-default EPC keeps what its owner gave it."""
    def register(asset_id: str, epc: str, **extra: Any) -> Any:
        return world.call("north", "POST", "/v1/assets", json={
            "id": asset_id, "class_id": "north-radio", "epc_hex": epc,
            "home_site_id": "north-store", **extra})

    created = register("radio-1", GIAI_HEX)
    assert created.status_code == 201, created.text
    assert created.json()["epc_uri"] == GIAI_URI
    assert world.call("north", "GET", "/v1/assets/radio-1").json()["epc_uri"] == GIAI_URI
    listed = world.call("north", "GET", "/v1/assets").json()["items"]
    assert {a["id"]: a["epc_uri"] for a in listed}["radio-1"] == GIAI_URI
    wrong = register("radio-2", GIAI_HEX.replace("0101", "0102"), epc_uri=GIAI_URI)
    assert wrong.status_code == 422 and "urn:epc:id:giai:000000.258" in wrong.text
    assert world.call("north", "GET", "/v1/assets/radio-2").status_code == 404
    patched = world.call("north", "PATCH", "/v1/assets/radio-1",
                         json={"epc_uri": "urn:epc:id:giai:000000.999"})
    assert patched.status_code == 422 and patched.json()["type"].endswith("epc-uri-mismatch")
    assert world.call("north", "GET", "/v1/assets/radio-1").json()["epc_uri"] == GIAI_URI
    same = world.call("north", "PATCH", "/v1/assets/radio-1", json={"epc_uri": GIAI_URI})
    assert same.status_code == 200 and same.json()["epc_uri"] == GIAI_URI
    assert world.call("north", "GET", "/v1/assets/N-1").json()["epc_uri"] is None


def test_an_asset_stored_without_its_uri_still_shows_it(world: World, engine: Engine) -> None:
    """A row from before URIs were derived (epc_uri NULL) answers with the derived URI."""
    assert world.call("north", "POST", "/v1/assets", json={
        "id": "radio-9", "class_id": "north-radio", "epc_hex": GIAI_HEX,
        "home_site_id": "north-store"}).status_code == 201
    with Session(engine) as session:
        asset = session.get(Asset, ("north", "radio-9"))
        assert asset is not None and asset.epc_uri == GIAI_URI  # stored at registration
        asset.epc_uri = None
        session.add(asset)
        session.commit()
    assert world.call("north", "GET", "/v1/assets/radio-9").json()["epc_uri"] == GIAI_URI
