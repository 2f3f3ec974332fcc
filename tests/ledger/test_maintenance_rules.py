"""The maintenance rule as data (`tests/vectors/maintenance_rules.json`): the desk's pure rule
and the verifier's check of a logged check-out reach the same verdict on every row."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledger.core.errors import SchemaError
from ledger.core.maintenance_rules import ScheduleState, issue_refusal
from ledger.core.records import (
    ASSET_REGISTERED,
    BACK_IN_SERVICE,
    CLASS_POLICY,
    GENESIS_PREV,
    MAINTENANCE_DONE,
    MAINTENANCE_SCHEDULE,
    OUT_OF_SERVICE,
    CustodyEvent,
    Holder,
    RegistryChains,
    parse_time,
)
from ledger.verify.maintenance import maintenance_reason
from ledger.verify.registry import Logged, Registry
from tests.paths import VECTORS_DIR

ROWS: list[dict[str, Any]] = json.loads(
    (VECTORS_DIR / "maintenance_rules.json").read_text())["rows"]
BY = "ab" * 32
"""The commitment of whoever did the work."""
AT = "2026-01-01T00:00:00.000Z"


def _desk(row: dict[str, Any]) -> str | None:
    out: str | None = None
    latest: dict[str, dict[str, Any]] = {}
    for record in row["records"]:
        if "service" in record:
            out = record["reason"] if record["service"] == "out" else None
        else:
            latest[record["check"]] = record
    states = [ScheduleState(s["schedule"], s["name"],
                            latest[s["schedule"]]["result"] if s["schedule"] in latest else None,
                            parse_time(latest[s["schedule"]]["next_due"])
                            if latest.get(s["schedule"], {}).get("next_due") else None)
              for s in row["schedules"] if s["blocking"]]
    return issue_refusal(out, states, parse_time(row["now"]))


def _verifier(row: dict[str, Any]) -> str | None:
    """The row logged (class policy and schedules, the asset's tag then its records) and a
    check-out after them, as the verifier sees it."""
    chains = RegistryChains("north")
    registry = Registry("north", 0, 0)
    leaf = 1
    classes = [Logged(chains.append(CLASS_POLICY, AT, **{
        "class": "taser", "dual_signoff": False, "required_qualification": None,
        "loan_days": None, "disposal_final": True}), leaf)]
    for schedule in row["schedules"]:
        leaf += 1
        classes.append(Logged(chains.append(MAINTENANCE_SCHEDULE, AT, **{
            "class": "taser", "schedule": schedule["schedule"], "name": schedule["name"],
            "interval_days": 365, "blocking": schedule["blocking"]}), leaf))
    leaf += 1
    assets = [Logged(chains.append(ASSET_REGISTERED, AT, asset="T-1", epc="E280",
                                   **{"class": "taser"}), leaf)]
    for record in row["records"]:
        leaf += 1
        if "service" in record:
            kind = OUT_OF_SERVICE if record["service"] == "out" else BACK_IN_SERVICE
            logged = chains.append(kind, AT, asset="T-1", reason=record["reason"], by=BY)
        else:
            logged = chains.append(MAINTENANCE_DONE, AT, asset="T-1", schedule=record["check"],
                                   result=record["result"], by=BY, next_due=record["next_due"])
        assets.append(Logged(logged, leaf))
    registry.classes["taser"], registry.assets["T-1"] = classes, assets
    event = CustodyEvent("north", "T-1", 1, GENESIS_PREV, "check_out", row["now"],
                         Holder("location", "store"), Holder("person", BY), (), (BY,),
                         "desk-1")
    return maintenance_reason(registry, event, leaf + 1)


@pytest.mark.parametrize("row", ROWS, ids=[r["name"] for r in ROWS])
def test_the_desk_and_the_verifier_follow_the_table(row: dict[str, Any]) -> None:
    assert _desk(row) == row["expect"]
    found = _verifier(row)
    if row["expect"] is None:
        assert found is None
    else:
        assert found is not None and row["expect"] in found


def test_records_after_the_check_out_do_not_count() -> None:
    """A pass logged after the check-out does not justify it (log order, not claimed time)."""
    row = next(r for r in ROWS if r["name"] == "failed, then passed: the latest check counts")
    registry_row = {**row, "records": row["records"][:1]}
    assert _verifier(registry_row) is not None


@pytest.mark.parametrize(("fields", "error"), [
    ({"result": "ok"}, "result"),
    ({"result": None}, "result"),
    ({"next_due": "tomorrow"}, "is not YYYY"),
    ({"next_due": 5}, "next_due"),
    ({"by": "alice"}, "by"),
    ({"schedule": ""}, "schedule"),
])
def test_bad_maintenance_records_are_refused(fields: dict[str, Any], error: str) -> None:
    good = {"asset": "T-1", "schedule": "taser-test", "result": "pass", "by": BY,
            "next_due": None}
    with pytest.raises(SchemaError, match=error):
        RegistryChains("north").append(MAINTENANCE_DONE, AT, **{**good, **fields})
