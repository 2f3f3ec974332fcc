"""Transfers, loans and disposal through the API, re-checked at acceptance and recorded in the
asset's chain; refusals answer 409 with the reason."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.ingest.pipeline import IngestPipeline
from api.models import Agency, Asset, AssetClass, CustodyEventRow, Refusal, Scope, Site
from api.models.assets import AssetCreate
from api.models.custody import RegistryRecordRow
from api.models.people import PersonCreate
from api.models.registry import ReaderRole
from api.registry import create_asset, create_person
from tests.api.api_support import RegisteredReader, register_reader

SECRET = "t" * 40
TASER, BADGE_A, BADGE_B = (
    "E28000000000000000000100",
    "E2800000000000000000000A",
    "E2800000000000000000000B",
)


class Api:
    def __init__(self, client: TestClient, keys: dict[str, str]) -> None:
        self.client, self.keys = client, keys

    def post(self, who: str, url: str, **body: Any) -> Any:
        return self.client.post(
            url, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"}
        )


@pytest.fixture
def api(engine: Engine) -> Iterator[tuple[Api, RegisteredReader]]:
    now = datetime.now(UTC)
    desk = register_reader(engine, reader_id="desk-1")
    keys = {}
    with Session(engine) as session:
        session.add(Agency(id="south", name="South"))
        session.flush()
        session.add(Site(id="south-store", agency_id="south", name="Store"))
        session.add(
            AssetClass(id="taser", agency_id="north", name="Taser", required_qualification="taser")
        )
        session.flush()
        for pid, badge, quals in (
            ("alice", BADGE_A, ["taser"]),
            ("bob", BADGE_B, []),
            ("carol", "E2800000000000000000000C", ["taser"]),
        ):
            create_person(
                session,
                agency_id="north",
                now=now,
                data=PersonCreate(id=pid, qualifications=quals, badges=[badge]),
            )
        for i, epc in enumerate((TASER, "E28000000000000000000101")):
            create_asset(
                session,
                agency_id="north",
                now=now,
                data=AssetCreate(
                    id=f"T-{i}", class_id="taser", epc_hex=epc, home_site_id="north-store"
                ),
            )
        for agency in ("north", "south"):
            _, keys[agency] = create_api_client(
                session,
                agency_id=agency,
                name=agency,
                scopes=list(Scope),
                server_secret=SECRET,
                now=now,
            )
        session.commit()
    settings = load_settings(environment="test", secret_key=SECRET)
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        yield Api(client, keys), desk


def _check_out(engine: Engine, desk: RegisteredReader, seq: int = 0) -> None:
    pipeline = IngestPipeline(engine, load_settings())
    pipeline.process(
        [
            desk.message(seq, BADGE_A, kind="badge", session="s"),
            desk.message(seq + 1, TASER, session="s"),
        ]
    )


def test_transfer_offer_then_accept_moves_custody(
    engine: Engine, api: tuple[Api, RegisteredReader]
) -> None:
    client, desk = api
    _check_out(engine, desk)
    refused = client.post("north", "/v1/assets/T-0/transfers", to_person="bob")
    assert refused.status_code == 409 and "qualification taser" in refused.json()["detail"]
    offer = client.post("north", "/v1/assets/T-0/transfers", to_person="carol")
    assert offer.status_code == 201, offer.text
    assert client.post("south", f"/v1/transfers/{offer.json()['id']}/accept").status_code == 404
    accepted = client.post("north", f"/v1/transfers/{offer.json()['id']}/accept")
    assert accepted.status_code == 200 and accepted.json()["holder_ref"] == "carol"
    again = client.post("north", f"/v1/transfers/{offer.json()['id']}/accept")
    assert again.status_code == 409
    with Session(engine) as session:
        actions = [
            r.action
            for r in session.exec(select(CustodyEventRow).where(CustodyEventRow.asset_id == "T-0"))
        ]
        reasons = [r.reason for r in session.exec(select(Refusal))]
    assert actions == ["register", "check_out", "transfer"]
    assert "recipient lacks qualification taser" in reasons


@pytest.mark.parametrize("transfer_id", ["0", "-1", str(2**63), "99999999999999999999", "x"])
@pytest.mark.parametrize("verb", ["accept", "reject", "cancel"])
def test_out_of_range_transfer_ids_are_a_clear_422(
    api: tuple[Api, RegisteredReader], transfer_id: str, verb: str
) -> None:
    """Found by schemathesis: an id past SQLite's 64-bit integers once gave a 500."""
    client, _ = api
    answer = client.post("north", f"/v1/transfers/{transfer_id}/{verb}")
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_accept_is_refused_when_nobody_saw_the_tag_recently(
    engine: Engine, api: tuple[Api, RegisteredReader]
) -> None:
    client, desk = api
    _check_out(engine, desk)
    offer = client.post("north", "/v1/assets/T-0/transfers", to_person="carol").json()
    with Session(engine) as session:
        asset = session.get(Asset, ("north", "T-0"))
        assert asset is not None and asset.last_seen_at is not None
        asset.last_seen_at -= timedelta(hours=1)
        session.add(asset)
        session.commit()
    refused = client.post("north", f"/v1/transfers/{offer['id']}/accept")
    assert refused.status_code == 409 and "seen" in refused.json()["detail"]


