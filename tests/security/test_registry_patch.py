"""`PATCH /v1/asset-classes/{id}`, `/v1/people/{id}`, `/v1/sites/{id}`: scope `admin`, the
caller's own agency (another's is 404), a changed class policy logged in the same
transaction, hostile input refused with nothing changed. Both databases."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlmodel import Session, col, select

from api.models import AssetClass, Person, Site
from api.models.custody import RegistryRecordRow
from api.models.people import PersonCreate
from api.registry import create_person
from tests.security.conftest import Service


def _kinds(service: Service) -> list[str]:
    with Session(service.engine) as session:
        return [r.kind for r in session.exec(select(RegistryRecordRow).where(
            RegistryRecordRow.agency_id == "north").order_by(col(RegistryRecordRow.leaf_index)))]


def test_patch_class_logs_a_changed_policy_only(service: Service) -> None:
    before = _kinds(service).count("class-policy")
    renamed = service.call("all", "PATCH", "/v1/asset-classes/radio", json={"name": "Radios"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Radios"
    assert _kinds(service).count("class-policy") == before
    policy = service.call("all", "PATCH", "/v1/asset-classes/radio",
                          json={"loan_days": 3, "dual_signoff": True})
    assert policy.status_code == 200, policy.text
    assert policy.json()["loan_days"] == 3 and policy.json()["dual_signoff"] is True
    assert _kinds(service).count("class-policy") == before + 1
    cleared = service.call("all", "PATCH", "/v1/asset-classes/radio", json={"loan_days": None})
    assert cleared.status_code == 200 and cleared.json()["loan_days"] is None
    assert _kinds(service).count("class-policy") == before + 2


def test_patch_person_and_site(service: Service) -> None:
    with Session(service.engine) as session:
        create_person(session, agency_id="north", now=datetime.now(UTC),
                      data=PersonCreate(id="pc-1", qualifications=["taser"]))
        session.commit()
    person = service.call("all", "PATCH", "/v1/people/pc-1",
                          json={"qualifications": ["first-aid"], "active": False})
    assert person.status_code == 200, person.text
    assert person.json()["qualifications"] == ["first-aid"] and person.json()["active"] is False
    site = service.call("all", "PATCH", "/v1/sites/north-store", json={"name": "Main store"})
    assert site.status_code == 200 and site.json()["name"] == "Main store"
    assert service.call("all", "DELETE", "/v1/people/pc-1").status_code == 204
    erased = service.call("all", "PATCH", "/v1/people/pc-1", json={"active": True})
    assert erased.status_code == 409 and "erased" in erased.text


@pytest.mark.parametrize(("who", "path", "body", "expected"), [
    ("assets", "/v1/asset-classes/radio", {"name": "x"}, 403),
    ("writer", "/v1/sites/north-store", {"name": "x"}, 403),
    ("south", "/v1/asset-classes/radio", {"name": "x"}, 404),
    ("south", "/v1/sites/north-store", {"name": "x"}, 404),
    ("all", "/v1/asset-classes/radio", {"name": "R\u0000"}, 422),
    ("all", "/v1/asset-classes/radio", {"name": "n" * 300}, 422),
    ("all", "/v1/asset-classes/radio", {"loan_days": "seven"}, 422),
    ("all", "/v1/asset-classes/radio", {"dual_signoff": "yes"}, 422),
    ("all", "/v1/sites/north-store", {"name": ""}, 422),
    ("all", "/v1/people/nobody", {"active": False}, 404),
    ("all", "/v1/asset-classes/" + "x" * 200, {"name": "x"}, 422),
])
def test_patch_refused_changes_nothing(service: Service, who: str, path: str,
                                       body: dict[str, object], expected: int) -> None:
    before = _kinds(service)
    answer = service.call(who, "PATCH", path, json=body)
    assert answer.status_code == expected, answer.text
    with Session(service.engine) as session:
        radio = session.get(AssetClass, ("north", "radio"))
        store = session.get(Site, ("north", "north-store"))
        assert radio is not None and radio.name == "Radio"
        assert store is not None and store.name == "Store"
        assert session.exec(select(Person)).first() is None
    assert _kinds(service) == before
