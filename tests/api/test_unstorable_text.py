"""A NUL (or an unpaired surrogate) in any string the API or the web pages accept answers 422
with a problem naming where it was, on SQLite and PostgreSQL, and never reaches the database.
The cases come from the app's own OpenAPI document, so a new route is covered without listing
it here; a database error that does reach the log never carries its SQL parameters."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.json_logging import JsonFormatter
from api.models import Agency, Scope

SECRET = "n" * 40
NUL = "\x00"


def _app() -> FastAPI:
    return create_app(load_settings(environment="test", secret_key=SECRET), engine=None)


def _web_cases() -> list[tuple[str, str, str, str]]:
    """The pages are not in the OpenAPI document: each gets a NUL in a query parameter, and
    each form it takes one in a form field."""
    cases = []
    routes = []
    for route in _app().routes:  # included routers wrap their routes (FastAPI 0.16x)
        original = getattr(route, "original_router", None)
        routes.extend(original.routes if original is not None else [route])
    for route in routes:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or set()
        if not path.startswith("/web"):
            continue
        for method in sorted(methods - {"HEAD"}):
            cases.append((method.lower(), path, "query", "q"))
            if method == "POST":
                cases.append((method.lower(), path, "form", "key"))
            cases.extend((method.lower(), path, "path", p.split("}")[0])
                         for p in path.split("{")[1:])
    return cases


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = schema["components"]["schemas"][name]
    return node


def _is_string(schema: dict[str, Any], node: dict[str, Any]) -> bool:
    node = _resolve(schema, node)
    options = node.get("anyOf", []) + node.get("oneOf", []) + [node]
    return any(_resolve(schema, o).get("type") == "string" for o in options)


def _cases() -> list[tuple[str, str, str, str]]:
    """(method, path template, where, name) for every string parameter and top-level string
    body field of every operation."""
    schema = _app().openapi()
    cases = _web_cases()
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                if parameter["in"] in ("query", "path") and _is_string(
                    schema, parameter.get("schema", {})
                ):
                    cases.append((method, path, parameter["in"], parameter["name"]))
            content = operation.get("requestBody", {}).get("content", {})
            for media, body in content.items():
                where = "json" if "json" in media else "form"
                properties = _resolve(schema, body.get("schema", {})).get("properties", {})
                for name, prop in properties.items():
                    if _is_string(schema, prop) or _resolve(schema, prop).get("type") == "array":
                        cases.append((method, path, where, name))
    return cases


CASES = _cases()


def test_the_schema_yields_cases_for_query_path_and_body() -> None:
    kinds = {where for _, _, where, _ in CASES}
    assert {"query", "path", "json", "form"} <= kinds, kinds
    assert len(CASES) >= 43


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[TestClient, str]
]:
    from api.db import make_engine
    from api.migrate import upgrade

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('nul') / 'api.db'}"
    else:
        url = request.getfixturevalue("postgres_database")
    engine: Engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    with Session(engine) as session:
        if session.get(Agency, "north") is None:
            session.add(Agency(id="north", name="North"))
            session.flush()
        _, key = create_api_client(session, agency_id="north", name="all", scopes=list(Scope),
                                   server_secret=SECRET, now=datetime.now(UTC))
        session.commit()
    app: FastAPI = create_app(load_settings(environment="test", secret_key=SECRET), engine)
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client, key
    engine.dispose()


def _request(client: TestClient, key: str, method: str, path: str, where: str,
             name: str, value: Any) -> Any:
    url = path
    for piece in path.split("{")[1:]:
        parameter = piece.split("}")[0]
        filler = "%00" if (where, name) == ("path", parameter) else "x1"
        url = url.replace("{" + parameter + "}", filler)
    headers = {"Authorization": f"Bearer {key}"}
    if where == "query":
        return client.request(method, url, params={name: value}, headers=headers)
    if where == "json":
        return client.request(method, url, json={name: value}, headers=headers)
    if where == "form":
        return client.request(method, url, data={name: value}, headers=headers)
    return client.request(method, url, headers=headers)


def _assert_refused(answer: Any, where: str) -> None:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    problem = answer.json()
    assert problem["type"].endswith("/unstorable-character")
    assert problem["errors"][0]["loc"] == [{"json": "body", "form": "body"}.get(where, where)]


@pytest.mark.parametrize(("method", "path", "where", "name"), CASES, ids=str)
def test_a_nul_in_any_string_input_is_a_422(
    client: tuple[TestClient, str], method: str, path: str, where: str, name: str
) -> None:
    test_client, key = client
    _assert_refused(_request(test_client, key, method, path, where, name, f"a{NUL}b"), where)


def test_a_nul_inside_a_list_and_an_unpaired_surrogate_are_refused(
    client: tuple[TestClient, str]
) -> None:
    test_client, key = client
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    for body in (b'{"id": "a", "shared_with": ["b\\u0000"]}', b'{"id": "a\\ud800"}',
                 b'{"id": "a", "name": "\xed\xa0\x80"}', b'{"k\\u0000": 1}'):
        answer = test_client.post("/v1/assets", content=body, headers=headers)
        _assert_refused(answer, "json")
    # A surrogate pair is a real character and an escaped backslash is no escape: both pass on.
    for body in (b'{"id": "a\\ud83d\\ude00"}', b'{"id": "a\\\\u0000"}', b'{"id": "100%00"}'):
        answer = test_client.post("/v1/assets", content=body, headers=headers)
        assert answer.status_code == 422 and "unstorable" not in answer.text, answer.text


def test_the_web_audit_search_and_sign_in_form_refuse_a_nul(
    client: tuple[TestClient, str]
) -> None:
    test_client, key = client
    test_client.post("/web/login", data={"key": key}, follow_redirects=False)
    _assert_refused(test_client.get("/web/audit?q=%00"), "query")
    _assert_refused(test_client.get("/web/audit", params={"q": f"radio{NUL}"}), "query")
    _assert_refused(test_client.post("/web/login", data={"key": f"k{NUL}"}), "form")
    for content_type in ("text/plain", "application/json", "application/octet-stream"):
        answer = test_client.post("/web/login", content=b"key=k%00",
                                  headers={"content-type": content_type})
        _assert_refused(answer, "form")
    assert test_client.get("/web/audit?q=radio").status_code != 422


def test_a_browser_is_refused_a_nul_with_a_page(client: tuple[TestClient, str]) -> None:
    """A page's NUL gets the problem as a page, like every other refusal a browser meets."""
    test_client, key = client
    test_client.post("/web/login", data={"key": key}, follow_redirects=False)
    browser = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    for answer in (test_client.get("/web/audit?q=%00", headers=browser),
                   test_client.post("/web/login", data={"key": f"k{NUL}"}, headers=browser)):
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("text/html")
        assert "NUL" in answer.text and "Invalid request" in answer.text
        assert "\x00" not in answer.text


