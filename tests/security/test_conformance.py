"""What schemathesis found against a served API (`test_fuzz_served`), pinned one by one, and
their siblings: a 405 names every method of its path, JSON booleans, whole numbers and times
are not coerced from numbers, booleans or digits, and `/metrics` is documented as the text it
is."""

from __future__ import annotations

from tests.security.conftest import METRICS_KEY, Service

_UNCOERCED_BOOLEANS = [0, 1, "true", "yes", 0.0, None]
_NOT_WHOLE_NUMBERS = [True, False, "7", "seven", 7.5, [7], None]
_NOT_TIMES = [0, 1700000000, "1700000000", "0", "2030-01-31", True, "2030-01-31T00:00:00"]


_ALLOWED = [
    ("/v1/sites", "GET, POST"),
    ("/v1/assets/N-1", "DELETE, GET, PATCH"),  # DELETE retires it (docs/property-room.md)
    ("/v1/people/p-1", "DELETE, GET, PATCH"),
    ("/v1/webhooks", "GET, POST"),
    ("/v1/api-clients/c-1/rotate", "POST"),
    ("/web/login", "GET, POST"),
    ("/healthz", "GET"),
]
"""Paths and every method each answers (FastAPI serves HEAD only where asked to: nowhere)."""


def test_405_names_every_method_of_the_path(service: Service) -> None:
    for path, allowed in _ALLOWED:
        for method in ("PUT", "OPTIONS", "TRACE", "HEAD"):
            answer = service.call("all", method, path)
            assert answer.status_code == 405, (method, path, answer.text[:200])
            assert answer.headers["allow"] == allowed, (method, path)
            assert answer.headers["content-type"] == "application/problem+json"


def test_a_boolean_is_true_or_false_never_a_number_or_text(service: Service) -> None:
    for value in _UNCOERCED_BOOLEANS:
        person = service.call("all", "POST", "/v1/people", json={"id": "p-1", "active": value})
        assert person.status_code == 422, (value, person.text[:300])
        assert person.json()["errors"][0]["loc"] == ["body", "active"]
        for field in ("dual_signoff", "disposal_final"):
            kind = service.call("all", "POST", "/v1/asset-classes",
                                json={"id": "baton", "name": "Baton", field: value})
            assert kind.status_code == 422, (value, field, kind.text[:300])
    assert service.call("all", "GET", "/v1/people/p-1").status_code == 404
    stored = service.call("all", "POST", "/v1/people", json={"id": "p-1", "active": False})
    assert (stored.status_code, stored.json()["active"]) == (201, False)


def test_a_whole_number_is_a_json_number_never_a_boolean_or_text(service: Service) -> None:
    for value in _NOT_WHOLE_NUMBERS:
        kind = service.call("all", "POST", "/v1/asset-classes",
                            json={"id": "baton", "name": "Baton", "loan_days": value})
        if value is not None:  # null is "no loan period", which the document allows
            assert kind.status_code == 422, (value, kind.text[:300])
            assert kind.json()["errors"][0]["loc"] == ["body", "loan_days"]
        else:
            assert kind.status_code == 201, kind.text[:300]
        loan = service.call("all", "POST", "/v1/assets/N-1/loans",
                            json={"to_agency": "south", "days": value})
        assert loan.status_code == 422, (value, loan.text[:300])
        assert loan.json()["errors"][0]["loc"] == ["body", "days"]
    kind = service.call("all", "POST", "/v1/asset-classes",
                        json={"id": "cuffs", "name": "Cuffs", "loan_days": 14.0})
    assert (kind.status_code, kind.json()["loan_days"]) == (201, 14)  # 14.0 is an integer
    loan = service.call("all", "POST", "/v1/assets/N-1/loans",
                        json={"to_agency": "south", "days": 7})
    assert loan.status_code == 201, loan.text[:300]


def test_a_time_is_rfc3339_text_never_unix_seconds(service: Service) -> None:
    client_id = service.keys["assets"].split("_")[1]
    for value in _NOT_TIMES:
        created = service.call("all", "POST", "/v1/api-clients",
                               json={"name": "t", "scopes": ["assets:read"], "expires_at": value})
        assert created.status_code == 422, (value, created.text[:300])
        assert created.json()["errors"][0]["loc"] == ["body", "expires_at"]
        expired = service.call("all", "POST", f"/v1/api-clients/{client_id}/expire",
                               json={"at": value})
        assert expired.status_code == 422, (value, expired.text[:300])
    assert service.call("assets", "GET", "/v1/assets").status_code == 200  # still a key
    later = service.call("all", "POST", "/v1/api-clients", json={
        "name": "t", "scopes": ["assets:read"], "expires_at": "2030-01-31T00:00:00+01:00"})
    assert (later.status_code, later.json()["client"]["expires_at"]) == (
        201, "2030-01-30T23:00:00Z")


def test_metrics_are_documented_as_text(service: Service) -> None:
    document = service.client.get("/openapi.json").json()
    answers = document["paths"]["/metrics"]["get"]["responses"]
    assert list(answers["200"]["content"]) == ["text/plain"]
    assert {"401", "404", "429"} <= set(answers)
    assert all(list(answers[s]["content"]) == ["application/problem+json"]
               for s in ("401", "404", "429"))
    metrics = service.client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_KEY}"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
