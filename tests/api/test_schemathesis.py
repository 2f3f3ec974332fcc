"""Schemathesis against the API's own OpenAPI document: every operation, fuzzed with valid and
invalid input by an admin of a seeded agency, must never answer 5xx and must answer what the
document says (status codes and response bodies).

SQLite only: the point is the routes' handling of hostile input, which does not depend on the
backend, and the run must stay short on a 2-core machine. Examples are few per operation and
derandomized, so a failure reproduces on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Scope
from tests.api.api_support import seed_fuzzed_agency

SECRET = "s" * 40
EXAMPLES_PER_OPERATION = int(os.environ.get("KITLEDGER_FUZZ_EXAMPLES", "12"))
"""Enough to reach the validation edges of each operation; ~35 operations stay well under a
minute together, in both generation modes. Raise it through the environment for a deeper run."""
CHECKS: Final = [not_a_server_error, status_code_conformance, content_type_conformance,
                 response_headers_conformance, response_schema_conformance]


def _operations() -> list[tuple[str, str, GenerationMode]]:
    """(method, path, mode) for every operation in the document the app serves (building the
    app touches no database): valid input for all, invalid input for those taking any."""
    app = create_app(load_settings(environment="test", secret_key=SECRET),
                     make_engine(load_settings(database_url="sqlite://")))
    runs = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            runs.append((method.upper(), path, GenerationMode.POSITIVE))
            if spec.get("parameters") or spec.get("requestBody"):
                runs.append((method.upper(), path, GenerationMode.NEGATIVE))
    return runs


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """The app's OpenAPI document, served over ASGI from one seeded SQLite database that the
    whole fuzzing run shares (as a real deployment would), and the admin key."""
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    engine = make_engine(load_settings(database_url=f"sqlite:///{path}"))
    upgrade(engine)
    key = seed_fuzzed_agency(engine, {"admin": list(Scope)}, SECRET)["admin"]
    app = create_app(load_settings(environment="test", secret_key=SECRET), engine)
    yield schemathesis.openapi.from_asgi("/openapi.json", app), key
    engine.dispose()


@pytest.mark.parametrize(("method", "path", "mode"), _operations(), ids=str)
def test_no_operation_answers_5xx_or_off_schema(
    api_schema: tuple[Any, str], method: str, path: str, mode: GenerationMode,
) -> None:
    schema, key = api_schema
    operation = schema[path][method]
    headers = {"Authorization": f"Bearer {key}"}

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck), database=None)
    def run(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    run()
