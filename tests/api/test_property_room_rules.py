"""The property room's API rules as data (`tests/vectors/property_room_rules.json`): every row
on a fresh world, through the REST API, on SQLite and PostgreSQL. Each row gives the state
(REST calls that must succeed), the call judged, and the decision with its reason."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.core.records import format_time
from tests.api.test_property_room import Api, _world
from tests.paths import VECTORS_DIR

ROWS = json.loads((VECTORS_DIR / "property_room_rules.json").read_text())["rows"]
START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


def _times(value: Any) -> Any:
    """The row's body with NOW±Nh made times (UTC, with the zone)."""
    if isinstance(value, dict):
        return {k: _times(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_times(v) for v in value]
    found = re.fullmatch(r"NOW([+-])(\d+)h", value) if isinstance(value, str) else None
    if found is None:
        return value
    hours = int(found.group(2)) * (1 if found.group(1) == "+" else -1)
    return format_time(START + timedelta(hours=hours))


def _call(api: Api, method: str, path: str, body: Any) -> Any:
    if method == "DELETE":
        return api.delete(path)
    return api.post(path, _times(body))


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_property_room_rule(engine: Engine, tmp_path: Path, row: dict[str, Any]) -> None:
    client, keys = _world(engine, tmp_path / "keys")
    north = Api(client, keys["north"])
    for method, path, body in row["given"]:
        done = _call(north, method, path, body)
        assert done.status_code < 300, (path, done.text)
    answer = _call(north, *row["ask"])
    expect = row["expect"]
    assert answer.status_code == expect["status"], answer.text
    if "detail" in expect:
        assert expect["detail"] in answer.json()["detail"]
    if "conflicts" in expect:
        assert [c["operation"] for c in answer.json()["conflicts"]] == expect["conflicts"]
    if "holding" in expect:
        assert answer.json()["holding"] == expect["holding"]
