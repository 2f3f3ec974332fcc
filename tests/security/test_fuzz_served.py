"""Schemathesis against a real `kitledger serve` process, on SQLite and on PostgreSQL, with
three kinds of key: every scope, read-only scopes, none. Whatever it sends, the service never
answers 5xx and answers only what its OpenAPI document says: status codes, media types,
headers, bodies, `Allow` on 405, 401 without a key, no schema-violating request accepted.

The run is the `schemathesis run` command a CI job would use (coverage, fuzzing and stateful
phases), a fixed seed and few examples per operation so that it stays short and a failure
reproduces; `KITLEDGER_FUZZ_EXAMPLES` raises the examples for a deeper run. One more run, through
schemathesis's Python API, aims at the seeded records by their ids. The cases each run tried
and what the service answered (counted from the service's own access log) are printed in the
terminal summary (`tests.security.conftest`).

Two settings differ from a deployment's, each for a reason: failed authentications are limited
only past 10,000 (the `missing_required_header` and `ignored_auth` checks send hundreds of
requests without a key, and the limiter has its own tests), and `positive_data_acceptance` is
left out (a schema cannot say that a site must be one of the agency's own, so such requests are
refused with 422 by design).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.config import load_settings
from api.db import make_engine
from api.migrate import upgrade
from api.models import Scope
from tests.api.api_support import seed_fuzzed_agency
from tests.fixtures.ports import free_port, wait_for_port
from tests.fixtures.postgres import create_database, database_url, drop_database
from tests.security.conftest import FUZZ_COUNTS, FuzzCount
from tests.security.security_support import KITLEDGER, serve_env

SECRET = "f" * 40
METRICS_KEY = "m" * 32
SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
EXAMPLES_PER_OPERATION = int(os.environ.get("KITLEDGER_FUZZ_EXAMPLES", "4"))
"""Per operation and phase. With the defaults the eight runs (two databases, three keys and
the seeded records) take about three minutes on a busy 2-core machine."""
SEED: Final = 20261205
KEY_SCOPES: Final[dict[str, list[Scope]]] = {
    "all-scopes": list(Scope),
    "read-only": [Scope.ASSETS_READ, Scope.AUDIT_READ],
    "no-scopes": [],
}
PHASES: Final = {"all-scopes": "coverage,fuzzing,stateful"}
"""The coverage phase (each parameter's boundary and wrong-type values, unsupported methods,
each request without its key: some 1,300 cases whatever the examples) and the stateful phase
(sequences reusing what one call created) run with the key that reaches every operation's
logic; the restricted keys, refused before any of it and unable to create anything, get the
fuzzing phase."""
EXCLUDED_CHECKS: Final = "positive_data_acceptance"
NEGATIVE_DATA_CONFIG: Final = """[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428",
                     "429", "5xx"]