def test_loan_is_accepted_by_the_borrowing_agency_only(
    engine: Engine, api: tuple[Api, RegisteredReader]
) -> None:
    client, desk = api
    desk_pipeline = IngestPipeline(engine, load_settings())
    desk_pipeline.process([desk.message(0, "E28000000000000000000101")])  # seen in store
    offer = client.post("north", "/v1/assets/T-1/loans", to_agency="south", days=3).json()
    assert client.post("north", f"/v1/transfers/{offer['id']}/accept").status_code == 404
    accepted = client.post("south", f"/v1/transfers/{offer['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    assert (accepted.json()["status"], accepted.json()["holder_ref"]) == ("on_loan", "south")
    seen = client.client.get(
        "/v1/assets/T-1", headers={"Authorization": f"Bearer {client.keys['south']}"}
    )
    assert seen.status_code == 200  # the borrower can now see what it holds
    assert client.post("north", "/v1/assets/T-1/loans", to_agency="north").status_code == 409


def test_a_returned_loan_ends_the_borrowers_view(
    engine: Engine, api: tuple[Api, RegisteredReader]
) -> None:
    """The borrower reads the lent asset (holder and all) while it holds it; once a return desk
    reads it back in, the borrower gets 404 like for any other agency's kit."""
    client, desk = api
    IngestPipeline(engine, load_settings()).process([desk.message(0, "E28000000000000000000101")])
    offer = client.post("north", "/v1/assets/T-1/loans", to_agency="south", days=3).json()
    assert client.post("south", f"/v1/transfers/{offer['id']}/accept").status_code == 200
    south = {"Authorization": f"Bearer {client.keys['south']}"}
    during = client.client.get("/v1/assets/T-1", headers=south)
    assert during.status_code == 200 and during.json()["holder_ref"] == "south"
    returns = register_reader(engine, reader_id="return-1", role=ReaderRole.RETURN_DESK)
    IngestPipeline(engine, load_settings()).process(
        [returns.message(0, "E28000000000000000000101")]
    )
    with Session(engine) as session:
        actions = [r.action for r in session.exec(
            select(CustodyEventRow).where(CustodyEventRow.asset_id == "T-1"))]
    assert actions[-1] == "loan_return"
    assert client.client.get("/v1/assets/T-1", headers=south).status_code == 404
    listed = client.client.get("/v1/assets", headers=south).json()
    assert "T-1" not in str(listed)
    north = {"Authorization": f"Bearer {client.keys['north']}"}
    assert client.client.get("/v1/assets/T-1", headers=north).json()["status"] == "in_store"
    # The owner's log holds the share the loan gave and its end, around the loan's events.
    with Session(engine) as session:
        shares = [(r.kind, r.leaf_index) for r in session.exec(
            select(RegistryRecordRow).where(RegistryRecordRow.subject_id == "T-1",
                                            col(RegistryRecordRow.kind).startswith("share-"))
            .order_by(col(RegistryRecordRow.leaf_index)))]
        loan = {r.action: r.leaf_index for r in session.exec(
            select(CustodyEventRow).where(CustodyEventRow.asset_id == "T-1"))}
    assert [kind for kind, _leaf in shares] == ["share-granted", "share-ended"]
    assert shares[0][1] < loan["loan_out"] and shares[1][1] < loan["loan_return"]


def test_reject_cancel_and_final_disposal(
    engine: Engine, api: tuple[Api, RegisteredReader]
) -> None:
    client, _ = api
    offer = client.post("north", "/v1/assets/T-1/loans", to_agency="south").json()
    assert client.post("north", f"/v1/transfers/{offer['id']}/reject").status_code == 404
    assert (
        client.post("south", f"/v1/transfers/{offer['id']}/reject").json()["status"] == "rejected"
    )
    second = client.post("north", "/v1/assets/T-1/loans", to_agency="south").json()
    assert (
        client.post("north", f"/v1/transfers/{second['id']}/cancel").json()["status"] == "cancelled"
    )
    assert client.post("north", "/v1/assets/T-1/dispose").json()["status"] == "disposed"
    assert client.post("north", "/v1/assets/T-1/dispose").status_code == 409
    assert client.post("north", "/v1/assets/T-1/loans", to_agency="south").status_code == 409
    assert client.post("south", "/v1/assets/T-0/dispose").status_code == 404