def test_a_body_larger_than_any_route_takes_is_refused_unread(
    client: tuple[TestClient, str]
) -> None:
    """The guard reads bodies whole, so it stops at its bound: one request cannot make the
    server hold more than that, whatever the route or the content type."""
    from api.storable_text import MAX_BODY_BYTES

    test_client, key = client
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}

    def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // (1024 * 1024) + 2):
            yield b" " * (1024 * 1024)

    answer = test_client.post("/v1/assets", content=chunks(), headers=headers)
    assert answer.status_code == 413, answer.text
    assert answer.json()["type"].endswith("/body-too-large")
    fits = test_client.post("/v1/assets", content=b" " * 1024 + b"{}", headers=headers)
    assert fits.status_code == 422  # the route's own answer: a body within the bound reaches it


def test_a_logged_database_error_carries_no_parameters(caplog: pytest.LogCaptureFixture) -> None:
    from api import problems

    orig = ValueError("duplicate key\nDETAIL:  Key (id)=(jane-doe) already exists.")
    caught = IntegrityError("INSERT INTO person (id) VALUES (%(id)s)", {"id": "jane-doe-secret"},
                            orig)
    caught.__cause__ = orig
    formatted = JsonFormatter().format(logging.LogRecord(
        "t", logging.ERROR, __file__, 1, "boom", None, (IntegrityError, caught, None)))
    assert "jane-doe" not in formatted and "INSERT INTO person" in formatted
    request = type("R", (), {"method": "POST", "headers": {},
                             "url": type("U", (), {"path": "/v1/people"})})()
    with caplog.at_level(logging.ERROR):
        import asyncio
        answer = asyncio.run(problems._unexpected(request, caught))  # type: ignore[arg-type]
    assert answer.status_code == 500
    assert "jane-doe-secret" not in caplog.text