"""
"""schemathesis's own list of refusals for a schema-violating request, with 413: a body over the
request guard's 32 MiB (`api.storable_text`), as an oversized handheld batch of more reads than
the schema allows can be, is refused before any route reads it. (A 5xx still fails the test:
`not_a_server_error` and the server-error count below.)"""
SEEDED_CHECKS: Final = [not_a_server_error, status_code_conformance, content_type_conformance,
                        response_headers_conformance, response_schema_conformance]
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[\d.]+" (?P<status>\d{3})$')
_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_READING_POSTS: Final = frozenset({"/v1/planning/replay"})
"""POSTs that only compute (a recorded day replayed through a changed pool, its request a
body): `assets:read`, and `tests/api/test_planning_routes.py` checks they write nothing."""


@dataclass
class LiveApi:
    """A `serve` process over a seeded database, its keys by kind, and its log."""

    database: str
    url: str
    keys: dict[str, str]
    log: Path


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def live_api(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    tmp_path = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "sqlite":
        url, pg_name = f"sqlite:///{tmp_path / 'fuzz.db'}", None
    else:
        pg_name = create_database()
        url = database_url(pg_name)
    engine = make_engine(load_settings(database_url=url))
    upgrade(engine)
    keys = seed_fuzzed_agency(engine, {**KEY_SCOPES, "spare": [Scope.ASSETS_READ]}, SECRET)
    engine.dispose()
    port = free_port()
    log = tmp_path / "serve.log"
    env = serve_env(tmp_path, url, KITLEDGER_ENVIRONMENT="production",
                    KITLEDGER_SECRET_KEY=SECRET, KITLEDGER_METRICS_KEY=METRICS_KEY,
                    KITLEDGER_AUTH_FAILURE_LIMIT="10000")
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [KITLEDGER, "serve", "--port", str(port), "--ingest-workers", "0"],
            env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=60)
        yield LiveApi(request.param, f"http://127.0.0.1:{port}", keys, log)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        if pg_name is not None:
            drop_database(pg_name)


def _answers_served(api: LiveApi, since: int, marker: str) -> Counter[tuple[str, str, int]]:
    """(method, path, status) of each request the service logged after byte `since` of its
    log, up to a request for `marker` (sent now, so every answer before it has been logged)."""
    httpx.get(f"{api.url}/healthz?marker={marker}", timeout=10)
    deadline = time.monotonic() + 10
    while marker not in (text := api.log.read_bytes()[since:].decode(errors="replace")):
        assert time.monotonic() < deadline, f"{marker} never logged"
        time.sleep(0.1)
    answers: Counter[tuple[str, str, int]] = Counter()
    for line in text.splitlines():
        if line.startswith("{") and marker not in line:
            entry = json.loads(line)
            found = _ACCESS.search(entry["message"])
            if found and entry["logger"] == "uvicorn.access":
                answers[found["method"], found["path"], int(found["status"])] += 1
    return answers


def _count(api: LiveApi, kind: str, since: int, *, cases: int,
           failures: int) -> tuple[FuzzCount, Counter[tuple[str, str, int]]]:
    """The row of the terminal summary for a run that started at byte `since` of the log, and
    what the service answered to it."""
    answers = _answers_served(api, since, f"end-of-{kind}")
    statuses = Counter[int]()
    for (_, _, status), n in answers.items():
        statuses[status] += n
    count = FuzzCount(
        database=api.database, key=kind, cases=cases, requests=statuses.total(),
        refused=sum(n for status, n in statuses.items() if 400 <= status < 500),
        server_errors=sum(n for status, n in statuses.items() if status >= 500),
        failures=failures)
    return count, answers


@pytest.mark.parametrize("kind", KEY_SCOPES)
def test_schemathesis_finds_no_5xx_and_no_schema_violation(
        live_api: LiveApi, kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    report = tmp_path / "report.json"
    config = tmp_path / "schemathesis.toml"
    config.write_text(NEGATIVE_DATA_CONFIG)
    since = live_api.log.stat().st_size
    done = subprocess.run(
        [SCHEMATHESIS, "--config-file", str(config), "run", f"{live_api.url}/openapi.json",
         "--header", f"Authorization: Bearer {live_api.keys[kind]}",
         "--checks", "all", "--exclude-checks", EXCLUDED_CHECKS,
         "--phases", PHASES.get(kind, "fuzzing"),
         "--max-examples", str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--no-shrink",
         "--workers", "1", "--request-timeout", "30", "--suppress-health-check", "all",
         "--report", "json", "--report-json-path", str(report)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
        env={**os.environ, "NO_COLOR": "1"})
    summary = json.loads(report.read_text())
    count, answers = _count(live_api, kind, since, cases=summary["test_cases"]["generated"],
                            failures=summary["test_cases"]["unique_failures"]
                            + len(summary["errors"]))
    request.config.stash.setdefault(FUZZ_COUNTS, []).append(count)
    assert summary["operations"]["tested"] == summary["operations"]["total"] > 30
    # Not one request per case: a few cases hold what no HTTP client sends (a header value
    # with a newline) and go unsent, stateful cases may send several.
    assert count.cases > 100 and count.requests > 100, (count, done.stdout[-3000:])
    assert count.server_errors == 0, answers
    assert (done.returncode, count.failures) == (0, 0), done.stdout[-6000:]
    # Scopes held against everything schemathesis tried: nothing written without a write
    # scope, nothing of the agency's read without any scope.
    done_anyway = [(method, path, status) for method, path, status in answers
                   if 200 <= status < 300 and path.startswith("/v1/") and (
                       kind == "no-scopes" or (kind == "read-only" and method in _WRITES
                                               and path not in _READING_POSTS))]
    assert not done_anyway, done_anyway[:10]


def test_metrics_answer_as_documented(live_api: LiveApi) -> None:
    """The one operation the runs above reach only without its key (an agency key is not the
    metrics key): its exposition, as the document says, is text, not JSON."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    operation = schema["/metrics"]["GET"]
    for key, status in ((METRICS_KEY, 200), (live_api.keys["all-scopes"], 401), (None, 401)):
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = operation.Case(headers=headers).call()
        assert response.status_code == status, response.text[:300]
        operation.Case(headers=headers).validate_response(response, checks=[
            status_code_conformance, content_type_conformance, response_schema_conformance])
        if status == 200:
            assert response.headers["content-type"][0].startswith("text/plain")
            assert "# TYPE kitledger_" in response.text


def _fuzz_operation(operation: Any, mode: GenerationMode, path_parameters: dict[str, str],
                    headers: dict[str, str], tried: list[str]) -> None:
    """Fuzz `operation`'s query and body in `mode` with these path parameters; each case's
    operation and status goes in `tried`."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None,
              database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.generate])
    def run(case: schemathesis.Case[Any]) -> None:
        case.path_parameters = dict(path_parameters)
        response = case.call(headers=headers, timeout=30)
        tried.append(f"{operation.label} {response.status_code}")
        case.validate_response(response, checks=SEEDED_CHECKS)

    run()


def test_operations_on_the_seeded_records(live_api: LiveApi,
                                          request: pytest.FixtureRequest) -> None:
    """The runs above rarely name a record that exists (a random id is a 404), so the logic
    behind `/v1/assets/{asset_id}` and its siblings would go untried: here every operation
    with ids in its path gets the seeded records' ids, and fuzzed query and body, valid and
    not, with the all-scopes key. It may dispose of the asset, revoke the reader, erase the
    person and rotate the spare key as it goes: the service must still answer by the book."""
    schema = schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")
    ids = {"asset_id": "R-1", "site_id": "north-store", "reader_id": "rdr-1",
           "person_id": "p-1", "client_id": live_api.keys["spare"].split("_")[1]}
    headers = {"Authorization": f"Bearer {live_api.keys['all-scopes']}"}
    since = live_api.log.stat().st_size
    tried: list[str] = []
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) > 30
    for operation in operations:
        names = re.findall(r"\{(\w+)\}", operation.path)
        if not names or not set(names) <= ids.keys():
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(operation, mode, {name: ids[name] for name in names}, headers,
                            tried)
    count, answers = _count(live_api, "seeded-ids", since, cases=len(tried), failures=0)
    request.config.stash.setdefault(FUZZ_COUNTS, []).append(count)
    reached = {label.rsplit(" ", 1)[0] for label in tried if label.endswith((" 200", " 201",
                                                                            " 204"))}
    assert len(reached) >= 12, sorted(reached)  # the records were there to be reached
    assert count.server_errors == 0, answers
