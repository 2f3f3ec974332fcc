"""Fixtures of the trust-boundary tests: the API tests' databases (SQLite and PostgreSQL), an
app with two agencies and keys of every kind of scope. (The browser is the session's one,
`tests.fixtures.browser`.)"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from api.app import create_app
from api.auth import create_api_client
from api.config import load_settings
from api.models import Agency, AssetClass, Scope, Site
from api.models.assets import AssetCreate
from api.registry import create_asset
from tests.api.conftest import _migrated_postgres, engine
from tests.fixtures.postgres import postgres_database

__all__ = ["_migrated_postgres", "engine", "postgres_database"]

SECRET = "s" * 40
METRICS_KEY = "m" * 32
FAILURE_LIMIT = 3
"""Failed authentications allowed per window in these tests (production default: 10)."""
FAILURE_WINDOW_S = 5
"""The tests' window: short, so waiting it out stays quick, yet long enough that a loaded
machine still makes its few failed attempts inside it (1 s let a slow sign-in form fall out)."""

KEY_SCOPES: dict[str, list[Scope]] = {
    "all": list(Scope),
    "none": [],
    "webhooks": [Scope.WEBHOOKS_WRITE],
    "assets": [Scope.ASSETS_READ],
    "audit": [Scope.AUDIT_READ],
    "writer": [Scope.ASSETS_WRITE, Scope.CUSTODY_WRITE],
}
"""The keys of agency `north`, by name; `south` has one key with every scope."""


@dataclass(frozen=True)
class FuzzCount:
    """What one schemathesis run against a served API tried, and what the service answered."""

    database: str
    key: str
    cases: int
    requests: int
    refused: int
    server_errors: int
    failures: int


FUZZ_COUNTS = pytest.StashKey[list[FuzzCount]]()
"""The runs of `test_fuzz_served`, for the terminal summary."""


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = config.stash.get(FUZZ_COUNTS, [])
    if not counts:
        return
    terminalreporter.section("schemathesis against a served API")
    terminalreporter.line(f"{'database':<11}{'key':<12}{'cases':>7}{'requests':>10}"
                          f"{'4xx':>8}{'5xx':>5}{'failures':>10}")
    for c in counts:
        terminalreporter.line(f"{c.database:<11}{c.key:<12}{c.cases:>7}{c.requests:>10}"
                              f"{c.refused:>8}{c.server_errors:>5}{c.failures:>10}")


@dataclass
class Service:
    """A running app (in process) over a real database, and its keys."""

    client: TestClient
    keys: dict[str, str]
    engine: Engine

    def call(self, who: str, method: str, url: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        headers.update(kwargs.pop("headers", {}))
        return self.client.request(method, url, headers=headers, **kwargs)

    def new_client(self, address: str = "testclient") -> TestClient:
        """Another browser or caller of the same app, from `address`."""
        return TestClient(self.client.app, raise_server_exceptions=False,
                          follow_redirects=False, client=(address, 50000))


@pytest.fixture
def service(engine: Engine) -> Iterator[Service]:
    settings = load_settings(environment="test", secret_key=SECRET, metrics_key=METRICS_KEY,
                             auth_failure_limit=FAILURE_LIMIT,
                             auth_failure_window_s=FAILURE_WINDOW_S)
    now = datetime.now(UTC)
    keys = {}
    with Session(engine) as session:
        for agency in ("north", "south"):
            session.add(Agency(id=agency, name=agency.title()))
        session.flush()
        session.add(Site(id="north-store", agency_id="north", name="Store"))
        session.add(AssetClass(id="radio", agency_id="north", name="Radio"))
        session.flush()
        create_asset(session, agency_id="north", now=now, data=AssetCreate(
            id="N-1", class_id="radio", epc_hex="E28000000000000000000001",
            home_site_id="north-store"))
        for name, scopes in KEY_SCOPES.items():
            _, keys[name] = create_api_client(session, agency_id="north", name=name,
                                              scopes=scopes, server_secret=SECRET, now=now)
        _, keys["south"] = create_api_client(session, agency_id="south", name="south",
                                             scopes=list(Scope), server_secret=SECRET, now=now)
        session.commit()
    client = TestClient(create_app(settings, engine), raise_server_exceptions=False,
                        follow_redirects=False)
    yield Service(client, keys, engine)
    client.close()
